"""Per-model record decoders: stored envelopes to field values, fast.

Records are loaded by the thousand, and a general loop over a model's fields
(unpacking a tuple of facts per field, calling a converter per value) costs
more than reading the reply they came in.  So each model gets a decoder
function generated once, the first time one of its records is loaded: the
fields are unrolled, each field's envelope head and tail are constants, and
a value whose JSON type is already the field's Python type is taken as is.

The fast path accepts exactly what repocket writes: an envelope of the
field's own type (``{"type": "Unicode", "value": ..., "module":
"repocket.attributes"}`` byte for byte around the value) whose value is one
whole JSON value.  Anything else -- another type's envelope, a base64 value,
damaged or hostile text -- goes through :func:`repocket.serialization.loads`,
which reads every valid form and raises :class:`~repocket.errors.EnvelopeError`
naming the key and field of what it cannot read.  The generated source holds
no name taken from a model: field names and attributes are passed in as
values or as ``repr()`` string literals, so no declaration can change the code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from . import attributes, serialization
from .attributes import Attribute
from .storage import ByteNamedFields

__all__ = ["Decoder", "Encoder", "compile_decoder", "compile_encoder"]

#: ``decoder(texts, record_id, key_of, known=None)`` -> field name -> value,
#: for every hash field of the model.  ``key_of(record_id)`` names the
#: record's key in errors (computed only when one is raised).  ``known``: the
#: primary key's value when the caller has it (the UUID it asked for): a
#: stored primary key that is exactly the envelope of ``record_id`` is then
#: that value, without being parsed again.
Decoder = Callable[..., dict[str, Any]]

#: ``encoder(values, record_id=None)`` -> field name -> envelope text, for
#: every hash field of the model (``values``: field name -> value;
#: ``record_id``: the primary key's text, when the caller has made it).
Encoder = Callable[..., dict[str, str]]

# What a UUID field writes, unless a subclass says otherwise.
_UUID_TO_JSON = attributes.UUID.to_json.__func__  # type: ignore[attr-defined]

# The C scanner behind json.loads, called directly (see serialization.scan_json).
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_NOT_READ: Any = object()


def _slow(field: Attribute, name: str, text: Any, record_id: str, key_of: Any) -> Any:
    """Any envelope the fast path does not take: the general reader."""
    return serialization.loads(field, text, key=key_of(record_id), field=name)


def _field_source(i: int, field: Attribute) -> list[str]:
    """The lines decoding field number ``i`` into ``v{i}``."""
    lines = [
        f"    t = get({{key{i}}})",
        "    if t is None:",
        f"        v{i} = F{i}.initial_value()",
        "    else:",
        f"        v{i} = NOT_READ",
        f"        if t.__class__ is bytes and t.startswith(H{i}) and t.endswith(T{i}):",
        "            try:",
        # the value is scanned where it starts in the whole text (the
        # envelope's affixes are ASCII: byte and character offsets agree)
        "                s = t.decode()",
        f"                j, e = scan(s, {{hl{i}}})",
        "            except NOT_ONE_VALUE:",
        "                pass",
        "            else:",
        f"                if e == len(s) - {{tl{i}}}:",
    ]
    # a value already of the field's JSON type is its Python value as is
    same_type = f"j.__class__ is J{i}" if field.json_type is not None else "False"
    lines += [
        f"                    if {same_type}:",
        f"                        v{i} = j",
        "                    elif j is None:",
        f"                        v{i} = None",
        "                    else:",
        "                        try:",
        f"                            v{i} = C{i}(j)",
        "                        except UNREADABLE:",
        "                            pass",
    ]
    lines += [
        f"        if v{i} is NOT_READ:",
        f"            v{i} = slow(F{i}, N{i}, t, record_id, key_of)",
        f"        if v{i} is None:",
        f"            v{i} = {'None' if field.null else f'F{i}.empty_value()'}",
    ]
    return lines


def _known_source(i: int) -> list[str]:
    """The primary key field ``i``: the caller's value when the stored text
    is exactly the envelope of the record's id, else the general lines."""
    return [
        f"    if known is not None and get({{key{i}}}) == H{i} + QUOTE + record_id.encode()"
        f" + QUOTE + T{i}:",
        f"        v{i} = known",
        "    else:",
    ]


def compile_decoder(
    fields: Mapping[str, Attribute], model_name: str, primary_key: str | None = None
) -> Decoder:
    """Generate the decoder of a model's hash fields (``fields``: name ->
    attribute, in the model's order; ``primary_key``: the name of the one
    whose value a caller may know)."""
    namespace: dict[str, Any] = {
        "NOT_READ": _NOT_READ,
        "NOT_ONE_VALUE": (StopIteration, ValueError, RecursionError),  # UnicodeDecodeError too
        "UNREADABLE": (TypeError, ValueError, ArithmeticError, RecursionError),
        "scan": _SCAN,
        "slow": _slow,
        "QUOTE": b'"',
    }
    for i, (name, field) in enumerate(fields.items()):
        head, tail = serialization.envelope_affixes(type(field))
        namespace.update(
            {
                f"N{i}": name,
                f"F{i}": field,
                f"H{i}": head,
                f"T{i}": tail,
                f"J{i}": field.json_type,
                f"C{i}": field.from_json,
            }
        )
    # Two readers of the same fields: one of text names, one of a hash
    # reply's own UTF-8 names (ByteNamedFields), which saves re-keying
    # every reply.  Constants are written into the source: lengths, and the
    # field's name as a str or bytes literal (repr() of either is always one).
    sources = []
    for function, as_key in (("decode_text", repr), ("decode_bytes", _bytes_literal)):
        body = [f"def {function}(texts, record_id, key_of, known=None):", "    get = texts.get"]
        result: list[str] = []
        for i, (name, field) in enumerate(fields.items()):
            head, tail = serialization.envelope_affixes(type(field))
            lines = _field_source(i, field)
            if name == primary_key and function == "decode_bytes":
                lines = _known_source(i) + ["    " + line for line in lines]
            source = "\n".join(lines)
            for placeholder, text in (
                ("hl", str(len(head))),
                ("tl", str(len(tail))),
                ("key", as_key(name)),
            ):
                source = source.replace(f"{{{placeholder}{i}}}", text)
            body.append(source)
            result.append(f"{name!r}: v{i}")
        body.append(f"    return {{{', '.join(result)}}}")
        sources.append("\n".join(body))
    sources.append(
        "def decode(texts, record_id, key_of, known=None):\n"
        "    if texts.__class__ is BYTE_NAMED:\n"
        "        return decode_bytes(texts.raw, record_id, key_of, known)\n"
        "    return decode_text(texts, record_id, key_of)"
    )
    namespace["BYTE_NAMED"] = ByteNamedFields
    code = compile("\n\n".join(sources), f"<repocket decoder of {model_name}>", "exec")
    exec(code, namespace)  # generated from the constants above: no model text inside
    decoder: Decoder = namespace["decode"]
    return decoder


def _bytes_literal(name: str) -> str:
    """A field name as the literal of its UTF-8 bytes."""
    return repr(name.encode("utf-8"))


def compile_encoder(
    fields: Mapping[str, Attribute], model_name: str, primary_key: str | None = None
) -> Encoder:
    """Generate the encoder of a model's hash fields (``fields``: name ->
    attribute, in the model's order): what :func:`repocket.serialization.dumps`
    writes for each field, with its fixed envelope text and its ``to_json``
    bound once (saves are made by the thousand in ``bulk_create``).  Values
    other than text, whole numbers, finite floats and ``None`` take
    ``dumps`` itself.  ``encoder(values, record_id)``: the primary key
    (``primary_key``), a UUID, is written from its text ``record_id``, which
    the caller has made already."""
    namespace: dict[str, Any] = {
        "ENC": json.encoder.encode_basestring_ascii,  # what dumps() uses
        "INT": int.__repr__,
        "FLOAT": float.__repr__,
        "DUMPS": serialization.dumps,
        "UUID": uuid.UUID,
    }
    body = ["def encode(values, record_id=None):"]
    result: list[str] = []
    for i, (name, field) in enumerate(fields.items()):
        head, tail = serialization.envelope_affixes(type(field))
        namespace.update(
            {
                f"F{i}": field,
                f"TJ{i}": field.to_json,
                f"H{i}": head.decode("utf-8"),
                f"T{i}": tail.decode("utf-8"),
                f"NULL{i}": (head + b"null" + tail).decode("utf-8"),
            }
        )
        plain_uuid = getattr(type(field).to_json, "__func__", None) is _UUID_TO_JSON
        if name == primary_key and plain_uuid:
            # a UUID's JSON is its text in quotes (hex digits and hyphens)
            body += [
                f"    v = values[{name!r}]",
                "    if record_id is not None and v.__class__ is UUID:",
                f"        t{i} = H{i} + '\"' + record_id + '\"' + T{i}",
                "    elif v is None:",
            ]
        else:
            body += [
                f"    v = values[{name!r}]",
                "    if v is None:",
            ]
        body += [
            f"        t{i} = NULL{i}",
            "    else:",
            f"        j = TJ{i}(v)",
            "        k = j.__class__",
            "        if k is str:",
            f"            t{i} = H{i} + ENC(j) + T{i}",
            "        elif k is int:",
            f"            t{i} = H{i} + INT(j) + T{i}",
            "        elif j is None:",
            f"            t{i} = NULL{i}",
            "        elif k is float and j - j == 0.0:",
            f"            t{i} = H{i} + FLOAT(j) + T{i}",
            "        else:",
            f"            t{i} = DUMPS(F{i}, v)",
        ]
        result.append(f"{name!r}: t{i}")
    body.append(f"    return {{{', '.join(result)}}}")
    code = compile("\n".join(body), f"<repocket encoder of {model_name}>", "exec")
    exec(code, namespace)  # generated from the constants above: no model text inside
    encoder: Encoder = namespace["encode"]
    return encoder
