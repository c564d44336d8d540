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
from collections.abc import Callable, Mapping
from typing import Any

from . import serialization
from .attributes import Attribute
from .storage import ByteNamedFields

__all__ = ["Decoder", "compile_decoder"]

#: ``decoder(texts, record_id, key_of)`` -> field name -> value, for every
#: hash field of the model.  ``key_of(record_id)`` names the record's key in
#: errors (computed only when one is raised).
Decoder = Callable[[Mapping[str, Any], str, Callable[[str], str]], dict[str, Any]]

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
        f"                s = t[{{hl{i}}}:len(t) - {{tl{i}}}].decode()",
        "                j, e = scan(s, 0)",
        "            except NOT_ONE_VALUE:",
        "                pass",
        "            else:",
        "                if e == len(s):",
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


def compile_decoder(fields: Mapping[str, Attribute], model_name: str) -> Decoder:
    """Generate the decoder of a model's hash fields (``fields``: name ->
    attribute, in the model's order)."""
    namespace: dict[str, Any] = {
        "NOT_READ": _NOT_READ,
        "NOT_ONE_VALUE": (StopIteration, ValueError, RecursionError),  # UnicodeDecodeError too
        "UNREADABLE": (TypeError, ValueError, ArithmeticError, RecursionError),
        "scan": _SCAN,
        "slow": _slow,
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
        body = [f"def {function}(texts, record_id, key_of):", "    get = texts.get"]
        result: list[str] = []
        for i, (name, field) in enumerate(fields.items()):
            head, tail = serialization.envelope_affixes(type(field))
            source = "\n".join(_field_source(i, field))
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
        "def decode(texts, record_id, key_of):\n"
        "    if texts.__class__ is BYTE_NAMED:\n"
        "        return decode_bytes(texts.raw, record_id, key_of)\n"
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
