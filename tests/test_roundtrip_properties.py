"""Every attribute type keeps every value exactly: envelope and storage round trips.

(a) ``serialization.loads(attr, serialization.dumps(attr, v))`` gives back ``v``;
(b) an ``Everything`` record saved on each backend and read back with
    ``objects.get(id=...)`` holds exactly the values it was saved with.

"Exactly" is stricter than ``==``: floats are compared bit for bit (``-0.0``,
NaN payloads), decimals by sign, digits and exponent, datetimes by wall time,
UTC offset and naive-ness, JSON documents by type as well as value
(``1``, ``1.0`` and ``True`` are different documents).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import struct
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from repocket import attributes, serialization
from repocket.storage import Storage

from .models import Everything, User

# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

SURROGATES = st.characters(categories=["Cs"])

# Any Python string: ordinary text, plus lone and adjacent surrogates (a high
# surrogate followed by a low one must not come back as one astral character).
texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.characters(), SURROGATES)).map("".join),
    st.lists(st.sampled_from(["\ud83d", "\ude00", "\ud800", "\udfff", "\U0001f600", "a"]))
    .map("".join),
)

binaries = st.one_of(
    st.binary(),  # mostly not valid UTF-8
    st.text().map(lambda text: text.encode("utf-8")),
    st.sampled_from([b"", b"\xff", b"\xed\xa0\x80", b"\xc0\x80", b"\x00", b"=="]),
)

integers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**64) - 2, max_value=-(2**63) + 2),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=-(2**4000), max_value=2**4000),
)


def _float_from_bits(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


floats = st.one_of(
    st.floats(),
    st.integers(min_value=0, max_value=2**64 - 1).map(_float_from_bits),  # any bit pattern
    st.integers(min_value=1, max_value=2**52 - 1).flatmap(  # NaNs with payloads, both signs
        lambda payload: st.sampled_from([
            _float_from_bits(0x7FF0_0000_0000_0000 | payload),
            _float_from_bits(0xFFF0_0000_0000_0000 | payload)])),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan,
                     5e-324, -5e-324, 1.7976931348623157e308, 2.2250738585072014e-308]),
)

decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(  # 30 significant digits, any sign and exponent
        lambda sign, digits, exponent: decimal.Decimal((sign, tuple(digits), exponent)),
        st.integers(0, 1),
        st.lists(st.integers(0, 9), min_size=30, max_size=30),
        st.integers(-60, 60)),
    st.sampled_from(["NaN", "-NaN", "NaN123", "sNaN", "-sNaN42", "Infinity", "-Infinity",
                     "0", "-0", "0E-30", "0.000", "1E+5", "-1.10"]).map(decimal.Decimal),
)

_MAX_OFFSET_US = 24 * 3600 * 10**6 - 1
fixed_offsets = st.one_of(
    st.sampled_from([dt.timedelta(hours=5, minutes=45), dt.timedelta(hours=-3, minutes=-30),
                     dt.timedelta(hours=-9, minutes=-30), dt.timedelta(hours=12, minutes=45),
                     dt.timedelta(hours=14), dt.timedelta(hours=-12), dt.timedelta(0),
                     dt.timedelta(hours=5, minutes=41, seconds=16)]),
    st.integers(min_value=-24 * 60 + 1, max_value=24 * 60 - 1).map(
        lambda minutes: dt.timedelta(minutes=minutes)),
    st.integers(min_value=-_MAX_OFFSET_US, max_value=_MAX_OFFSET_US).map(
        lambda us: dt.timedelta(microseconds=us)),
).map(dt.timezone)

datetimes = st.one_of(
    st.datetimes(),  # naive
    st.datetimes(timezones=fixed_offsets),
    st.datetimes(timezones=st.timezones()),  # named zones: stored as their offset then
).map(lambda value: value.replace(fold=0))

uuids = st.uuids()

json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=20,
)

# ---------------------------------------------------------------------------
# Exact comparisons
# ---------------------------------------------------------------------------


def same_float(a: Any, b: Any) -> bool:
    return (type(a) is float and type(b) is float
            and struct.pack("<d", a) == struct.pack("<d", b))


def same_decimal(a: Any, b: Any) -> bool:
    return (type(a) is decimal.Decimal and type(b) is decimal.Decimal
            and a.as_tuple() == b.as_tuple() and str(a) == str(b))


def same_datetime(a: Any, b: Any) -> bool:
    """Same wall time, same UTC offset (so the same instant), same naive-ness."""
    return (type(a) is dt.datetime and type(b) is dt.datetime
            and (a.tzinfo is None) == (b.tzinfo is None)
            and a.replace(tzinfo=None) == b.replace(tzinfo=None)
            and a.utcoffset() == b.utcoffset())


def same_json(a: Any, b: Any) -> bool:
    """Equal JSON documents, types included (``1 != 1.0 != True`` here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return same_float(a, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)


def same_exact(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


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
        value: decimal.Decimal) -> None:
    assert same_decimal(roundtrip(attributes.Decimal(), value), value)


@given(datetimes)
def test_datetime_envelope_round_trip_keeps_wall_time_offset_and_naiveness(
        value: dt.datetime) -> None:
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


@given(st.recursive(st.none() | texts | st.integers(),
                    lambda children: st.lists(children, max_size=4)
                    | st.tuples(children, children)
                    | st.dictionaries(texts, children, max_size=4),
                    max_leaves=12))
def test_json_field_holds_exactly_what_a_load_returns(value: Any) -> None:
    # JSON itself normalises (tuples become lists, surrogate pairs join):
    # casting applies that normalisation up front, so nothing changes on storage.
    held = attributes.JSON.cast(value)
    assert same_json(roundtrip(attributes.JSON(), held), held)


@given(uuids)
def test_pointer_envelope_round_trip_gives_the_target_key(value: uuid.UUID) -> None:
    target = User(id=value)
    assert roundtrip(Everything.owner, target) == f"repocket:tests.models:User:{value}"


@given(st.one_of(
    st.tuples(st.just(attributes.Unicode()), texts),
    st.tuples(st.just(attributes.Bytes()), binaries),
    st.tuples(st.just(attributes.Integer()), integers),
    st.tuples(st.just(attributes.Float()), floats),
    st.tuples(st.just(attributes.Decimal()), decimals),
    st.tuples(st.just(attributes.DateTime()), datetimes),
    st.tuples(st.just(attributes.UUID()), uuids),
    st.tuples(st.just(attributes.JSON()), json_documents),
))
def test_envelope_text_is_strict_ascii_json_with_the_documented_members(
        case: tuple[attributes.Attribute, Any]) -> None:
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
# (b) Model round trips through storage, on every backend
# ---------------------------------------------------------------------------

records = st.fixed_dictionaries({
    "id": uuids,
    "text": texts,
    "raw": binaries,
    "number": integers,
    "ratio": floats,
    "amount": decimals,
    "when": datetimes,
    "ref": uuids,
    "doc": json_documents.filter(lambda doc: doc is not None),
    "log": binaries,
    "owner_name": texts,
})


def assert_same_record(loaded: Everything, values: dict[str, Any], owner: User) -> None:
    assert same_exact(loaded.id, values["id"])
    assert same_exact(loaded.text, values["text"])
    assert same_exact(loaded.raw, values["raw"])
    assert same_exact(loaded.number, values["number"])
    assert same_float(loaded.ratio, values["ratio"])
    assert same_decimal(loaded.amount, values["amount"])
    assert same_datetime(loaded.when, values["when"])
    assert same_exact(loaded.ref, values["ref"])
    assert same_json(loaded.doc, values["doc"])
    assert same_exact(loaded.log, values["log"])
    assert isinstance(loaded.owner, User)
    assert same_exact(loaded.owner.id, owner.id)
    assert same_exact(loaded.owner.name, owner.name)


@given(records)
def test_every_field_type_survives_a_save_and_get_on_each_backend(
        storage: Storage, values: dict[str, Any]) -> None:
    owner = User(name=values["owner_name"])
    owner.save()
    record = Everything(owner=owner, **{k: v for k, v in values.items() if k != "owner_name"})
    record.save()

    loaded = Everything.objects.get(id=values["id"])

    assert_same_record(loaded, values, owner)
    assert loaded == record


@given(records)
def test_a_loaded_record_saved_again_reads_back_unchanged_on_each_backend(
        storage: Storage, values: dict[str, Any]) -> None:
    owner = User(name=values["owner_name"])
    owner.save()
    Everything(owner=owner, **{k: v for k, v in values.items() if k != "owner_name"}).save()

    Everything.objects.get(id=values["id"]).save()
    loaded = Everything.objects.get(id=values["id"])

    assert_same_record(loaded, values, owner)


@given(texts, binaries, uuids)
def test_user_fields_survive_a_create_and_get_on_each_backend(
        storage: Storage, name: str, email: bytes, record_id: uuid.UUID) -> None:
    User.create(id=record_id, name=name, email=email)
    loaded = User.objects.get(id=str(record_id))
    assert same_exact(loaded.name, name)
    assert same_exact(loaded.email, email)
