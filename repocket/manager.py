"""``Model.objects``: finding stored records.

:class:`Manager` is the entry point (``Model.objects``); its ``filter``,
``exclude``, ``all`` and ``order_by`` return a :class:`ResultSet`: a lazy,
chainable query that runs when it is iterated, indexed, sliced, ``len()``-ed
or tested for truth, and runs again each time (it keeps no copy of the
results: ``list()`` it to keep them).  Lookups are described in
:mod:`repocket.query`; the indexes they use in :mod:`repocket.indexes`.

Costs, on a backend with a server (round trips do not grow with the number
of records or of matches, except where said):

* ``get(id=...)``: one round trip for the record and its ByteStreams, plus
  one for the records its Pointers name;
* ``filter(...)`` on indexed fields: one round trip to evaluate the query on
  the server, then one per batch of :attr:`ResultSet.batch_size` matches to
  load them (and one per batch for their pointers);
* ``count()``, ``exists()``: one round trip, no records loaded;
* ``[20:40]`` / ``first()`` ordered by one range-indexed field (Integer,
  Float, Decimal, DateTime): the page only;
* ordering by other fields, or by several, sorts all matches in Python;
  lookups on fields without the index they need read every record.
"""

from __future__ import annotations

import datetime
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from . import errors
from .attributes import Attribute, AutoUUID, DateTime, PendingPointer, Pointer
from .checking import IndexReport, check_index
from .connections import configure
from .indexes import class_name, range_name
from .keys import parse_record_key
from .query import (
    RANGE_OPS,
    Compiled,
    Lookup,
    _is_nan,
    compile_lookups,
    inexact_guard,
    lookup_matcher,
    lookup_matches,
    parse_lookups,
)
from .storage import AllIds, LoadRequest, Members, Order, Plan, Storage

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .model import ActiveRecord

__all__ = ["Manager", "ManagerDescriptor", "ResultSet", "IndexReport"]

logger = logging.getLogger("repocket")

M = TypeVar("M", bound="ActiveRecord")


class ManagerDescriptor:
    """Gives each model class its own :class:`Manager` as ``Model.objects``."""

    def __get__(self, instance: Any, owner: type[M]) -> Manager[M]:
        if instance is not None:
            raise AttributeError(
                f"objects is reachable from the {owner.__name__} class, not from its instances"
            )
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

    # -- reading ------------------------------------------------------------------

    def get(self, **kwargs: Any) -> M:
        """The one record matching ``kwargs`` (any lookups, see :meth:`filter`).

        ``get(id=...)`` takes a UUID or its text and reads the record directly
        (one round trip, plus one for its pointers).

        :raises Model.DoesNotExist: nothing matches.
        :raises Model.MultipleObjectsReturned: more than one record matches.
        :raises UnknownFieldError: a keyword is not a field or lookup of the model.
        :raises ValidationError: a value cannot be cast to its field's type.
        """
        model = self.model
        if len(kwargs) == 1:
            # get(id=...): straight to the record's key, no query to compile
            ((name, value),) = kwargs.items()
            if name == model._meta.primary_key and value is not None:
                pk = model._meta.fields[name].clean(value, model.__name__)
                found = load_many(model, [str(pk)])[0]
                if found is None:
                    raise model.DoesNotExist(f"no {model.__name__} matches {_describe(kwargs)}")
                return found
        if not kwargs:
            raise errors.ValidationError(
                f"{model.__name__}.objects.get() needs a lookup, e.g. get(id=...)",
                model=model.__name__,
            )
        lookups = parse_lookups(model, kwargs)
        pk = model._primary_key
        direct = next((lk for lk in lookups if lk.field == pk and lk.op == "eq"), None)
        if direct is not None:
            found = load_many(model, [str(direct.value)])[0] if direct.value is not None else None
            if found is not None and _matches_all(found, lookups):
                return found
            raise model.DoesNotExist(f"no {model.__name__} matches {_describe(kwargs)}")
        results = ResultSet(model, lookups)[:2]
        if not results:
            raise model.DoesNotExist(f"no {model.__name__} matches {_describe(kwargs)}")
        if len(results) > 1:
            raise model.MultipleObjectsReturned(
                f"more than one {model.__name__} matches {_describe(kwargs)}"
            )
        return results[0]

    def get_many(self, ids: Iterable[Any]) -> list[M | None]:
        """The records with these ids, in order (``None`` where there is none).

        One round trip per :attr:`ResultSet.batch_size` ids, plus one per batch
        for their pointers.
        """
        pk_field = self.model._fields[self.model._primary_key]
        keys = [str(pk_field.clean(value, self.model.__name__)) for value in ids]
        found: list[M | None] = []
        gone: set[str] = set()  # deleted pointer targets, reported once per call
        for start in range(0, len(keys), ResultSet.batch_size):
            batch = keys[start : start + ResultSet.batch_size]
            found.extend(load_many(self.model, batch, gone=gone))
        return found

    def all(self) -> ResultSet[M]:
        """Every record of the model, as a lazy :class:`ResultSet`."""
        return ResultSet(self.model)

    def filter(self, **kwargs: Any) -> ResultSet[M]:
        """Records matching ALL the lookups, as a lazy :class:`ResultSet`.

        ``filter(house_name="Gryffindor", age__gte=17, name__in=[...])``; see
        :mod:`repocket.query` for the lookups.
        """
        return ResultSet(self.model).filter(**kwargs)

    def exclude(self, **kwargs: Any) -> ResultSet[M]:
        """Records NOT matching all the lookups together."""
        return ResultSet(self.model).exclude(**kwargs)

    def order_by(self, *fields: str) -> ResultSet[M]:
        """Every record, sorted; see :meth:`ResultSet.order_by`."""
        return ResultSet(self.model).order_by(*fields)

    def count(self) -> int:
        """How many records the model has, without loading any."""
        return configure.storage().count_records(self.model._collection)

    def exists(self) -> bool:
        """Whether the model has any record."""
        return self.count() > 0

    def first(self) -> M | None:
        """The record with the smallest id, or ``None``."""
        return ResultSet(self.model).first()

    # -- writing ------------------------------------------------------------------

    def create(self, **kwargs: Any) -> M:
        """Create, save and return a record; see :meth:`ActiveRecord.create`."""
        return self.model.create(**kwargs)

    def bulk_create(self, records: Iterable[M], batch_size: int | None = None) -> list[M]:
        """Save many records of this model: one round trip per batch of
        ``batch_size`` (one pipeline of save scripts on redis), unique fields
        included.  Every record is validated before anything is written.

        Each record is saved atomically on its own, not the batch as a whole.
        When a record is refused (a unique value held by another record, a
        generated id taken), the error names the first refused record and
        says how many records were written: those are marked saved and
        listed in the error's ``written`` attribute (on redis, the other
        records of the refused record's batch; on a backend that writes a
        batch all or nothing, none of it), and later batches are not sent.

        :returns: the records, saved.
        :raises ValidationError: a record is not a ``Model`` instance, or a
            value cannot be stored (nothing is written).
        :raises UniqueViolation, ConflictError: a record was refused.
        """
        model = self.model
        records = list(records)
        for position, record in enumerate(records):
            if type(record) is not model:
                raise errors.ValidationError(
                    f"{model.__name__}.objects.bulk_create() saves {model.__name__} records; "
                    f"item {position} is {_short(record)}; nothing was written",
                    model=model.__name__,
                    value=record,
                )
        size = batch_size or ResultSet.batch_size
        prepared = [record._prepare_save() for record in records]
        storage = configure.storage()
        written: list[M] = []
        for start in range(0, len(records), size):
            batch = records[start : start + size]
            chunk = prepared[start : start + size]
            try:
                storage.save_records([write for write, _ in chunk])
            except errors.StorageError:
                # sent, outcome unknown: each new record keeps its id and
                # values, so that bulk_create (or save()) again repeats the
                # same create-only writes instead of storing them twice
                for record, (write, values) in zip(records[start:], prepared[start:], strict=True):
                    record._keep_pending_create(write, values)
                raise
            except (errors.UniqueViolation, errors.ConflictError) as exc:
                applied = set(exc.written)
                refused = None
                for record, (write, values) in zip(batch, chunk, strict=True):
                    if write.record_id in applied:
                        record._saved(write, values)
                        written.append(record)
                    elif refused is None:
                        refused = (record, write, values)
                raise _bulk_error(exc, refused, written, len(records)) from exc
            for record, (write, values) in zip(batch, chunk, strict=True):
                record._saved(write, values)
            written.extend(batch)
        return records

    # -- index maintenance ----------------------------------------------------------

    def reindex(
        self, batch_size: int = 500, progress: Callable[[int], object] | None = None
    ) -> int:
        """Rebuild the model's index data from its stored records.

        For records written before an index existed (or by repocket 0.0.1).
        Records are found by scanning storage, not through the index.  Run it
        while nothing else writes this model: a save that lands between the
        index being dropped and rebuilt can be left out of it.

        :param progress: called with the number of records of each batch done.
        :returns: how many records were indexed.
        """
        model = self.model
        storage = configure.storage()
        storage.drop_index(model._collection)
        seen: set[str] = set()
        indexed = 0
        for batch in _batched(storage.iter_stored_ids(model._collection, batch_size), batch_size):
            # a scan may return an id twice, even within one batch
            fresh = [i for i in dict.fromkeys(batch) if i not in seen]
            seen.update(fresh)
            records = [r for r in load_many(model, fresh, with_pointers=False) if r is not None]
            writes = [record._index_write() for record in records]
            storage.save_records(writes)
            indexed += len(writes)
            if progress is not None:
                progress(len(fresh))
        return indexed

    def check(
        self, batch_size: int = 500, progress: Callable[[int], object] | None = None
    ) -> IndexReport:
        """Compare the model's index data with its stored records, in both
        directions and in bounded memory; change nothing.  See
        :mod:`repocket.checking` for what is compared.

        :param progress: called with the number of records of each batch of
            the id index done.
        """
        return check_index(self.model, batch_size, progress)


class ResultSet(Generic[M]):
    """A lazy query over one model's records; a read-only sequence.

    Chain :meth:`filter`, :meth:`exclude` and :meth:`order_by`; nothing is
    read until the result set is used.  ``len()`` loads every match and
    keeps them (as Django's ``len(queryset)`` does), and later indexing,
    iteration and truth tests use what it kept; :meth:`count` counts on the
    server instead.  Until then, iterating streams the matches in batches and
    keeps nothing, and indexing and slicing fetch only what they return.
    """

    #: how many ids are read (and records loaded) per round trip.
    batch_size: ClassVar[int] = 500

    def __init__(
        self,
        model: type[M],
        lookups: tuple[Lookup, ...] = (),
        excludes: tuple[tuple[Lookup, ...], ...] = (),
        ordering: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self._lookups = lookups
        self._excludes = excludes
        self._ordering = ordering
        self._compiled: Compiled | None = None
        # per lookup, (field, function telling whether a value matches); made
        # on first use, for the lookups and for each exclude() group
        self._matchers: (
            tuple[
                list[tuple[str, Callable[[Any], bool]]],
                list[list[tuple[str, Callable[[Any], bool]]]],
            ]
            | None
        ) = None
        self._cache: list[M] | None = None

    # -- building --------------------------------------------------------------------

    def filter(self, **kwargs: Any) -> ResultSet[M]:
        """A new result set with more lookups (all must hold)."""
        return ResultSet(
            self.model,
            self._lookups + parse_lookups(self.model, kwargs),
            self._excludes,
            self._ordering,
        )

    def exclude(self, **kwargs: Any) -> ResultSet[M]:
        """A new result set without the records matching all these lookups."""
        return ResultSet(
            self.model,
            self._lookups,
            (*self._excludes, parse_lookups(self.model, kwargs)),
            self._ordering,
        )

    def order_by(self, *fields: str) -> ResultSet[M]:
        """A new result set sorted by the given fields, ``"-name"`` for descending.

        Several fields sort by the first, then the second among equals, and
        so on; records equal in every field come by id, ascending or
        descending as the first field is.  ``None`` (and NaN) sorts before
        every value.

        :raises UnknownFieldError: a name is not a field of the model.
        :raises ValidationError: a field's values have no order (a JSON
            field: documents do not compare), refused here rather than when
            two records are compared.
        """
        model = self.model
        for spec in fields:
            name = spec[1:] if spec.startswith("-") else spec
            attribute = model._field(name)
            if not attribute.orderable:
                raise errors.ValidationError(
                    f"cannot order by {model.__name__}.{name}: it is a "
                    f"{type(attribute).__name__} field, whose values (documents) have no "
                    f"order; order by another field",
                    model=model.__name__,
                    field=name,
                )
        return ResultSet(model, self._lookups, self._excludes, tuple(fields))

    # -- running -------------------------------------------------------------------

    def count(self) -> int:
        """How many records match; loads none when the lookups are indexed
        (one round trip, the exactness check included)."""
        if self._cache is not None:
            return len(self._cache)
        storage = configure.storage()
        compiled = self._compile()
        counted: int | None = None
        if compiled.exact and self._pk_ids() is None:
            collection = self.model._collection
            guard = compiled.guard
            if guard is None:
                counted = storage.count_ids(collection, compiled.plan)
            else:
                counted = storage.count_ids_unless(collection, guard, compiled.plan)
        if counted is None:
            counted = sum(1 for _ in self._unordered(storage))
        if not counted:
            self._explain_empty(storage)
        return counted

    def exists(self) -> bool:
        """Whether any record matches (one round trip when the lookups are indexed)."""
        if self._cache is not None:
            return bool(self._cache)
        storage = configure.storage()
        compiled = self._compile()
        found: bool | None = None
        if compiled.exact and self._pk_ids() is None:
            page = self._page_ids(storage, compiled, None, 0, 1)
            if page is not None:
                found = bool(page)
        if found is None:
            found = next(iter(self._unordered(storage)), None) is not None
        if not found:
            self._explain_empty(storage)
        return found

    def first(self) -> M | None:
        """The first record in the result's order, or ``None``."""
        page = self[:1]
        return page[0] if page else None

    def delete(self) -> int:
        """Delete every matching record; returns the number of record keys removed."""
        removed = 0
        for record in list(self.iterator()):
            removed += record.delete()
        return removed

    def iterator(self, batch_size: int | None = None) -> Iterator[M]:
        """Yield the matching records, loading ``batch_size`` per round trip.

        Without an ordering, or ordered by one range-indexed field, memory
        holds one batch at a time; other orderings sort every match in memory.
        """
        storage = configure.storage()
        # targets found deleted by this query: each is reported once
        gone: set[str] = set()
        found = False
        if self._pk_ids() is None:
            order = self._server_order(storage)
            if order is not None or not self._ordering:
                for record in self._verified(
                    storage, self._compile().candidates, order, batch_size, gone
                ):
                    found = True
                    yield record
                if not found:
                    self._explain_empty(storage)
                return
        records = self._sorted(list(self._unordered(storage, batch_size, gone)))
        if not records:
            self._explain_empty(storage)
        yield from records

    def _unordered(
        self, storage: Storage, batch_size: int | None = None, gone: set[str] | None = None
    ) -> Iterator[M]:
        """The matches, in no particular order."""
        gone = set() if gone is None else gone
        ids = self._pk_ids()
        if ids is not None:
            # lookups on the primary key name the records: load just those
            for batch in _batched(ids, batch_size or self.batch_size):
                yield from self._load_verified(batch, gone)
            return
        yield from self._verified(storage, self._compile().candidates, None, batch_size, gone)

    def _pk_ids(self) -> list[str] | None:
        """The ids that ``id=`` / ``id__in=`` lookups allow, or ``None`` when
        no such lookup narrows the query.  Ids are never index terms: the
        records are read by key instead."""
        allowed: list[str] | None = None
        pk = self.model._meta.primary_key
        for lookup in self._lookups:
            if lookup.field != pk or lookup.op not in ("eq", "in"):
                continue
            values = lookup.value if lookup.op == "in" else (lookup.value,)
            ids = [str(value) for value in values if value is not None]
            allowed = ids if allowed is None else [i for i in allowed if i in ids]
        return None if allowed is None else list(dict.fromkeys(sorted(allowed)))

    def __iter__(self) -> Iterator[M]:
        return self._iterate()

    def _iterate(self) -> Iterator[M]:
        # Decide at the first next(), not when iter() is called: list(rs)
        # calls iter() and then len(), which loads and keeps the results.
        if self._cache is not None:
            yield from self._cache
        else:
            yield from self.iterator()

    def __len__(self) -> int:
        # Loading here (not counting) makes list(result_set), which asks
        # len() first, read storage once, and keeps len() and indexing
        # consistent with each other.
        if self._cache is None:
            self._cache = list(self.iterator())
        return len(self._cache)

    def __bool__(self) -> bool:
        return self.exists()

    @overload
    def __getitem__(self, index: int) -> M: ...

    @overload
    def __getitem__(self, index: slice) -> list[M]: ...

    def __getitem__(self, index: int | slice) -> M | list[M]:
        if self._cache is not None:
            return self._cache[index]
        if isinstance(index, slice):
            return self._window(index)
        if not isinstance(index, int):
            raise TypeError(f"result sets are indexed by int or slice, not {type(index).__name__}")
        if index < 0:
            index += self.count()
        page = self._window(slice(index, index + 1)) if index >= 0 else []
        if not page:
            raise IndexError("result set index out of range")
        return page[0]

    def __repr__(self) -> str:
        parts = [_lookup_text(lk) for lk in self._lookups]
        parts += [
            f"exclude({', '.join(_lookup_text(lk) for lk in group)})" for group in self._excludes
        ]
        ordering = f" order_by {', '.join(self._ordering)}" if self._ordering else ""
        return f"<ResultSet of {self.model.__name__} where {', '.join(parts) or 'all'}{ordering}>"

    # -- internals -------------------------------------------------------------------

    def _compile(self) -> Compiled:
        if self._compiled is None:
            self._compiled = compile_lookups(self.model, self._lookups, self._excludes)
        return self._compiled

    def _clean(self, storage: Storage, fields: Iterable[str]) -> bool:
        """Whether no record holds a value the range index of ``fields`` stores
        inexactly; one round trip for all the fields (none without fields)."""
        guard = inexact_guard(fields)
        return guard is None or storage.count_ids(self.model._collection, guard) == 0

    def _order_field(self) -> str | None:
        """The field the storage can order by: the only sort field, range-indexed."""
        if len(self._ordering) != 1:
            return None
        name = self._ordering[0].lstrip("-")
        return name if "range" in self.model._fields[name].indexes else None

    def _order(self, name: str) -> Order:
        return Order(range_name(name), descending=self._ordering[0].startswith("-"))

    def _server_order(self, storage: Storage) -> Order | None:
        """The storage-side ordering, when one range-indexed field orders exactly."""
        name = self._order_field()
        if name is None or not self._clean(storage, [name]):
            return None
        return self._order(name)

    def _page_ids(
        self,
        storage: Storage,
        compiled: Compiled,
        order_field: str | None,
        start: int,
        limit: int | None,
    ) -> list[str] | None:
        """One page of the exact plan's ids, in one round trip with the check
        that makes it exact; ``None`` when an inexact score makes it inexact."""
        collection = self.model._collection
        order = self._order(order_field) if order_field else None
        guard = inexact_guard([*compiled.inexact_fields, *([order_field] if order_field else [])])
        if guard is None:
            return storage.query_ids(collection, compiled.plan, order, start, limit)
        return storage.query_ids_unless(collection, guard, compiled.plan, order, start, limit)

    def _window(self, window: slice) -> list[M]:
        start, stop, step = window.start or 0, window.stop, window.step or 1
        if start < 0 or (stop is not None and stop < 0) or step != 1:
            return list(self.iterator())[window]
        if stop is not None and stop <= start:
            return []
        compiled = self._compile()
        name = self._order_field()
        if compiled.exact and (name is not None or not self._ordering) and self._pk_ids() is None:
            limit = None if stop is None else stop - start
            storage = configure.storage()
            ids = self._page_ids(storage, compiled, name, start, limit)
            if ids is not None:
                page = self._load_verified(ids, set())
                if not page:
                    self._explain_empty(storage)
                return page
        return list(itertools.islice(self.iterator(), start, stop))

    def _verified(
        self,
        storage: Storage,
        plan: Plan,
        order: Order | None,
        batch_size: int | None = None,
        gone: set[str] | None = None,
    ) -> Iterator[M]:
        """Load the plan's records in batches; keep those matching every lookup.

        :param gone: the deleted pointer targets reported so far by the query
            (each is reported once); added to.
        """
        size = batch_size or self.batch_size
        gone = set() if gone is None else gone
        ids = storage.iter_query_ids(self.model._collection, plan, order, size)
        for batch in _batched(ids, size):
            yield from self._load_verified(batch, gone)

    def _load_verified(self, ids: Sequence[str], gone: set[str]) -> list[M]:
        loaded = load_many(self.model, ids, with_pointers=False)
        matches = [record for record in loaded if record is not None and self._matches(record)]
        resolve_pointers(matches, gone)
        return matches

    def _explain_empty(self, storage: Storage) -> None:
        """Refuse an empty result that only a naive/aware mismatch caused.

        Python does not order naive and aware datetimes against each other,
        so a range lookup on a DateTime matches only values of its bound's
        kind.  When the field holds values of the other kind and none of the
        bound's (``joined__gte="2024-02-01"`` on timestamps with an offset),
        nothing could ever match: that is a mistake to report, not an empty
        result.  Called only for empty results, so it costs nothing
        otherwise; one or two round trips on a range-indexed field, a read of
        the model's records on a field without the index (whose query read
        them all already).

        :raises ValidationError: naming the model, field and bound.
        """
        for lookup in self._lookups:
            attribute = self.model._fields[lookup.field]
            if lookup.op not in RANGE_OPS or not isinstance(attribute, DateTime):
                continue
            bound: datetime.datetime = lookup.value
            aware = bound.utcoffset() is not None
            if self._holds_kind(storage, lookup.field, aware) or not self._holds_kind(
                storage, lookup.field, not aware
            ):
                continue
            raise errors.ValidationError(
                _kind_mismatch(self.model, lookup, aware),
                model=self.model.__name__,
                field=lookup.field,
                value=bound,
            )

    def _holds_kind(self, storage: Storage, name: str, aware: bool) -> bool:
        """Whether any record's DateTime ``name`` is aware (or naive)."""
        model = self.model
        if "range" in model._fields[name].indexes:
            tag = "aware" if aware else "naive"
            return storage.count_ids(model._collection, Members(class_name(name, tag))) > 0
        size = self.batch_size
        for batch in _batched(
            storage.iter_query_ids(model._collection, AllIds(), None, size), size
        ):
            for record in load_many(model, batch, with_pointers=False):
                value = record._values[name] if record is not None else None
                if value is not None and (value.utcoffset() is not None) == aware:
                    return True
        return False

    def _matches(self, record: ActiveRecord) -> bool:
        matchers = self._matchers
        if matchers is None:
            fields = self.model._meta.fields
            matchers = self._matchers = (
                [(lk.field, lookup_matcher(fields[lk.field], lk)) for lk in self._lookups],
                [
                    [(lk.field, lookup_matcher(fields[lk.field], lk)) for lk in group]
                    for group in self._excludes
                ],
            )
        values = record._values
        for name, matches in matchers[0]:
            if not matches(values[name]):
                return False
        return not any(
            all(matches(values[name]) for name, matches in group) for group in matchers[1]
        )

    def _sorted(self, records: list[M]) -> list[M]:
        pk = self.model._primary_key
        # ties come by id, in the direction of the first sort field (as the
        # storage orders them when it sorts)
        records.sort(
            key=lambda record: str(record._values[pk]),
            reverse=bool(self._ordering) and self._ordering[0].startswith("-"),
        )
        for spec in reversed(self._ordering):
            descending = spec.startswith("-")
            name = spec[1:] if descending else spec
            try:
                records.sort(key=_sort_key(self.model._field(name), name), reverse=descending)
            except TypeError as exc:
                raise errors.ValidationError(
                    f"cannot order by {self.model.__name__}.{name}: {exc}",
                    model=self.model.__name__,
                    field=name,
                ) from exc
        return records


def _kind_mismatch(model: type, lookup: Lookup, aware: bool) -> str:
    """Why a DateTime range lookup can match nothing, and how to fix it."""
    bound: datetime.datetime = lookup.value
    label = f"{model.__name__}.{lookup.field}"
    if aware:
        held, kind, other = "naive datetimes (without a UTC offset)", "aware", "naive"
        fixed = bound.replace(tzinfo=None).isoformat()
        hint = f"a naive bound, e.g. {fixed!r} (the same wall time without its offset)"
    else:
        held, kind, other = "aware datetimes (with a UTC offset)", "naive", "aware"
        fixed = bound.replace(tzinfo=datetime.timezone.utc).isoformat()
        hint = f"the bound an offset, e.g. {fixed!r} for UTC"
    return (
        f"{label} holds only {held}, but the bound of {lookup.field}__{lookup.op}, "
        f"{bound.isoformat()}, is {kind}: {kind} and {other} datetimes do not compare, "
        f"so nothing could match; give {hint}"
    )


def _lookup_text(lookup: Lookup) -> str:
    suffix = "" if lookup.op == "eq" else f"__{lookup.op}"
    return f"{lookup.field}{suffix}={lookup.value!r}"


def _matches_all(record: ActiveRecord, lookups: Iterable[Lookup]) -> bool:
    fields = type(record)._fields
    return all(lookup_matches(fields[lk.field], record._values[lk.field], lk) for lk in lookups)


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_many(
    model: type[M],
    ids: Sequence[str],
    *,
    with_pointers: bool = True,
    gone: set[str] | None = None,
) -> list[M | None]:
    """Load records of ``model`` by id in one round trip (``None`` for missing ones).

    With ``with_pointers`` their Pointer fields are then loaded in one
    more round trip for the whole batch (``gone``: see :func:`resolve_pointers`).
    """
    storage = configure.storage()
    stored = storage.load_records(
        [LoadRequest(model._collection, record_id, model._stream_fields) for record_id in ids]
    )
    records = [model._from_stored(item) if item is not None else None for item in stored]
    if with_pointers:
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
    item = configure.storage().load_record(collection, record_id, target._stream_fields)
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


# ---------------------------------------------------------------------------
# Comparing values (shared with ActiveRecord.matches)
# ---------------------------------------------------------------------------


def pointer_key(value: Any) -> str | None:
    """The record key a pointer value names (``None`` for no target)."""
    if value is None:
        return None
    if isinstance(value, PendingPointer):
        return value.key
    pk = value._values[type(value)._primary_key]
    if pk is None:
        return None
    return configure.record_key(type(value)._collection, str(pk))


def expected_pointer_key(field: Pointer, expected: Any) -> str | None:
    """A pointer lookup value (instance, id, UUID or key) as a record key."""
    if expected is None or isinstance(expected, (field.to_model, PendingPointer)):
        return pointer_key(expected)
    collection = field.to_model._collection
    text = str(expected)
    if collection.owns_key(text):
        return text
    try:
        return configure.record_key(collection, str(AutoUUID.cast(expected)))
    except (TypeError, ValueError) as exc:
        raise errors.ValidationError(
            f"{field.owner.__name__ if field.owner else '?'}.{field.name} is matched by a "
            f"{field.to_model.__name__}, its id or its key, not {expected!r}",
            field=field.name,
            value=expected,
        ) from exc


def _sort_key(field: Attribute, name: str) -> Any:
    def key(record: ActiveRecord) -> Any:
        value = record._values[name]
        if isinstance(field, Pointer):
            value = pointer_key(value)
        elif value is not None and _is_nan(value):
            value = None  # NaN sorts with None, as in the range index
        # None sorts first; the flag keeps None from being compared to values.
        return (False, 0) if value is None else (True, value)

    return key


def _bulk_error(
    exc: errors.UniqueViolation | errors.ConflictError,
    refused: tuple[M, Any, dict[str, Any]] | None,
    written: list[M],
    total: int,
) -> errors.RepocketError:
    """The error of a bulk_create that storage refused part of."""
    outcome = (
        f"bulk_create wrote {len(written)} of the {total} records: they are saved "
        f"and listed in this error's 'written'; the others were not written"
    )
    error: errors.UniqueViolation | errors.ConflictError
    if isinstance(exc, errors.UniqueViolation) and refused is not None:
        error = refused[0]._unique_violation(exc, refused[2], outcome)
    elif isinstance(exc, errors.ConflictError):
        error = errors.ConflictError(f"{exc}; {outcome}", key=exc.key)
    else:
        error = errors.UniqueViolation(f"{exc}; {outcome}", claim=exc.claim, other_id=exc.other_id)
    error.written = written
    return error


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _describe(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in kwargs.items())
