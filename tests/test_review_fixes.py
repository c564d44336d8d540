"""Regression tests for stored-data and input edge cases found in review."""

from __future__ import annotations

import datetime
import json

import pytest

from repocket import ActiveRecord, attributes, serialization
from repocket.connections import configure
from repocket.errors import EnvelopeError, ValidationError

from .models import Everything, User


def envelope(type_name: str, value: object) -> str:
    return json.dumps({"type": type_name, "value": value, "module": "repocket.attributes"})


def test_unicode_decodes_bytes_in_the_fields_encoding() -> None:
    class Latin(ActiveRecord):
        text = attributes.Unicode(encoding="latin-1")

    assert Latin(text="café".encode("latin-1")).text == "café"


@pytest.mark.parametrize("stored", ["NaN:0x" + "f" * 20, "NaN:0x0", "NaN:zz", "nan:1"])
def test_malformed_nan_text_is_an_envelope_error(stored: str) -> None:
    with pytest.raises(EnvelopeError, match="'ratio'"):
        serialization.loads(Everything.ratio, envelope("Float", stored), key="k", field="ratio")


def test_an_integer_envelope_holding_a_boolean_is_an_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="'number'"):
        serialization.loads(Everything.number, envelope("Integer", True), key="k", field="number")


def test_a_json_envelope_holding_nan_is_an_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="'doc'"):
        serialization.loads(Everything.doc, envelope("JSON", '{"a": NaN}'), key="k", field="doc")


def test_json_written_by_0_0_1_as_a_python_literal_is_read() -> None:
    # 0.0.1 stored str(dict): {u'yay': u'this is json baby!'}
    stored = envelope("JSON", "{u'yay': u'this is json baby!', 'n': [1, 2.5, None, True]}")
    assert serialization.loads(Everything.doc, stored, key="k", field="doc") == {
        "yay": "this is json baby!", "n": [1, 2.5, None, True]}


def test_a_python_literal_that_is_not_json_data_is_an_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="'doc'"):
        serialization.loads(Everything.doc, envelope("JSON", "{1: {2, 3}}"), key="k", field="doc")


def test_error_messages_use_the_right_article() -> None:
    with pytest.raises(EnvelopeError) as info:
        serialization.loads(Everything.number, envelope("Integer", "x"), key="k", field="number")
    assert "a Integer" not in str(info.value)


def test_deeply_nested_json_input_is_a_validation_error() -> None:
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValidationError, match="Everything.doc"):
        Everything(doc=deep)


class Unindexed(ActiveRecord):
    when = attributes.DateTime(index=False)


def test_ordering_values_that_cannot_be_compared_is_a_validation_error(storage) -> None:
    # without a range index the records are sorted in Python, which cannot
    # compare naive and aware datetimes
    Unindexed.create(when=datetime.datetime(2020, 1, 1))
    Unindexed.create(when=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
    with pytest.raises(ValidationError, match=r"Unindexed\.when"):
        list(Unindexed.objects.all().order_by("when"))


def test_the_range_index_orders_naive_datetimes_as_if_utc(storage) -> None:
    utc = datetime.timezone.utc
    noon_naive = Everything.create(when=datetime.datetime(2020, 1, 1, 12))
    eleven_aware = Everything.create(when=datetime.datetime(2020, 1, 1, 11, tzinfo=utc))
    one_pm_aware = Everything.create(when=datetime.datetime(2020, 1, 1, 13, tzinfo=utc))
    ordered = [record.id for record in Everything.objects.order_by("when")]
    assert ordered == [eleven_aware.id, noon_naive.id, one_pm_aware.id]


def test_a_record_read_from_0_0_1_json_can_be_saved_again(storage) -> None:
    user = User.create(name="Harry")
    configure.get_connection().hset(user.save()["hash"], "metadata",
                                    envelope("JSON", "{u'yay': u'this is json baby!'}"))
    loaded = User.objects.get(id=user.id)
    loaded.save()
    assert User.objects.get(id=user.id).metadata == {"yay": "this is json baby!"}
