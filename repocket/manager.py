"""``Model.objects``: finding stored records.

:class:`Manager` answers ``get``, ``filter`` and ``all``; :class:`ResultSet`
is what ``filter`` and ``all`` return: a lazy, read-only sequence ("a list with
superpowers") that runs its query the first time it is used and can be
narrowed with :meth:`ResultSet.filter` and sorted with
:meth:`ResultSet.order_by`.

Loading costs, on a backend with a server:

* ``get(id=...)``: one round trip for the record and its ByteStreams, plus
  one for the records its Pointers name;
* ``filter``/``all``: records are read in batches of :attr:`ResultSet.batch_size`
  ids (one round trip per batch), so memory holds one batch of candidates at a
  time; the records pointed to by the matches of a batch are loaded in one more
  round trip for the batch, never one per record.

Filtering compares values in Python after loading (never with the blocking
``KEYS`` command); secondary indexes are the query engine's job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from . import errors
from .attributes import Attribute, AutoUUID, PendingPointer, Pointer
from .connections import configure
from .keys import parse_record_key
from .storage import LoadRequest

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .model import ActiveRecord

__all__ = ["Manager", "ManagerDescriptor", "ResultSet"]

logger = logging.getLogger("repocket")

M = TypeVar("M", bound="ActiveRecord")


class ManagerDescriptor:
    """Gives each model class its own :class:`Manager` as ``Model.objects``."""

    def __get__(self, instance: Any, owner: type[M]) -> Manager[M]:
        if instance is not None:
            raise AttributeError(f"objects is reachable from the {owner.__name__} class, "
                                 f"not from its instances")
        if owner is Manager.model_base:
            raise AttributeError("ActiveRecord itself has no records; use a model class")
        return Manager(owner)


class Manager(Generic[M]):
    """The entry point of queries on one model: ``Model.objects``."""

    #: set by :mod:`repocket.model` (avoids a circular import).
    model_base: ClassVar[type]

    def __init__(self, model: type[M]) -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"<Manager of {self.model.__name__}>"

    def create(self, **kwargs: Any) -> M:
        """Create, save and return a record; see :meth:`ActiveRecord.create`."""
        return self.model.create(**kwargs)

    def get(self, **kwargs: Any) -> M:
        """The one record matching ``kwargs``.

        ``get(id=...)`` takes a UUID or its text and reads the record directly
        (one round trip, plus one for its pointers).  Any other fields are
        looked up like :meth:`filter`.

        :raises Model.DoesNotExist: nothing matches.
        :raises Model.MultipleObjectsReturned: more than one record matches.
        :raises UnknownFieldError: a keyword is not a field of the model.
        :raises ValidationError: a value cannot be cast to its field's type.
        """
        model = self.model
        if not kwargs:
            raise errors.ValidationError(f"{model.__name__}.objects.get() needs a lookup, "
                                         f"e.g. get(id=...)", model=model.__name__)
        conditions = _conditions(model, kwargs)
        pk = model._primary_key
        if pk in kwargs:
            pk_value = dict(conditions)[pk]
            found = load_many(model, [str(pk_value)])[0] if pk_value is not None else None
            if found is not None and found.matches(kwargs):
                return found
            raise model.DoesNotExist(f"no {model.__name__} matches {_describe(kwargs)}")
        results = list(ResultSet(model, conditions))
        if not results:
            raise model.DoesNotExist(f"no {model.__name__} matches {_describe(kwargs)}")
        if len(results) > 1:
            raise model.MultipleObjectsReturned(
                f"{len(results)} {model.__name__} records match {_describe(kwargs)}")
        return results[0]

    def all(self) -> ResultSet[M]:
        """Every record of the model, as a lazy :class:`ResultSet`."""
        return ResultSet(self.model)

    def filter(self, **kwargs: Any) -> ResultSet[M]:
        """Records whose fields equal ALL the given values, as a lazy :class:`ResultSet`.

        A Pointer field can be matched by a model instance, an id or a key.
        """
        return ResultSet(self.model, _conditions(self.model, kwargs))

    def count(self) -> int:
        """How many records the model has, without loading any."""
        return configure.storage().count_records(self.model._collection)


class ResultSet(Sequence[M], Generic[M]):
    """The records matching a query; a lazy, read-only sequence.

    Nothing is read from storage until the result set is iterated, indexed,
    measured with ``len()`` or tested for truth; the results are then kept,
    so using it again does not query again.
    """

    #: how many ids are read (and records loaded) per round trip.
    batch_size: ClassVar[int] = 500

    def __init__(self, model: type[M], conditions: Iterable[tuple[str, Any]] = (),
                 ordering: Sequence[str] = ()) -> None:
        self.model = model
        self._conditions = tuple(conditions)
        self._ordering = tuple(ordering)
        self._cache: list[M] | None = None

    # -- narrowing -----------------------------------------------------------

    def filter(self, **kwargs: Any) -> ResultSet[M]:
        """A new result set with more conditions (all must hold)."""
        return ResultSet(self.model, self._conditions + _conditions(self.model, kwargs),
                         self._ordering)

    def order_by(self, *fields: str) -> ResultSet[M]:
        """A new result set sorted by the given fields, ``"-name"`` for descending.

        Several fields sort by the first, then the second among equals, and
        so on.  ``None`` sorts before every value.
        """
        for spec in fields:
            self.model._field(spec[1:] if spec.startswith("-") else spec)
        return ResultSet(self.model, self._conditions, fields)

    def first(self) -> M | None:
        """The first record, or ``None`` when there is none."""
        results = self._results()
        return results[0] if results else None

    def count(self) -> int:
        """How many records match."""
        return len(self._results())

    def exists(self) -> bool:
        """Whether any record matches."""
        return bool(self._results())

    # -- sequence protocol -------------------------------------------------------

    def __len__(self) -> int:
        return len(self._results())

    @overload
    def __getitem__(self, index: int) -> M: ...

    @overload
    def __getitem__(self, index: slice) -> list[M]: ...

    def __getitem__(self, index: int | slice) -> M | list[M]:
        return self._results()[index]

    def __iter__(self) -> Iterator[M]:
        return iter(self._results())

    def __bool__(self) -> bool:
        return bool(self._results())

    def __repr__(self) -> str:
        if self._cache is None:
            return (f"<ResultSet of {self.model.__name__} "
                    f"where {_describe(dict(self._conditions)) or 'all'} (not run)>")
        return f"<ResultSet of {self.model.__name__}: {self._cache!r}>"

    # -- running the query -------------------------------------------------------

    def _results(self) -> list[M]:
        if self._cache is None:
            results = list(self._matching())
            for spec in reversed(self._ordering):
                descending = spec.startswith("-")
                name = spec[1:] if descending else spec
                try:
                    results.sort(key=_sort_key(self.model._field(name), name),
                                 reverse=descending)
                except TypeError as exc:
                    raise errors.ValidationError(
                        f"cannot order by {self.model.__name__}.{name}: {exc}",
                        model=self.model.__name__, field=name) from exc
            self._cache = results
        return self._cache

    def _matching(self) -> Iterator[M]:
        storage = configure.storage()
        batch: list[str] = []
        for record_id in storage.iter_ids(self.model._collection, self.batch_size):
            batch.append(record_id)
            if len(batch) >= self.batch_size:
                yield from self._matching_in(batch)
                batch = []
        if batch:
            yield from self._matching_in(batch)

    def _matching_in(self, ids: list[str]) -> list[M]:
        model = self.model
        loaded = load_many(model, ids, with_pointers=False)
        matches = [record for record in loaded if record is not None
                   and all(_field_matches(model._fields[name], record._values[name], value)
                           for name, value in self._conditions)]
        resolve_pointers(matches)
        return matches


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

def load_many(model: type[M], ids: Sequence[str], *,
              with_pointers: bool = True) -> list[M | None]:
    """Load records of ``model`` by id in one round trip (``None`` for missing ones).

    With ``with_pointers`` their Pointer fields are then loaded in one
    more round trip for the whole batch.
    """
    storage = configure.storage()
    stored = storage.load_records(
        [LoadRequest(model._collection, record_id, model._stream_fields) for record_id in ids])
    records = [model._from_stored(item) if item is not None else None for item in stored]
    if with_pointers:
        resolve_pointers([r for r in records if r is not None])
    return records


def resolve_pointers(records: Sequence[ActiveRecord]) -> None:
    """Load the targets of the records' pending pointers, in one round trip.

    The targets' own pointers stay pending (loaded when read), so a chain of
    references is never walked eagerly.
    """
    wanted: dict[str, tuple[Pointer, list[tuple[ActiveRecord, str]]]] = {}
    for record in records:
        for name in type(record)._pointer_fields:
            value = record._values[name]
            if isinstance(value, PendingPointer):
                field = type(record)._fields[name]
                assert isinstance(field, Pointer)
                wanted.setdefault(value.key, (field, []))[1].append((record, name))
    if not wanted:
        return
    requests = []
    for key, (field, _) in wanted.items():
        collection, record_id = parse_record_key(key)
        requests.append(LoadRequest(collection, record_id, field.to_model._stream_fields))
    stored = configure.storage().load_records(requests)
    for (key, (field, holders)), item in zip(wanted.items(), stored):
        for record, name in holders:
            # One instance per holder: records loaded together stay independent.
            target = field.to_model._from_stored(item) if item is not None else None
            if target is None:
                _warn_dangling(type(record).__name__, name, key)
            record._values[name] = target


def load_pointer(field: Pointer, key: str, model_name: str) -> Any:
    """Load the one record a pending pointer names (``None`` if it was deleted)."""
    collection, record_id = parse_record_key(key)
    target = field.to_model
    item = configure.storage().load_record(collection, record_id, target._stream_fields)
    if item is None:
        _warn_dangling(model_name, field.name, key)
        return None
    return target._from_stored(item)


def _warn_dangling(model_name: str, field_name: str, key: str) -> None:
    logger.warning("%s.%s points to %s, which no longer exists; loaded as None",
                   model_name, field_name, key)


# ---------------------------------------------------------------------------
# Comparing values (shared with ActiveRecord.matches)
# ---------------------------------------------------------------------------

def _conditions(model: type[ActiveRecord], kwargs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Validate lookups: known fields, values cast to the field's type."""
    conditions = []
    for name, value in kwargs.items():
        field = model._field(name)
        if isinstance(field, Pointer):
            value = expected_pointer_key(field, value)
        elif value is not None:
            value = field.clean(value, model.__name__)
        conditions.append((name, value))
    return tuple(conditions)


def pointer_key(value: Any) -> str | None:
    """The record key a pointer value names (``None`` for no target)."""
    if value is None:
        return None
    if isinstance(value, PendingPointer):
        return value.key
    pk = value._values[type(value)._primary_key]
    return None if pk is None else type(value)._collection.record_key(str(pk))


def expected_pointer_key(field: Pointer, expected: Any) -> str | None:
    """A pointer lookup value (instance, id, UUID or key) as a record key."""
    if expected is None or isinstance(expected, (field.to_model, PendingPointer)):
        return pointer_key(expected)
    collection = field.to_model._collection
    text = str(expected)
    if text.startswith(collection.prefix + ":"):
        return text
    try:
        return collection.record_key(str(AutoUUID.cast(expected)))
    except (TypeError, ValueError) as exc:
        raise errors.ValidationError(
            f"{field.owner.__name__ if field.owner else '?'}.{field.name} is matched by a "
            f"{field.to_model.__name__}, its id or its key, not {expected!r}",
            field=field.name, value=expected) from exc


def _field_matches(field: Attribute, actual: Any, expected: Any) -> bool:
    """Whether a field's value equals an already prepared lookup value."""
    if isinstance(field, Pointer):
        return pointer_key(actual) == expected
    return bool(actual == expected)


def field_matches_raw(field: Attribute, actual: Any, expected: Any, model_name: str) -> bool:
    """Whether a field's value equals a raw user value (cast first; uncastable never matches)."""
    if isinstance(field, Pointer):
        try:
            return pointer_key(actual) == expected_pointer_key(field, expected)
        except errors.ValidationError:
            return False
    if expected is None:
        return actual is None
    try:
        return bool(actual == field.cast(expected))
    except (TypeError, ValueError, ArithmeticError):
        return False


def _sort_key(field: Attribute, name: str) -> Any:
    def key(record: ActiveRecord) -> Any:
        value = record._values[name]
        if isinstance(field, Pointer):
            value = pointer_key(value)
        # None sorts first; the flag keeps None from being compared to values.
        return (False, 0) if value is None else (True, value)
    return key


def _describe(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in kwargs.items())
