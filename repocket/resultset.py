"""Result sets: lazy, chainable queries over one model's records.

``Model.objects.filter(...)``, ``exclude()``, ``all()`` and ``order_by()``
return a :class:`ResultSet`, which runs when it is iterated, indexed,
sliced, ``len()``-ed or tested for truth, and runs again each time (it keeps
no copy of the results: ``list()`` it to keep them).  Lookups are described
in :mod:`repocket.query`; the indexes they use in :mod:`repocket.indexes`;
costs in :mod:`repocket.manager`.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import itertools
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from . import errors
from .asyncbridge import run_sync
from .attributes import Attribute, DateTime, Decimal, Float, Integer, Pointer
from .connections import configure
from .indexes import class_name, range_name
from .keys import parse_record_key
from .pointers import load_many, pointer_key, resolve_pointers
from .query import (
    RANGE_OPS,
    Compiled,
    Condition,
    F,
    Lookup,
    Q,
    _is_nan,
    compile_lookups,
    condition_matcher,
    inexact_guard,
    lookup_matcher,
    parse_condition,
    parse_lookups,
)
from .relations import delete_with_relations, relations_to
from .storage import AllIds, Members, Order, Plan, Storage, StoredRecord

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .model import ActiveRecord

__all__ = ["ResultSet"]

M = TypeVar("M", bound="ActiveRecord")


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
        conditions: tuple[Condition, ...] = (),
    ) -> None:
        self.model = model
        self._lookups = lookups
        self._excludes = excludes
        self._ordering = ordering
        self._conditions = conditions
        self._compiled: Compiled | None = None
        # per lookup, (field, function telling whether a value matches), for
        # the lookups and for each exclude() group; then a function per F/Q
        # condition telling whether a record's values meet it (made on first use)
        self._matchers: (
            tuple[
                list[tuple[str, Callable[[Any], bool]]],
                list[list[tuple[str, Callable[[Any], bool]]]],
                list[Callable[[Any], bool]],
            ]
            | None
        ) = None
        self._cache: list[M] | None = None
        self._with_pointers = True

    # -- building --------------------------------------------------------------------

    def filter(self, *conditions: Q, **kwargs: Any) -> ResultSet[M]:
        """A new result set with more lookups (all must hold), and
        :class:`~repocket.query.Q` conditions (each must hold)."""
        return ResultSet(
            self.model,
            self._lookups + parse_lookups(self.model, kwargs),
            self._excludes,
            self._ordering,
            self._conditions + tuple(parse_condition(self.model, q) for q in conditions),
        )

    def exclude(self, *conditions: Q, **kwargs: Any) -> ResultSet[M]:
        """A new result set without the records matching all these lookups
        and conditions together."""
        if not conditions:
            return ResultSet(
                self.model,
                self._lookups,
                (*self._excludes, parse_lookups(self.model, kwargs)),
                self._ordering,
                self._conditions,
            )
        excluded = ~Q(*conditions, **kwargs)
        return ResultSet(
            self.model,
            self._lookups,
            self._excludes,
            self._ordering,
            (*self._conditions, parse_condition(self.model, excluded)),
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
        return ResultSet(model, self._lookups, self._excludes, tuple(fields), self._conditions)

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
            collection = self.model._meta.collection
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

    def last(self) -> M | None:
        """The last record in the result's order, or ``None``.

        Ordered by one range-indexed field, this reads one record (the
        reversed order's first); otherwise the matches are read through in
        order, keeping only the last (without ``order_by()``, the record
        with the greatest id).
        """
        if self._ordering:
            return self.order_by(*(_reversed(name) for name in self._ordering)).first()
        found: M | None = None
        for found in self.iterator():  # noqa: B007 - the loop keeps the last one
            pass
        return found

    def values(self, *fields: str) -> list[dict[str, Any]]:
        """The matches as dicts of field name -> value (every field when
        none is named), in the result's order.

        A Pointer's value is the id it stores, as in Django (the target is
        not loaded for it, and a deleted target's id is still given); a
        ByteStream's is its bytes.

        :raises UnknownFieldError: a name is not a field of the model.
        """
        names = self._field_names(fields)
        return [{name: _plain(record, name) for name in names} for record in self._records_only()]

    def values_list(self, *fields: str, flat: bool = False) -> list[Any]:
        """The matches as tuples of the named fields' values (every field
        when none is named), in the result's order; with ``flat=True`` and
        one field, the values themselves.  Pointers give their target's id.

        :raises UnknownFieldError: a name is not a field of the model.
        :raises ValidationError: ``flat=True`` with more or fewer than one field.
        """
        names = self._field_names(fields)
        if flat:
            if len(names) != 1:
                raise errors.ValidationError(
                    f"values_list(flat=True) takes exactly one field, not {len(names)}",
                    model=self.model.__name__,
                )
            (name,) = names
            return [_plain(record, name) for record in self._records_only()]
        return [tuple(_plain(record, name) for name in names) for record in self._records_only()]

    def _field_names(self, fields: tuple[str, ...]) -> tuple[str, ...]:
        if not fields:
            return tuple(self.model._meta.fields)
        for name in fields:
            self.model._field(name)  # an unknown name is an UnknownFieldError
        return fields

    def update(self, **changes: Any) -> int:
        """Set fields of every matching record; returns how many were updated.

        ``qs.update(active=False)``, ``qs.update(views=F("views") + 1)`` (see
        :class:`~repocket.query.F`).  Each record is written with its index
        entries and unique claims in one command, one round trip per batch
        of :attr:`batch_size` records, and only if it is still what was
        loaded (compare-and-set): a record changed meanwhile by another
        writer is loaded again, checked against the query again, and
        updated from its new values, so no concurrent change is lost.  The
        matches are the records matching when :meth:`update` runs.

        :raises UnknownFieldError: a name is not a field of the model.
        :raises ValidationError: a value cannot be stored, or the field is
            the primary key, a ByteStream, or (for ``F()``) not numeric;
            nothing is written.
        :raises UniqueViolation: a ``unique=True`` field would hold one value
            in two records (several matches, or a value another record
            holds); nothing is written.
        """
        model = self.model
        plain, computed = _update_changes(model, changes)
        storage = configure.storage()
        named = self._pk_ids()  # (an empty list: id__in=[] names no record)
        ids = list(
            named
            if named is not None
            else storage.iter_query_ids(
                model._meta.collection, self._compile().candidates, None, self.batch_size
            )
        )
        unique = [name for name in plain if model._meta.fields[name].unique]
        if unique and plain and len(ids) > 1:
            # one value for several records can only break the claim: find
            # out whether it would, before writing anything
            matching = sum(
                1
                for batch in _batched(ids, self.batch_size)
                for r in load_many(model, batch, with_pointers=False)
                if r is not None and self._matches(r)
            )
            if matching > 1:
                name = unique[0]
                raise errors.UniqueViolation(
                    f"{model.__name__}.{name} must be unique: update() would give "
                    f"{matching} records the value {plain[name]!r}; nothing was written",
                    model=model.__name__,
                    field=name,
                    value=plain[name],
                )
        updated = 0
        for batch in _batched(ids, self.batch_size):
            updated += self._update_batch(storage, batch, plain, computed)
        return updated

    def _update_batch(
        self,
        storage: Storage,
        ids: Sequence[str],
        plain: dict[str, Any],
        computed: dict[str, F],
    ) -> int:
        """Update one batch: one round trip, plus one per round of records
        that another writer changed in between (loaded again and retried)."""
        model = self.model
        pending = list(ids)
        updated = 0
        for _ in range(MAX_UPDATE_ATTEMPTS):
            records = [
                r
                for r in load_many(model, pending, with_pointers=False)
                if r is not None and self._matches(r)
            ]
            if not records:
                return updated
            prepared = []
            for record in records:
                for name, value in plain.items():
                    setattr(record, name, value)
                for name, expression in computed.items():
                    setattr(record, name, expression.apply(record._values[name]))
                # keep_expiry: update() leaves the records' expiry as it is
                prepared.append(record._prepare_save(if_unchanged=True, keep_expiry=True))
            try:
                storage.save_records([write for write, _ in prepared])
            except errors.ConflictError as exc:
                written = set(exc.written)
            except errors.UniqueViolation as exc:
                refused = next(
                    (r, v)
                    for r, (w, v) in zip(records, prepared, strict=True)
                    if w.record_id not in set(exc.written)
                )
                raise refused[0]._unique_violation(exc, refused[1]) from exc
            else:
                written = {write.record_id for write, _ in prepared}
            for record, (write, values) in zip(records, prepared, strict=True):
                if write.record_id in written:
                    record._saved(write, values)
            updated += len(written)
            pending = [w.record_id for w, _ in prepared if w.record_id not in written]
            if not pending:
                return updated
        raise errors.ConflictError(
            f"update() of {model.__name__} gave up after {MAX_UPDATE_ATTEMPTS} attempts: "
            f"{len(pending)} record(s) kept changing under it ({updated} were updated)"
        )

    async def aupdate(self, **changes: Any) -> int:
        """:meth:`update`, for async code."""
        return await run_sync(self.update, **changes)

    def delete(self) -> int:
        """Delete every matching record; returns the number of record keys
        removed.  The ``on_delete`` rules of pointers to them apply to the
        matches together: holders among the matches do not PROTECT them."""
        records = list(self.iterator())
        if records and relations_to(self.model):
            return delete_with_relations(*records)
        return sum(record.delete() for record in records)

    # -- for async code: the same operations, awaited (see repocket.asyncbridge) ----

    async def acount(self) -> int:
        """:meth:`count`, for async code."""
        return await run_sync(self.count)

    async def aexists(self) -> bool:
        """:meth:`exists`, for async code."""
        return await run_sync(self.exists)

    async def afirst(self) -> M | None:
        """:meth:`first`, for async code."""
        return await run_sync(self.first)

    async def alast(self) -> M | None:
        """:meth:`last`, for async code."""
        return await run_sync(self.last)

    async def avalues(self, *fields: str) -> list[dict[str, Any]]:
        """:meth:`values`, for async code."""
        return await run_sync(self.values, *fields)

    async def avalues_list(self, *fields: str, flat: bool = False) -> list[Any]:
        """:meth:`values_list`, for async code."""
        return await run_sync(self.values_list, *fields, flat=flat)

    async def adelete(self) -> int:
        """:meth:`delete`, for async code."""
        return await run_sync(self.delete)

    async def aslice(self, start: int | None, stop: int | None) -> list[M]:
        """``self[start:stop]``, for async code (``await qs.aslice(20, 40)``)."""
        return await run_sync(self.__getitem__, slice(start, stop))

    def __aiter__(self) -> AsyncIterator[M]:
        """``async for record in qs``: the matches in batches, as :meth:`iterator`."""
        return self.aiterator()

    async def aiterator(self, batch_size: int | None = None) -> AsyncIterator[M]:
        """:meth:`iterator`, for async code: memory holds one batch at a time
        (orderings sorted in Python excepted, as in sync code)."""
        if self._cache is not None:
            for record in self._cache:
                yield record
            return
        size = batch_size or self.batch_size
        records = self.iterator(size)  # a generator: nothing runs until advanced
        try:
            while batch := await run_sync(_take, records, size):
                for record in batch:
                    yield record
        finally:
            # an iteration stopped early cleans up now (its server-side
            # snapshot), while the loop's connections are still open
            await run_sync(records.close)

    def iterator(self, batch_size: int | None = None) -> Generator[M, None, None]:
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
        parts += [_condition_text(condition) for condition in self._conditions]
        ordering = f" order_by {', '.join(self._ordering)}" if self._ordering else ""
        return f"<ResultSet of {self.model.__name__} where {', '.join(parts) or 'all'}{ordering}>"

    # -- internals -------------------------------------------------------------------

    def _compile(self) -> Compiled:
        if self._compiled is None:
            self._compiled = compile_lookups(
                self.model, self._lookups, self._excludes, self._conditions
            )
        return self._compiled

    def _clean(self, storage: Storage, fields: Iterable[str]) -> bool:
        """Whether no record holds a value the range index of ``fields`` stores
        inexactly; one round trip for all the fields (none without fields)."""
        guard = inexact_guard(fields)
        return guard is None or storage.count_ids(self.model._meta.collection, guard) == 0

    def _order_field(self) -> str | None:
        """The field the storage can order by: the only sort field, range-indexed."""
        if len(self._ordering) != 1:
            return None
        name = self._ordering[0].lstrip("-")
        return name if "range" in self.model._meta.fields[name].indexes else None

    def _order(self, name: str) -> Order:
        return Order(range_name(name), descending=self._ordering[0].startswith("-"))

    def _server_order(self, storage: Storage) -> Order | None:
        """The storage-side ordering, when one range-indexed field orders exactly."""
        name = self._order_field()
        if name is None or not self._clean(storage, [name]):
            return None
        return self._order(name)

    def _page_order_and_guard(
        self, compiled: Compiled, order_field: str | None
    ) -> tuple[Order | None, Plan | None]:
        """A page's storage-side order, and the guard that keeps it exact
        (the records whose scores in its fields are inexact; ``None``: none)."""
        order = self._order(order_field) if order_field else None
        guard = inexact_guard([*compiled.inexact_fields, *([order_field] if order_field else [])])
        return order, guard

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
        collection = self.model._meta.collection
        order, guard = self._page_order_and_guard(compiled, order_field)
        if guard is None:
            return storage.query_ids(collection, compiled.plan, order, start, limit)
        return storage.query_ids_unless(collection, guard, compiled.plan, order, start, limit)

    def _page_records(
        self,
        storage: Storage,
        compiled: Compiled,
        order_field: str | None,
        start: int,
        limit: int | None,
    ) -> list[StoredRecord] | None:
        """One page of the exact plan's records, read with the check that
        makes it exact; ``None`` when an inexact score makes it inexact."""
        meta = self.model._meta
        order, guard = self._page_order_and_guard(compiled, order_field)
        return storage.query_records(
            meta.collection, compiled.plan, order, start, limit, meta.stream_fields, guard
        )

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
            stored = self._page_records(storage, compiled, name, start, limit)
            if stored is not None:
                page = self._stored_verified(stored, set())
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
        meta = self.model._meta
        batches = storage.iter_query_records(meta.collection, plan, order, size, meta.stream_fields)
        for batch in batches:
            yield from self._stored_verified(batch, gone)

    def _load_verified(self, ids: Sequence[str], gone: set[str]) -> list[M]:
        loaded = load_many(self.model, ids, with_pointers=False)
        return self._kept([record for record in loaded if record is not None], gone)

    def _stored_verified(self, stored: Sequence[StoredRecord], gone: set[str]) -> list[M]:
        """The records storage returned for the plan that match every lookup."""
        build = self.model._from_stored
        return self._kept([build(item) for item in stored], gone)

    def _kept(self, loaded: list[M], gone: set[str]) -> list[M]:
        """The records matching every lookup, their pointers loaded (``gone``:
        see :func:`~repocket.pointers.resolve_pointers`)."""
        matches = [record for record in loaded if self._matches(record)]
        if self._with_pointers:
            resolve_pointers(matches, gone)
        return matches

    def _records_only(self) -> Iterator[M]:
        """The matches, as :meth:`iterator`, with their pointers left
        unloaded (values() gives a pointer's id: no round trip for targets)."""
        plain = copy.copy(self)
        plain._with_pointers = False
        return plain.iterator()

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
            attribute = self.model._meta.fields[lookup.field]
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
        if "range" in model._meta.fields[name].indexes:
            tag = "aware" if aware else "naive"
            return storage.count_ids(model._meta.collection, Members(class_name(name, tag))) > 0
        size = self.batch_size
        for batch in _batched(
            storage.iter_query_ids(model._meta.collection, AllIds(), None, size), size
        ):
            for record in load_many(model, batch, with_pointers=False):
                value = record._values[name] if record is not None else None
                if value is not None and (value.utcoffset() is not None) == aware:
                    return True
        return False

    def _matches(self, record: ActiveRecord) -> bool:
        # called for every record a query loads: plain loops, which cost
        # nothing for an empty list (no exclude(), no F/Q conditions)
        matchers = self._matchers
        if matchers is None:
            fields = self.model._meta.fields
            matchers = self._matchers = (
                [(lk.field, lookup_matcher(fields[lk.field], lk)) for lk in self._lookups],
                [
                    [(lk.field, lookup_matcher(fields[lk.field], lk)) for lk in group]
                    for group in self._excludes
                ],
                [condition_matcher(self.model, c) for c in self._conditions],
            )
        values = record._values
        for name, matches in matchers[0]:
            if not matches(values[name]):
                return False
        for group in matchers[1]:
            if all(matches(values[name]) for name, matches in group):
                return False
        for meets in matchers[2]:  # noqa: SIM110 - all() would make a generator per record
            if not meets(values):
                return False
        return True

    def _sorted(self, records: list[M]) -> list[M]:
        pk = self.model._meta.primary_key
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


#: How often update() loads again and retries records other writers keep changing.
MAX_UPDATE_ATTEMPTS = 100


def _update_changes(
    model: type[ActiveRecord], changes: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, F]]:
    """update()'s keywords, checked: (plain values, cleaned; F() expressions)."""
    meta = model._meta
    plain: dict[str, Any] = {}
    computed: dict[str, F] = {}
    for name, value in changes.items():
        field = model._field(name)
        refused = None
        if name == meta.primary_key:
            refused = "is the primary key"
        elif name in meta.stream_fields:
            refused = "is a ByteStream (use append_<name>() or save())"
        elif isinstance(value, F) and not isinstance(field, (Integer, Float, Decimal)):
            refused = "is not numeric: F() adds to Integer, Float and Decimal fields"
        elif isinstance(value, F) and value.name != name:
            refused = f"is given F({value.name!r}): F() in update() reads the field it sets"
        elif isinstance(value, F) and field.unique:
            refused = "is unique: F() would move values through each other's claims"
        elif isinstance(value, F) and not _offset_fits(field, value.offset):
            refused = f"cannot add {value.offset!r} ({type(value.offset).__name__}) to its values"
        if refused:
            raise errors.ValidationError(
                f"update() cannot set {model.__name__}.{name}: it {refused}",
                model=model.__name__,
                field=name,
                value=value,
            )
        if isinstance(value, F):
            computed[name] = value
        else:
            plain[name] = field.clean(value, model.__name__)
    return plain, computed


def _offset_fits(field: Attribute, offset: Any) -> bool:
    """Whether adding ``offset`` keeps the field's type (an int to an
    Integer; an int or float to a Float; an int or Decimal to a Decimal)."""
    if isinstance(field, Integer):
        return isinstance(offset, int)
    if isinstance(field, Float):
        return isinstance(offset, (int, float))
    return isinstance(offset, (int, decimal.Decimal))


def _condition_text(condition: Condition) -> str:
    parts = [_lookup_text(lk) for lk in condition.lookups]
    parts += [_condition_text(child) for child in condition.children]
    if condition.kind == "not":
        return f"~{parts[0]}"
    joined = (" | " if condition.kind == "or" else " & ").join(parts)
    return f"({joined})" if len(parts) > 1 else joined


def _reversed(ordering: str) -> str:
    return ordering[1:] if ordering.startswith("-") else f"-{ordering}"


def _plain(record: ActiveRecord, name: str) -> Any:
    """A field's value for values()/values_list(): a pointer as its target's id."""
    meta = type(record)._meta
    value = record._values[name]
    if name in meta.pointer_fields and value is not None:
        key = pointer_key(value)
        if key is None:
            return None
        record_id = parse_record_key(key)[1]
        target = meta.fields[name].to_model._meta  # type: ignore[attr-defined]
        try:
            return target.fields[target.primary_key].cast(record_id)
        except (TypeError, ValueError):
            return record_id  # an id that is not a UUID (written by other software)
    return value


def _take(iterator: Iterator[M], size: int) -> list[M]:
    return list(itertools.islice(iterator, size))


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


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
