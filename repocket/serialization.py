"""The envelope: the one encoder and decoder of every stored field value.

Each stored field is a JSON object, exactly as repocket 0.0.1 wrote it::

    {"type": "Unicode", "value": "Harry Potter", "module": "repocket.attributes"}

``type`` and ``module`` name the attribute class that wrote the value;
``value`` is that attribute's JSON-safe form of it.  Bytes that are not valid
UTF-8 cannot be JSON text, so they are stored in base64 and the envelope says
so with one more member, ``"encoding": "base64"``.

Decoding looks ``(module, type)`` up in a registry of attribute classes that
the program itself defined.  It never imports the module named in stored data
and never unpickles: whoever can write to the database must not be able to
make the application run code.  Anything that is not a valid envelope raises
:class:`~repocket.errors.EnvelopeError` naming the key and field.

Every backend stores the texts this module produces; none has its own format.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import EnvelopeError
from .text import short_repr

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .attributes import Attribute

__all__ = [
    "register_type",
    "registered_types",
    "envelope",
    "dumps",
    "loads",
    "decode_envelope",
    "scan_json",
    "envelope_affixes",
    "NOT_JSON",
    "BASE64",
]

BASE64 = "base64"

_types: dict[tuple[str, str], type[Attribute]] = {}
# json.dumps() with options builds an encoder per call; one is enough.
_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False)


def register_type(cls: type[Attribute]) -> type[Attribute]:
    """Make an attribute class decodable from envelopes that name it.

    Every subclass of :class:`~repocket.attributes.Attribute` registers itself
    when its class statement runs, under ``(cls.__module__, cls.__name__)``, so
    a custom attribute type in your own module is found the same way.
    """
    _types[(cls.__module__, cls.__name__)] = cls
    return cls


def registered_types() -> Mapping[tuple[str, str], type[Attribute]]:
    """A read-only view of ``(module, type name) -> attribute class``."""
    return MappingProxyType(_types)


def envelope(attribute: Attribute, value: Any) -> dict[str, Any]:
    """The envelope object for ``value`` of ``attribute`` (not yet JSON text)."""
    cls = type(attribute)
    json_value = None if value is None else attribute.to_json(value)
    data: dict[str, Any] = {"type": cls.__name__, "value": json_value, "module": cls.__module__}
    if isinstance(json_value, (bytes, bytearray)):
        try:
            data["value"] = bytes(json_value).decode("utf-8")
        except UnicodeDecodeError:
            data["value"] = base64.b64encode(json_value).decode("ascii")
            data["encoding"] = BASE64
    return data


def dumps(attribute: Attribute, value: Any) -> str:
    """Encode ``value`` of ``attribute`` as envelope JSON text.

    The text is pure ASCII (non-ASCII characters are ``\\u`` escaped).  A
    :class:`~repocket.attributes.Unicode` value holding surrogate code points
    is stored in base64 (see that class), so any Python string is stored and
    read back exactly.
    """
    json_value = None if value is None else attribute.to_json(value)
    kind = type(json_value)
    # The common JSON-safe values are written around the class's fixed
    # envelope text, exactly as the JSON encoder writes them; anything else
    # (bytes, containers, subclasses) takes the encoder's path.
    if kind is str:
        body = _encode_text(str(json_value))
    elif kind is int:
        body = int.__repr__(json_value)
    elif json_value is None:
        body = "null"
    elif kind is float and json_value - json_value == 0.0:  # finite
        body = float.__repr__(json_value)
    else:
        return _ENCODER.encode(envelope(attribute, value))
    head, tail = _affixes(type(attribute))
    return head + body + tail


_encode_text = json.encoder.encode_basestring_ascii  # the encoder's own (C) function
_AFFIXES: dict[type, tuple[str, str]] = {}


def _affixes(cls: type[Attribute]) -> tuple[str, str]:
    """The envelope text of ``cls`` before and after its value."""
    found = _AFFIXES.get(cls)
    if found is None:
        head, _, tail = _ENCODER.encode(
            {"type": cls.__name__, "value": 0, "module": cls.__module__}
        ).partition(": 0, ")
        found = _AFFIXES[cls] = (head + ": ", ", " + tail)
    return found


# The C scanner behind json.loads, called directly: one call per stored text,
# without json.loads's per-call checks.
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
#: what :func:`scan_json` returns for text that is not one JSON value
NOT_JSON: Any = object()


def scan_json(text: bytes) -> Any:
    """The JSON value ``text`` holds, fast; :data:`NOT_JSON` when it is not
    exactly one JSON value in UTF-8 (surrounding whitespace included): the
    caller then decodes it with :func:`loads`, which says what is wrong."""
    try:
        decoded = text.decode("utf-8")
        value, end = _SCAN(decoded, 0)
    except (StopIteration, ValueError, RecursionError):  # UnicodeDecodeError too
        return NOT_JSON
    return value if end == len(decoded) else NOT_JSON


def envelope_affixes(cls: type[Attribute]) -> tuple[bytes, bytes]:
    """The envelope text of attribute class ``cls`` before and after the
    value, as :func:`dumps` writes it (UTF-8 bytes, as storage returns it)."""
    head, tail = _affixes(cls)
    return head.encode("utf-8"), tail.encode("utf-8")


def decode_envelope(
    text: str | bytes, *, key: str | None = None, field: str | None = None
) -> tuple[type[Attribute], Any]:
    """Parse envelope text into ``(attribute class, JSON-safe value)``.

    A base64-marked value is returned as ``bytes``.

    :raises EnvelopeError: the text is not JSON, not an envelope, or names an
        attribute type that this program has not defined.
    """
    where = f"field {field!r} of {key!r}" if key else f"field {field!r}"
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # too deep: hostile
        raise EnvelopeError(
            f"{where} does not hold a repocket envelope: {short_repr(text)} ({exc})",
            key=key,
            field=field,
        ) from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("type"), str)
        or not isinstance(data.get("module"), str)
        or "value" not in data
    ):
        raise EnvelopeError(
            f"{where} does not hold a repocket envelope "
            f"(a JSON object with 'type', 'value' and 'module'): "
            f"{short_repr(text)}",
            key=key,
            field=field,
        )
    cls = _types.get((data["module"], data["type"]))
    if cls is None:
        raise EnvelopeError(
            f"{where} names an unknown attribute type "
            f"{data['module']}.{data['type']}; repocket never imports "
            f"modules named in stored data",
            key=key,
            field=field,
        )
    value = data["value"]
    encoding = data.get("encoding")
    if encoding is not None:
        if encoding != BASE64 or not isinstance(value, str):
            raise EnvelopeError(
                f"{where} has an unsupported value encoding {encoding!r}", key=key, field=field
            )
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EnvelopeError(
                f"{where} holds invalid base64: {short_repr(value)}", key=key, field=field
            ) from exc
    return cls, value


def loads(
    attribute: Attribute, text: str | bytes, *, key: str | None = None, field: str | None = None
) -> Any:
    """Decode envelope text stored for ``attribute`` into a Python value.

    The envelope's own type reads its value; when the field's declared type
    differs (the model changed since the value was written), the result is
    then cast to the declared type.

    :raises EnvelopeError: invalid envelope, or a value neither type can read.
    """
    cls, json_value = decode_envelope(text, key=key, field=field)
    if json_value is None:
        return None
    try:
        value = cls.from_json(json_value)
        if not isinstance(attribute, cls):
            value = attribute.cast(value)
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        where = f"field {field!r} of {key!r}" if key else f"field {field!r}"
        raise EnvelopeError(
            f"{where} holds an envelope of type {cls.__name__} whose value "
            f"{short_repr(json_value)} cannot be read: {exc}",
            key=key,
            field=field,
        ) from exc
    return value
