"""Every attribute type keeps every value exactly through the envelope:
``serialization.loads(attr, serialization.dumps(attr, v))`` gives back ``v``.

"Exactly" is stricter than ``==`` (see :mod:`repocket.testing.strategies`).
The same values' round trips through storage, with an ``Everything`` record
saved and read back on each backend, are part of the conformance suite
(:class:`repocket.testing.suite.RoundTripConformance`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from repocket import ActiveRecord, attributes, serialization
from repocket.testing.strategies import (
    binaries,
    datetimes,
    decimals,
    floats,
    integers,
    json_documents,
    same_datetime,
    same_decimal,
    same_exact,
    same_float,
    same_json,
    texts,
    uuids,
)

from .models import Everything, User


def roundtrip(attribute: attributes.Attribute, value: Any) -> Any:
    return serialization.loads(attribute, serialization.dumps(attribute, value))


# ---------------------------------------------------------------------------
# (a) Envelope round trips
# ---------------------------------------------------------------------------


@given(texts)
def test_unicode_envelope_round_trip_keeps_any_string(value: str) -> None:
    assert same_exact(roundtrip(attributes.Unicode(), value), value)


@given(binaries)
def test_bytes_envelope_round_trip_keeps_any_bytes(value: bytes) -> None:
    assert same_exact(roundtrip(attributes.Bytes(), value), value)


@given(binaries)
def test_bytestream_envelope_round_trip_keeps_any_bytes(value: bytes) -> None:
    assert same_exact(roundtrip(attributes.ByteStream(), value), value)


@given(integers)
def test_integer_envelope_round_trip_keeps_any_integer(value: int) -> None:
    assert same_exact(roundtrip(attributes.Integer(), value), value)


@given(floats)
def test_float_envelope_round_trip_keeps_every_bit(value: float) -> None:
    assert same_float(roundtrip(attributes.Float(), value), value)


@given(decimals)
def test_decimal_envelope_round_trip_keeps_digits_exponent_and_specials(
    value: decimal.Decimal,
) -> None:
    assert same_decimal(roundtrip(attributes.Decimal(), value), value)


@given(datetimes)
def test_datetime_envelope_round_trip_keeps_wall_time_offset_and_naiveness(
    value: dt.datetime,
) -> None:
    assert same_datetime(roundtrip(attributes.DateTime(), value), value)


@given(uuids)
def test_uuid_envelope_round_trip_keeps_the_uuid(value: uuid.UUID) -> None:
    assert same_exact(roundtrip(attributes.UUID(), value), value)


@given(uuids)
def test_autouuid_envelope_round_trip_keeps_the_uuid(value: uuid.UUID) -> None:
    assert same_exact(roundtrip(attributes.AutoUUID(), value), value)


@given(json_documents)
def test_json_envelope_round_trip_keeps_the_document_and_its_types(value: Any) -> None:
    assert same_json(roundtrip(attributes.JSON(), value), value)


@given(
    st.recursive(
        st.none() | texts | st.integers(),
        lambda children: (
            st.lists(children, max_size=4)
            | st.tuples(children, children)
            | st.dictionaries(texts, children, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_json_field_holds_exactly_what_a_load_returns(value: Any) -> None:
    # JSON itself normalises (tuples become lists, surrogate pairs join):
    # casting applies that normalisation up front, so nothing changes on storage.
    held = attributes.JSON.cast(value)
    assert same_json(roundtrip(attributes.JSON(), held), held)


@given(uuids)
def test_pointer_envelope_round_trip_gives_the_target_key(value: uuid.UUID) -> None:
    target = User(id=value)
    assert roundtrip(Everything.owner, target) == f"repocket:repocket.testing.models:User:{value}"


@given(
    st.one_of(
        st.tuples(st.just(attributes.Unicode()), texts),
        st.tuples(st.just(attributes.Bytes()), binaries),
        st.tuples(st.just(attributes.Integer()), integers),
        st.tuples(st.just(attributes.Float()), floats),
        st.tuples(st.just(attributes.Decimal()), decimals),
        st.tuples(st.just(attributes.DateTime()), datetimes),
        st.tuples(st.just(attributes.UUID()), uuids),
        st.tuples(st.just(attributes.JSON()), json_documents),
    )
)
def test_envelope_text_is_strict_ascii_json_with_the_documented_members(
    case: tuple[attributes.Attribute, Any],
) -> None:
    attribute, value = case

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    text = serialization.dumps(attribute, value)
    assert text.isascii()
    data = json.loads(text, parse_constant=refuse)
    assert list(data)[:3] == ["type", "value", "module"]
    assert (data["type"], data["module"]) == (type(attribute).__name__, "repocket.attributes")
    assert set(data) <= {"type", "value", "module", "encoding"}


# ---------------------------------------------------------------------------
# The generated per-model encoder writes exactly what dumps() writes
# ---------------------------------------------------------------------------


class EveryType(ActiveRecord):
    """A field of each stored type, each also nullable, for the encoder."""

    class Meta:
        namespace = "tests.encoder"

    text = attributes.Unicode(null=True)
    raw = attributes.Bytes(null=True)
    number = attributes.Integer(null=True)
    ratio = attributes.Float(null=True)
    amount = attributes.Decimal(null=True)
    when = attributes.DateTime(null=True)
    ref = attributes.UUID(null=True)
    doc = attributes.JSON(null=True)
    flag = attributes.Boolean(null=True)


@given(
    st.fixed_dictionaries(
        {
            "id": uuids,
            "text": st.none() | texts,
            "raw": st.none() | binaries,
            "number": st.none() | integers,
            "ratio": st.none() | floats,
            "amount": st.none() | decimals,
            "when": st.none() | datetimes,
            "ref": st.none() | uuids,
            "doc": st.none() | json_documents,
            "flag": st.none() | st.booleans(),
        }
    )
)
def test_the_generated_encoder_writes_what_dumps_writes(values: dict[str, Any]) -> None:
    meta = EveryType._meta
    expected = {
        name: serialization.dumps(meta.fields[name], values[name]) for name in meta.hash_fields
    }
    assert meta.encode(values) == expected
    # the primary key written from its text, as a save does
    assert meta.encode(values, str(values["id"])) == expected
    # and the texts read back as the values
    decoded = meta.decode(expected, str(values["id"]), lambda record_id: f"record {record_id}")
    for name in meta.hash_fields:
        if values[name] is None:
            assert decoded[name] is None
    assert decoded["id"] == values["id"]
    assert decoded["flag"] == values["flag"]
