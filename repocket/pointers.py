"""Pointers between records: their stored form, and loading what they name.

A :class:`~repocket.attributes.Pointer` field holds its target's full record
key.  A record loaded by a query or ``get()`` has its pointers' targets
loaded with it, one round trip per batch (:func:`resolve_pointers`); a record
loaded *because a pointer named it* keeps its own pointers as
:class:`PendingPointer` keys, loaded the first time they are read, so a chain
of references is never walked eagerly.

This module imports neither the model nor the attribute modules: both use it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import errors
from .connections import configure
from .keys import parse_record_key
from .storage import LoadRequest

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .attributes import Pointer
    from .model import ActiveRecord

__all__ = [
    "PendingPointer",
    "expected_pointer_key",
    "load_many",
    "load_pointer",
    "pointer_key",
    "resolve_pointers",
]

logger = logging.getLogger("repocket")

M = TypeVar("M", bound="ActiveRecord")


class PendingPointer:
    """A pointer loaded as a key, fetched the first time it is read.

    Records loaded *because a pointer named them* keep their own pointers in
    this form, so loading never walks an unbounded chain of references.
    """

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def resolve(self, attribute: Pointer, model_name: str) -> Any:
        """Load the target record (``None`` when it no longer exists)."""
        return load_pointer(attribute, self.key, model_name)

    def __repr__(self) -> str:
        return f"<PendingPointer {self.key}>"


def load_many(
    model: type[M],
    ids: Sequence[str],
    *,
    with_pointers: bool = True,
    gone: set[str] | None = None,
    known: Sequence[Any] | None = None,
) -> list[M | None]:
    """Load records of ``model`` by id in one round trip (``None`` for missing ones).

    With ``with_pointers`` their Pointer fields are then loaded in one
    more round trip for the whole batch (``gone``: see :func:`resolve_pointers`).

    :param known: the primary key values the ids were made from, in the same
        order (``None`` where there is none), given to the records.
    """
    storage = configure.storage()
    meta = model._meta
    stored = storage.load_records(
        [LoadRequest(meta.collection, record_id, meta.stream_fields) for record_id in ids]
    )
    build = model._from_stored
    if known is None:
        records = [build(item) if item is not None else None for item in stored]
    else:
        records = [
            build(item, value) if item is not None else None
            for item, value in zip(stored, known, strict=True)
        ]
    if with_pointers and meta.pointer_fields:
        resolve_pointers([r for r in records if r is not None], gone)
    return records


def resolve_pointers(records: Sequence[ActiveRecord], gone: set[str] | None = None) -> None:
    """Load the targets of the records' pending pointers, in one round trip.

    The targets' own pointers stay pending (loaded when read), so a chain of
    references is never walked eagerly.  A target that no longer exists
    loads as ``None`` and is logged once, however many records point to it.

    :param gone: the deleted targets a query already reported, over its
        earlier batches: not reported again; the new ones are added.
    """
    wanted: dict[str, tuple[Pointer, list[tuple[ActiveRecord, str]]]] = {}
    for record in records:
        for name in type(record)._meta.pointer_fields:
            value = record._values[name]
            if isinstance(value, PendingPointer):
                # a pointer field's value (pointer_fields names only those)
                field: Pointer = type(record)._meta.fields[name]  # type: ignore[assignment]
                wanted.setdefault(value.key, (field, []))[1].append((record, name))
    if not wanted:
        return
    requests = []
    for key, (field, _) in wanted.items():
        collection, record_id = parse_record_key(key)
        requests.append(LoadRequest(collection, record_id, field.to_model._meta.stream_fields))
    stored = configure.storage().load_records(requests)
    reported = set() if gone is None else gone
    for (key, (field, holders)), item in zip(wanted.items(), stored, strict=True):
        if item is None and key not in reported:
            reported.add(key)
            record, name = holders[0]
            _warn_dangling(type(record).__name__, name, key, once=True)
        for record, name in holders:
            # One instance per holder: records loaded together stay independent.
            target = field.to_model._from_stored(item) if item is not None else None
            record._values[name] = target


def load_pointer(field: Pointer, key: str, model_name: str) -> Any:
    """Load the one record a pending pointer names (``None`` if it was deleted)."""
    collection, record_id = parse_record_key(key)
    target = field.to_model
    item = configure.storage().load_record(collection, record_id, target._meta.stream_fields)
    if item is None:
        _warn_dangling(model_name, field.name, key)
        return None
    return target._from_stored(item)


def _warn_dangling(model_name: str, field_name: str, key: str, once: bool = False) -> None:
    # a query reports a target once, however many records point to it: a
    # deleted author of 500 posts is one fact, not 500
    logger.warning(
        "%s.%s points to %s, which no longer exists; loaded as None%s",
        model_name,
        field_name,
        key,
        " (reported once per query, for every record pointing to it)" if once else "",
    )


def pointer_key(value: Any) -> str | None:
    """The record key a pointer value names (``None`` for no target)."""
    if value is None:
        return None
    if isinstance(value, PendingPointer):
        return value.key
    pk = value._values[type(value)._meta.primary_key]
    if pk is None:
        return None
    return configure.record_key(type(value)._meta.collection, str(pk))


def expected_pointer_key(field: Pointer, expected: Any) -> str | None:
    """A pointer lookup value (instance, id, UUID or key) as a record key."""
    if expected is None or isinstance(expected, (field.to_model, PendingPointer)):
        return pointer_key(expected)
    collection = field.to_model._meta.collection
    text = str(expected)
    if collection.owns_key(text):
        return text
    target = field.to_model._meta
    try:
        return configure.record_key(
            collection, str(target.fields[target.primary_key].cast(expected))
        )
    except (TypeError, ValueError) as exc:
        raise errors.ValidationError(
            f"{field.owner.__name__ if field.owner else '?'}.{field.name} is matched by a "
            f"{field.to_model.__name__}, its id or its key, not {expected!r}",
            field=field.name,
            value=expected,
        ) from exc
