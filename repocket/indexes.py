"""Which index entries a record has: the one place that decides.

For every indexed field of a model, :func:`entries_for` turns the record's
values into :class:`~repocket.storage.IndexEntry` names (and unique claims);
the query layer builds the same names to look records up.  Backends only
store and combine the entries; they never interpret them.

Entry names, per field ``f``:

``eq:f:<term>``
    membership: the records whose value's canonical text is ``<term>``
    (``null`` for ``None``).  Equal values share a term (``5``, ``5.0`` and
    ``Decimal("5.00")`` in numeric fields; aware datetimes of one instant).
``range:f``
    sorted, score = the value as a float (``-inf`` for ``None`` and NaN, so
    they sort first and match no range lookup).  Every record of the model
    has one, which is what lets a query be ordered by it on the server.
``class:f:aware`` / ``class:f:naive``
    membership, for DateTime: a range lookup only matches values of the
    same kind as its bound, as Python compares them.
``inexact:f``
    membership: records whose float score is not exactly their value (huge
    integers, most decimals, infinities); their matches are confirmed by
    comparing the loaded value.
``prefix:f:<json prefix>``
    membership, for ``Unicode(index="prefix")``: one entry per prefix of up
    to :data:`PREFIX_LENGTH` characters, for ``__startswith``.

A term longer than :data:`MAX_TERM` characters is shortened to its start plus a
SHA-256 digest, so entry names stay small; the query layer compares loaded
values anyway, so a shortened term can never produce a wrong result.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .attributes import Attribute
from .storage import IndexEntry, UniqueClaim

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .model import ActiveRecord

__all__ = [
    "PREFIX_LENGTH",
    "MAX_TERM",
    "NULL_TERM",
    "entries_for",
    "field_entries",
    "eq_name",
    "range_name",
    "class_name",
    "inexact_name",
    "prefix_name",
    "term_for",
]

#: Prefixes up to this many characters get an entry of their own.
PREFIX_LENGTH = 32
#: Terms longer than this are shortened with a digest.
MAX_TERM = 160
#: The term of ``None``; every other term is JSON text, a number or tagged.
NULL_TERM = "null"


def _shorten(term: str) -> str:
    if len(term) <= MAX_TERM:
        return term
    digest = hashlib.sha256(term.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{term[:64]}...sha256:{digest}"


def term_for(field: Attribute, value: Any) -> str | None:
    """The canonical term of a value (``None`` for a value equal to nothing)."""
    if value is None:
        return NULL_TERM
    term = field.index_term(value)
    return None if term is None else _shorten(term)


def eq_name(field_name: str, term: str) -> str:
    """The membership entry of records whose field has ``term``."""
    return f"eq:{field_name}:{term}"


def range_name(field_name: str) -> str:
    """The sorted entry of a field with a range index."""
    return f"range:{field_name}"


def class_name(field_name: str, tag: str) -> str:
    """The membership entry of values of one kind (aware/naive datetimes)."""
    return f"class:{field_name}:{tag}"


def inexact_name(field_name: str) -> str:
    """The membership entry of records whose score is not their exact value."""
    return f"inexact:{field_name}"


def prefix_name(field_name: str, prefix: str) -> str:
    """The membership entry of records whose text starts with ``prefix``."""
    return f"prefix:{field_name}:{_shorten(json.dumps(prefix))}"


def entries_for(
    model: type[ActiveRecord], values: Mapping[str, Any]
) -> tuple[frozenset[IndexEntry], frozenset[UniqueClaim]]:
    """Every index entry and unique claim of a record with these values."""
    entries: set[IndexEntry] = set()
    claims: set[UniqueClaim] = set()
    for name, field in model._meta.indexed:
        _add_field_entries(field, name, values[name], entries, claims)
    return frozenset(entries), frozenset(claims)


def field_entries(
    field: Attribute, name: str, value: Any
) -> tuple[frozenset[IndexEntry], frozenset[UniqueClaim]]:
    """The index entries and unique claims one field's value gives a record."""
    entries: set[IndexEntry] = set()
    claims: set[UniqueClaim] = set()
    if field.indexes:
        _add_field_entries(field, name, value, entries, claims)
    return frozenset(entries), frozenset(claims)


def _add_field_entries(
    field: Attribute, name: str, value: Any, entries: set[IndexEntry], claims: set[UniqueClaim]
) -> None:
    if "eq" in field.indexes:
        term = term_for(field, value)
        if term is not None:
            entries.add(IndexEntry(eq_name(name, term)))
            # None and the empty value ("", b"") are "no value": several
            # records may lack one, as several SQL rows may hold NULL.
            if field.unique and value is not None and value != field.empty_value():
                claims.add(UniqueClaim(name, term))
    if "range" in field.indexes:
        placed = field.sort_score(value) if value is not None else None
        if placed is None:
            entries.add(IndexEntry(range_name(name), -math.inf))
        else:
            tag, score, exact = placed
            entries.add(IndexEntry(range_name(name), score))
            if tag:
                entries.add(IndexEntry(class_name(name, tag)))
            if not exact:
                entries.add(IndexEntry(inexact_name(name)))
    if "prefix" in field.indexes and isinstance(value, str):
        for length in range(1, min(len(value), PREFIX_LENGTH) + 1):
            entries.add(IndexEntry(prefix_name(name, value[:length])))
