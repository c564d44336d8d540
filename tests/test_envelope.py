"""The envelope (``repocket.serialization``) and the attribute classes, unit by unit.

The stored texts asserted here are a contract: they are what repocket 0.0.1
documented in its "Serialization Rules" chapter, and what every backend holds.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import struct
import sys
import uuid

import pytest

from repocket import attributes, serialization
from repocket.errors import EnvelopeError, RepocketError, UnknownFieldError, ValidationError

from .models import Everything, Project, User

HARRY_ID = uuid.UUID("970773fa-4de1-11e5-86f4-6c4008a70392")
RECORD_KEY = "repocket:repocket.testing.models:User:970773fa-4de1-11e5-86f4-6c4008a70392"


def envelope_text(
    type_name: str, value: object, module: str = "repocket.attributes", **extra: object
) -> str:
    """Envelope text built by hand, for decoding tests."""
    return json.dumps({"type": type_name, "value": value, "module": module, **extra})


# ---------------------------------------------------------------------------
# Exact stored texts (the 0.0.1 documentation's HGETALL output)
# ---------------------------------------------------------------------------


def test_unicode_envelope_text_is_the_documented_one() -> None:
    assert serialization.dumps(attributes.Unicode(), "Harry Potter") == (
        '{"type": "Unicode", "value": "Harry Potter", "module": "repocket.attributes"}'
    )


def test_bytes_envelope_text_is_the_documented_one() -> None:
    assert serialization.dumps(attributes.Bytes(), b"harry@hogwards.uk") == (
        '{"type": "Bytes", "value": "harry@hogwards.uk", "module": "repocket.attributes"}'
    )


def test_password_bytes_envelope_text_is_the_documented_one() -> None:
    assert serialization.dumps(attributes.Bytes(), b"somethingsecret") == (
        '{"type": "Bytes", "value": "somethingsecret", "module": "repocket.attributes"}'
    )


def test_autouuid_envelope_text_is_the_documented_one() -> None:
    assert serialization.dumps(attributes.AutoUUID(), HARRY_ID) == (
        '{"type": "AutoUUID", "value": "970773fa-4de1-11e5-86f4-6c4008a70392", '
        '"module": "repocket.attributes"}'
    )


def test_envelope_members_are_in_the_order_type_value_module() -> None:
    data = json.loads(serialization.dumps(attributes.Integer(), 7))
    assert list(data) == ["type", "value", "module"]


def test_json_field_value_is_the_json_text_as_a_string() -> None:
    tricks = {"known_tricks": ["Protego", "Expelliarmus", "Wingardium Leviosa", "Expecto Patronum"]}
    text = serialization.dumps(attributes.JSON(), tricks)
    assert text == (
        '{"type": "JSON", "value": "{\\"known_tricks\\": [\\"Protego\\", '
        '\\"Expelliarmus\\", \\"Wingardium Leviosa\\", \\"Expecto Patronum\\"]}", '
        '"module": "repocket.attributes"}'
    )
    assert json.loads(json.loads(text)["value"]) == tricks


def test_non_utf8_bytes_are_stored_in_base64_with_an_encoding_member() -> None:
    assert serialization.dumps(attributes.Bytes(), b"\xff\x00") == (
        '{"type": "Bytes", "value": "/wA=", "module": "repocket.attributes", "encoding": "base64"}'
    )


def test_utf8_bytes_are_stored_as_text_without_an_encoding_member() -> None:
    data = json.loads(serialization.dumps(attributes.Bytes(), "caf\u00e9".encode()))
    assert data == {"type": "Bytes", "value": "caf\u00e9", "module": "repocket.attributes"}


def test_bytestream_envelope_names_its_own_type() -> None:
    assert serialization.dumps(attributes.ByteStream(), b"log") == (
        '{"type": "ByteStream", "value": "log", "module": "repocket.attributes"}'
    )


def test_non_ascii_text_is_stored_as_ascii_escapes() -> None:
    text = serialization.dumps(attributes.Unicode(), "caf\u00e9 \U0001f600")
    assert text == (
        '{"type": "Unicode", "value": "caf\\u00e9 \\ud83d\\ude00", "module": "repocket.attributes"}'
    )
    assert text.isascii()


def test_text_with_surrogate_code_points_is_stored_in_base64() -> None:
    # Two separate surrogates: JSON "\ud83d\ude00" would read back as one emoji.
    text = serialization.dumps(attributes.Unicode(), "\ud83d\ude00")
    assert text == (
        '{"type": "Unicode", "value": "7aC97biA", "module": "repocket.attributes", '
        '"encoding": "base64"}'
    )


def test_separate_surrogates_are_not_joined_into_one_character() -> None:
    value = "\ud83d\ude00"
    loaded = serialization.loads(
        attributes.Unicode(), serialization.dumps(attributes.Unicode(), value)
    )
    assert loaded == value
    assert len(loaded) == 2


def test_integer_is_stored_as_a_json_number() -> None:
    assert serialization.dumps(attributes.Integer(), 2**100) == (
        '{"type": "Integer", "value": 1267650600228229401496703205376, '
        '"module": "repocket.attributes"}'
    )


def test_finite_float_is_stored_as_a_json_number() -> None:
    assert serialization.dumps(attributes.Float(), 0.1) == (
        '{"type": "Float", "value": 0.1, "module": "repocket.attributes"}'
    )


def test_negative_zero_float_is_stored_with_its_sign() -> None:
    assert json.loads(serialization.dumps(attributes.Float(), -0.0))["value"] == -0.0
    assert '"value": -0.0' in serialization.dumps(attributes.Float(), -0.0)


def test_positive_infinity_is_stored_as_the_string_infinity() -> None:
    assert serialization.dumps(attributes.Float(), math.inf) == (
        '{"type": "Float", "value": "Infinity", "module": "repocket.attributes"}'
    )


def test_negative_infinity_is_stored_as_the_string_minus_infinity() -> None:
    assert serialization.dumps(attributes.Float(), -math.inf) == (
        '{"type": "Float", "value": "-Infinity", "module": "repocket.attributes"}'
    )


def test_canonical_nan_is_stored_as_the_string_nan() -> None:
    assert serialization.dumps(attributes.Float(), math.nan) == (
        '{"type": "Float", "value": "NaN", "module": "repocket.attributes"}'
    )


def test_nan_with_sign_or_payload_is_stored_with_its_bits() -> None:
    payload_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_002A))[0]
    assert serialization.dumps(attributes.Float(), payload_nan) == (
        '{"type": "Float", "value": "NaN:0xfff800000000002a", "module": "repocket.attributes"}'
    )


def test_float_envelope_text_is_strict_json() -> None:
    # JSON has no NaN/Infinity literals: the stored text must not use them.
    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    for value in (math.inf, -math.inf, math.nan, -math.nan):
        json.loads(serialization.dumps(attributes.Float(), value), parse_constant=refuse)


def test_decimal_is_stored_as_its_exact_text() -> None:
    value = decimal.Decimal("3.141592653589793238462643383279")
    assert serialization.dumps(attributes.Decimal(), value) == (
        '{"type": "Decimal", "value": "3.141592653589793238462643383279", '
        '"module": "repocket.attributes"}'
    )


def test_decimal_keeps_its_exponent_in_the_stored_text() -> None:
    assert (
        json.loads(serialization.dumps(attributes.Decimal(), decimal.Decimal("1.500")))["value"]
        == "1.500"
    )
    assert (
        json.loads(serialization.dumps(attributes.Decimal(), decimal.Decimal("1E+5")))["value"]
        == "1E+5"
    )


def test_decimal_special_values_are_stored_as_their_text() -> None:
    for text in ("NaN", "-sNaN12", "Infinity", "-Infinity", "-0"):
        assert (
            json.loads(serialization.dumps(attributes.Decimal(), decimal.Decimal(text)))["value"]
            == text
        )


def test_aware_datetime_is_stored_as_iso_text_with_its_offset() -> None:
    value = dt.datetime(
        2015, 8, 27, 13, 45, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45))
    )
    assert serialization.dumps(attributes.DateTime(), value) == (
        '{"type": "DateTime", "value": "2015-08-27T13:45:00.123456+05:45", '
        '"module": "repocket.attributes"}'
    )


def test_naive_datetime_is_stored_as_iso_text_without_an_offset() -> None:
    value = dt.datetime(2015, 8, 27, 13, 45, 0, 1)
    assert (
        json.loads(serialization.dumps(attributes.DateTime(), value))["value"]
        == "2015-08-27T13:45:00.000001"
    )


def test_datetime_odd_negative_offset_with_seconds_is_stored_and_read_back() -> None:
    offset = -dt.timedelta(hours=5, minutes=45, seconds=7, microseconds=9)
    value = dt.datetime(2015, 8, 27, 13, 45, tzinfo=dt.timezone(offset))
    text = serialization.dumps(attributes.DateTime(), value)
    assert json.loads(text)["value"] == "2015-08-27T13:45:00-05:45:07.000009"
    assert serialization.loads(attributes.DateTime(), text).utcoffset() == offset


def test_datetime_offset_of_less_than_a_second_is_not_read_back_as_utc() -> None:
    offset = -dt.timedelta(microseconds=1)
    value = dt.datetime(2000, 1, 1, tzinfo=dt.timezone(offset))
    text = serialization.dumps(attributes.DateTime(), value)
    assert json.loads(text)["value"] == "2000-01-01T00:00:00-00:00:00.000001"
    assert serialization.loads(attributes.DateTime(), text).utcoffset() == offset


def test_datetime_cast_keeps_an_offset_of_less_than_a_second() -> None:
    assert attributes.DateTime.cast("2000-01-01T00:00:00+00:00:00.500000").utcoffset() == (
        dt.timedelta(microseconds=500000)
    )


def test_datetime_cast_of_utc_text_gives_a_zero_offset() -> None:
    assert attributes.DateTime.cast("2000-01-01T00:00:00+00:00").utcoffset() == dt.timedelta(0)


def test_uuid_is_stored_as_its_hyphenated_text() -> None:
    assert serialization.dumps(attributes.UUID(), HARRY_ID) == (
        '{"type": "UUID", "value": "970773fa-4de1-11e5-86f4-6c4008a70392", '
        '"module": "repocket.attributes"}'
    )


def test_pointer_value_is_the_target_hash_key() -> None:
    harry = User(id=HARRY_ID, name="Harry Potter")
    assert serialization.dumps(Everything.owner, harry) == (
        '{"type": "Pointer", "value": "' + RECORD_KEY + '", "module": "repocket.attributes"}'
    )


def test_none_is_stored_as_json_null() -> None:
    assert serialization.dumps(attributes.Integer(null=True), None) == (
        '{"type": "Integer", "value": null, "module": "repocket.attributes"}'
    )


# ---------------------------------------------------------------------------
# Documented class methods: cast, get_base_type, to_python, to_string
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "base_type"),
    [
        (attributes.Unicode, str),
        (attributes.Bytes, bytes),
        (attributes.ByteStream, bytes),
        (attributes.Integer, int),
        (attributes.Float, float),
        (attributes.Decimal, decimal.Decimal),
        (attributes.DateTime, dt.datetime),
        (attributes.UUID, uuid.UUID),
        (attributes.AutoUUID, uuid.UUID),
    ],
)
def test_get_base_type_returns_the_documented_base_type(
    attribute: type[attributes.Attribute], base_type: type
) -> None:
    assert attribute.get_base_type() is base_type


def test_cast_converts_text_to_integer() -> None:
    assert attributes.Integer.cast("42") == 42


def test_cast_converts_a_whole_float_to_integer() -> None:
    result = attributes.Integer.cast(3.0)
    assert result == 3 and type(result) is int


def test_cast_refuses_a_fractional_float_for_integer() -> None:
    with pytest.raises(ValueError):
        attributes.Integer.cast(1.5)


def test_cast_converts_text_to_uuid() -> None:
    assert attributes.UUID.cast(str(HARRY_ID)) == HARRY_ID


def test_cast_converts_iso_text_to_datetime() -> None:
    assert attributes.DateTime.cast("2015-08-27T13:45:00+05:45") == dt.datetime(
        2015, 8, 27, 13, 45, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45))
    )


def test_cast_converts_a_float_to_the_decimal_a_person_typed() -> None:
    assert attributes.Decimal.cast(0.1) == decimal.Decimal("0.1")


def test_cast_encodes_text_to_bytes() -> None:
    assert attributes.Bytes.cast("caf\u00e9") == "caf\u00e9".encode()


def test_cast_decodes_utf8_bytes_to_text() -> None:
    assert attributes.Unicode.cast("caf\u00e9".encode()) == "caf\u00e9"


def test_cast_returns_a_value_of_the_base_type_unchanged() -> None:
    value = decimal.Decimal("1.10")
    assert attributes.Decimal.cast(value) is value


def test_to_python_returns_the_envelope_dict_by_default() -> None:
    assert attributes.Unicode().to_python("Harry Potter") == {
        "type": "Unicode",
        "value": "Harry Potter",
        "module": "repocket.attributes",
    }


def test_to_python_envelope_dict_keeps_the_key_order() -> None:
    assert list(attributes.Bytes().to_python(b"\xff")) == ["type", "value", "module", "encoding"]


def test_to_python_simple_returns_the_json_safe_value() -> None:
    assert attributes.UUID().to_python(HARRY_ID, simple=True) == str(HARRY_ID)


def test_to_python_simple_gives_base64_text_for_non_utf8_bytes() -> None:
    assert attributes.Bytes().to_python(b"\xff\x00", simple=True) == "/wA="


def test_to_python_simple_gives_a_float_infinity_as_text() -> None:
    assert attributes.Float().to_python(-math.inf, simple=True) == "-Infinity"


def test_to_python_simple_gives_a_datetime_as_iso_text() -> None:
    assert attributes.DateTime().to_python(dt.datetime(2015, 8, 27, 13, 45), simple=True) == (
        "2015-08-27T13:45:00"
    )


def test_to_python_simple_is_json_serializable() -> None:
    value = attributes.Decimal().to_python(decimal.Decimal("1.10"), simple=True)
    assert json.dumps(value) == '"1.10"'


def test_to_string_returns_the_stored_envelope_text() -> None:
    assert attributes.Bytes().to_string(b"harry@hogwards.uk") == (
        '{"type": "Bytes", "value": "harry@hogwards.uk", "module": "repocket.attributes"}'
    )


def test_to_string_is_the_json_text_of_to_python() -> None:
    field = attributes.Float()
    assert json.loads(field.to_string(math.inf)) == field.to_python(math.inf)


def test_model_field_to_python_names_the_field_class() -> None:
    assert Everything.amount.to_python(decimal.Decimal("2.50")) == {
        "type": "Decimal",
        "value": "2.50",
        "module": "repocket.attributes",
    }


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


def test_loads_reads_the_documented_bytes_envelope() -> None:
    text = '{"type": "Bytes", "value": "harry@hogwards.uk", "module": "repocket.attributes"}'
    assert serialization.loads(attributes.Bytes(), text) == b"harry@hogwards.uk"


def test_loads_reads_envelope_text_given_as_bytes() -> None:
    text = b'{"type": "Unicode", "value": "Harry Potter", "module": "repocket.attributes"}'
    assert serialization.loads(attributes.Unicode(), text) == "Harry Potter"


def test_loads_reads_a_base64_marked_value_as_bytes() -> None:
    assert (
        serialization.loads(attributes.Bytes(), envelope_text("Bytes", "/wA=", encoding="base64"))
        == b"\xff\x00"
    )


def test_loads_returns_none_for_a_null_value() -> None:
    assert (
        serialization.loads(attributes.Integer(null=True), envelope_text("Integer", None)) is None
    )


def test_loads_casts_a_value_written_by_another_type_to_the_declared_type() -> None:
    # The model changed from Unicode to Bytes since the value was written.
    assert serialization.loads(attributes.Bytes(), envelope_text("Unicode", "caf\u00e9")) == (
        "caf\u00e9".encode()
    )


def test_loads_of_a_pointer_returns_the_target_key() -> None:
    assert serialization.loads(Everything.owner, envelope_text("Pointer", RECORD_KEY)) == RECORD_KEY


def test_decode_envelope_returns_the_class_and_the_json_value() -> None:
    assert serialization.decode_envelope(envelope_text("Integer", 5)) == (attributes.Integer, 5)


class Celsius(attributes.Float):
    """A custom attribute type, declared in a test module."""


def test_a_custom_attribute_type_is_decodable_once_its_class_is_defined() -> None:
    text = serialization.dumps(Celsius(), 21.5)
    assert json.loads(text)["module"] == __name__
    assert serialization.decode_envelope(text) == (Celsius, 21.5)


def test_registered_types_maps_module_and_name_to_the_class() -> None:
    assert (
        serialization.registered_types()[("repocket.attributes", "Unicode")] is attributes.Unicode
    )


def test_text_that_is_not_json_raises_envelope_error() -> None:
    with pytest.raises(EnvelopeError):
        serialization.loads(attributes.Unicode(), "Harry Potter")


def test_envelope_error_names_the_key_and_the_field() -> None:
    with pytest.raises(EnvelopeError) as caught:
        serialization.loads(attributes.Unicode(), "Harry Potter", key=RECORD_KEY, field="name")
    assert RECORD_KEY in str(caught.value)
    assert "'name'" in str(caught.value)
    assert caught.value.key == RECORD_KEY
    assert caught.value.field == "name"


def test_envelope_error_is_a_repocket_error_and_a_value_error() -> None:
    with pytest.raises(EnvelopeError) as caught:
        serialization.loads(attributes.Unicode(), "{", key=RECORD_KEY, field="name")
    assert isinstance(caught.value, RepocketError)
    assert isinstance(caught.value, ValueError)


def test_text_that_is_not_utf8_raises_envelope_error_naming_key_and_field() -> None:
    with pytest.raises(EnvelopeError, match="'email'") as caught:
        serialization.loads(attributes.Bytes(), b'{"type": "\xff"}', key=RECORD_KEY, field="email")
    assert RECORD_KEY in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        '"Harry Potter"',
        "[1, 2]",
        "42",
        "null",
        '{"type": "Unicode", "module": "repocket.attributes"}',
        '{"value": "x", "module": "repocket.attributes"}',
        '{"type": "Unicode", "value": "x"}',
        '{"type": 1, "value": "x", "module": "repocket.attributes"}',
        '{"type": "Unicode", "value": "x", "module": ["repocket", "attributes"]}',
    ],
)
def test_json_that_is_not_an_envelope_object_raises_envelope_error_naming_key_and_field(
    text: str,
) -> None:
    with pytest.raises(EnvelopeError, match="does not hold a repocket envelope") as caught:
        serialization.loads(attributes.Unicode(), text, key=RECORD_KEY, field="name")
    assert RECORD_KEY in str(caught.value)
    assert "'name'" in str(caught.value)


def test_unknown_type_name_raises_envelope_error_naming_key_and_field() -> None:
    with pytest.raises(EnvelopeError, match="unknown attribute type") as caught:
        serialization.loads(
            attributes.Unicode(), envelope_text("Pickle", "x"), key=RECORD_KEY, field="name"
        )
    assert RECORD_KEY in str(caught.value)
    assert "'name'" in str(caught.value)
    assert "repocket.attributes.Pickle" in str(caught.value)


def test_unknown_module_raises_envelope_error_naming_key_and_field() -> None:
    with pytest.raises(EnvelopeError, match="unknown attribute type") as caught:
        serialization.loads(
            attributes.Unicode(),
            envelope_text("Unicode", "x", module="evil"),
            key=RECORD_KEY,
            field="name",
        )
    assert RECORD_KEY in str(caught.value)
    assert "'name'" in str(caught.value)


def test_known_type_name_under_another_module_is_not_accepted() -> None:
    with pytest.raises(EnvelopeError):
        serialization.decode_envelope(envelope_text("Unicode", "x", module="repocket.model"))


def test_invalid_base64_raises_envelope_error_naming_key_and_field() -> None:
    with pytest.raises(EnvelopeError, match="invalid base64") as caught:
        serialization.loads(
            attributes.Bytes(),
            envelope_text("Bytes", "!!not base64!!", encoding="base64"),
            key=RECORD_KEY,
            field="password",
        )
    assert RECORD_KEY in str(caught.value)
    assert "'password'" in str(caught.value)


def test_base64_unicode_value_that_is_not_utf8_raises_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="'name'"):
        serialization.loads(
            attributes.Unicode(),
            envelope_text("Unicode", "/w==", encoding="base64"),
            key=RECORD_KEY,
            field="name",
        )


def test_unsupported_value_encoding_raises_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="unsupported value encoding"):
        serialization.loads(
            attributes.Bytes(),
            envelope_text("Bytes", "x", encoding="rot13"),
            key=RECORD_KEY,
            field="password",
        )


def test_value_the_type_cannot_read_raises_envelope_error_naming_key_and_field() -> None:
    with pytest.raises(EnvelopeError, match="cannot be read") as caught:
        serialization.loads(
            attributes.UUID(), envelope_text("UUID", "not-a-uuid"), key=RECORD_KEY, field="ref"
        )
    assert RECORD_KEY in str(caught.value)
    assert "'ref'" in str(caught.value)


def test_value_of_the_wrong_json_type_raises_envelope_error() -> None:
    with pytest.raises(EnvelopeError):
        serialization.loads(
            attributes.Float(), envelope_text("Float", [1.0]), key=RECORD_KEY, field="ratio"
        )


def test_deeply_nested_hostile_json_raises_envelope_error() -> None:
    with pytest.raises(EnvelopeError):
        serialization.loads(
            attributes.Unicode(), "[" * 200_000 + "]" * 200_000, key=RECORD_KEY, field="name"
        )


def test_deeply_nested_hostile_json_field_value_raises_envelope_error() -> None:
    inner = "[" * 200_000 + "]" * 200_000
    with pytest.raises(EnvelopeError):
        serialization.loads(
            attributes.JSON(), envelope_text("JSON", inner), key=RECORD_KEY, field="metadata"
        )


def test_an_integer_with_too_many_digits_in_stored_data_raises_envelope_error() -> None:
    text = (
        '{"type": "Integer", "value": '
        + "9" * (sys.get_int_max_str_digits() + 1)
        + ', "module": "repocket.attributes"}'
    )
    with pytest.raises(EnvelopeError):
        serialization.loads(attributes.Integer(), text, key=RECORD_KEY, field="number")


def test_decoding_never_imports_the_module_named_in_stored_data(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "imported.txt"
    module_name = "repocket_test_planted_module"
    (tmp_path / f"{module_name}.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('code ran')\n"
        "from repocket import attributes\n"
        "class Evil(attributes.Unicode):\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert module_name not in sys.modules

    with pytest.raises(EnvelopeError, match="never imports"):
        serialization.loads(
            attributes.Unicode(),
            envelope_text("Evil", "x", module=module_name),
            key=RECORD_KEY,
            field="name",
        )

    assert module_name not in sys.modules
    assert not marker.exists()


def test_decoding_never_imports_a_standard_library_module_named_in_stored_data() -> None:
    assert "antigravity" not in sys.modules  # importing it would open a web browser
    with pytest.raises(EnvelopeError):
        serialization.decode_envelope(
            envelope_text("Unicode", "x", module="antigravity"), key=RECORD_KEY, field="name"
        )
    assert "antigravity" not in sys.modules


def test_decoding_never_resolves_a_callable_of_an_imported_module() -> None:
    with pytest.raises(EnvelopeError):
        serialization.loads(
            attributes.Unicode(),
            envelope_text("system", "echo pwned", module="os"),
            key=RECORD_KEY,
            field="name",
        )


# ---------------------------------------------------------------------------
# Casting errors
# ---------------------------------------------------------------------------


def test_clean_raises_validation_error_for_text_that_is_not_an_integer() -> None:
    with pytest.raises(ValidationError) as caught:
        attributes.Integer().clean("abc", "User")
    assert "User" in str(caught.value)
    assert "'abc'" in str(caught.value)


def test_validation_error_is_a_value_error_and_a_repocket_error() -> None:
    with pytest.raises(ValidationError) as caught:
        attributes.Integer().clean("abc", "User")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RepocketError)


def test_model_integer_field_refuses_text_naming_the_field_and_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Everything(number="abc")
    assert "Everything.number" in str(caught.value)
    assert "'abc'" in str(caught.value)
    assert (caught.value.model, caught.value.field, caught.value.value) == (
        "Everything",
        "number",
        "abc",
    )


def test_model_integer_field_refuses_a_fractional_float() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.number.*1\.5"):
        Everything(number=1.5)


def test_assigning_an_invalid_value_after_construction_raises_validation_error() -> None:
    record = Everything()
    with pytest.raises(ValidationError, match=r"Everything\.number.*'abc'"):
        record.number = "abc"


def test_model_float_field_refuses_text_that_is_not_a_number() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.ratio.*'fast'"):
        Everything(ratio="fast")


def test_model_decimal_field_refuses_text_that_is_not_a_number() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.amount.*'ten'"):
        Everything(amount="ten")


def test_model_uuid_field_refuses_a_malformed_uuid() -> None:
    with pytest.raises(ValidationError) as caught:
        Everything(ref="970773fa-not-a-uuid")
    assert "Everything.ref" in str(caught.value)
    assert "'970773fa-not-a-uuid'" in str(caught.value)


def test_model_datetime_field_refuses_a_malformed_date() -> None:
    with pytest.raises(ValidationError) as caught:
        Everything(when="2015-13-45T99:00")
    assert "Everything.when" in str(caught.value)
    assert "'2015-13-45T99:00'" in str(caught.value)


def test_model_json_field_refuses_non_string_keys() -> None:
    with pytest.raises(ValidationError) as caught:
        Everything(doc={"ok": {1: "one"}})
    assert "Everything.doc" in str(caught.value)
    assert "1" in str(caught.value)


def test_model_json_field_refuses_nan() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.doc.*nan"):
        Everything(doc={"ratio": math.nan})


def test_model_json_field_refuses_infinity() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.doc"):
        Everything(doc=[math.inf])


def test_model_json_field_refuses_a_value_json_cannot_hold() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.doc.*set"):
        Everything(doc={"tags": {"a", "b"}})


def test_model_field_refuses_none_when_not_nullable() -> None:
    with pytest.raises(ValidationError) as caught:
        Everything(number=None)
    assert "Everything.number" in str(caught.value)
    assert "None" in str(caught.value)
    assert "null=True" in str(caught.value)


def test_model_pointer_field_refuses_a_record_of_another_model() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.owner.*User"):
        Everything(owner=Project(name="repocket"))


def test_model_unicode_field_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.text"):
        Everything(text=b"\xff")


def test_model_integer_field_takes_the_most_digits_python_converts() -> None:
    value = 10 ** (sys.get_int_max_str_digits() - 1)
    assert Everything(number=value).number == value


def test_model_integer_field_refuses_more_digits_than_python_converts() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.number.*bits") as caught:
        Everything(number=10 ** sys.get_int_max_str_digits())
    assert caught.value.field == "number"


def test_model_integer_field_refuses_a_decimal_with_a_huge_exponent_without_expanding_it() -> None:
    with pytest.raises(ValidationError, match=r"Everything\.number"):
        Everything(number=decimal.Decimal("1E+999999999"))


def test_unknown_keyword_raises_unknown_field_error_listing_the_fields() -> None:
    with pytest.raises(UnknownFieldError) as caught:
        Everything(colour="red")
    message = str(caught.value)
    assert "'colour'" in message
    for name in Everything._fields:
        assert name in message


def test_unknown_field_error_is_a_validation_error_and_a_key_error() -> None:
    with pytest.raises(UnknownFieldError) as caught:
        User(nickname="Boy Who Lived")
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, KeyError)
