"""Regression tests for stored-data and input edge cases found in review.

The cases that need storage (ordering values the range index cannot compare,
reading 0.0.1's JSON back from storage) are in the conformance suite's
``StoredDataConformance``, so they run on every backend."""

from __future__ import annotations

import json

import pytest

from repocket import ActiveRecord, attributes, serialization
from repocket.errors import EnvelopeError, ValidationError

from .models import Everything


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
        "yay": "this is json baby!",
        "n": [1, 2.5, None, True],
    }


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
    with pytest.raises(ValidationError, match=r"Everything\.doc"):
        Everything(doc=deep)
