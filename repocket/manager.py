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

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from . import errors
from .asyncbridge import run_sync
from .attributes import AutoUUID, Pointer
from .checking import IndexReport, check_index
from .connections import configure
from .pointers import PendingPointer, expected_pointer_key, load_many
from .query import Lookup, Q, lookup_matches, parse_lookups
from .resultset import ResultSet, _batched
from .text import short_repr

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .model import ActiveRecord

__all__ = ["Manager", "ManagerDescriptor", "IndexReport", "ResultSet"]

M = TypeVar("M", bound="ActiveRecord")


class ManagerDescriptor:
    """Gives each model class its own :class:`Manager` as ``Model.objects``."""

    def __get__(self, instance: Any, owner: type[M]) -> Manager[M]:
        if instance is not None:
            raise AttributeError(
                f"objects is reachable from the {owner.__name__} class, not from its instances"
            )
        meta = getattr(owner, "_meta", None)
        if meta is None:
            raise AttributeError("ActiveRecord itself has no records; use a model class")
        # one Manager per model (it holds nothing but the model), made once:
        # ``Model.objects`` is read by every call of the API
        manager: Manager[M] | None = meta.manager
        if manager is None or manager.model is not owner:
            manager = Manager(owner)
            if meta.model is owner:
                meta.manager = manager
        return manager


class Manager(Generic[M]):
    """The entry point of queries on one model: ``Model.objects``."""

    #: how many records get_many() reads per round trip.  Larger than a
    #: query's batches: the caller holds every record it asked for anyway,
    #: so a batch only bounds the size of one request and its reply.
    get_many_batch_size: ClassVar[int] = 2000

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
                # the record gets the UUID asked with when it stores exactly that
                found = load_many(model, [str(pk)], known=[pk])[0]
                if found is None:
                    raise model.DoesNotExist(f"no {model.__name__} matches {_describe(kwargs)}")
                return found
        if not kwargs:
            raise errors.ValidationError(
                f"{model.__name__}.objects.get() needs a lookup, e.g. get(id=...)",
                model=model.__name__,
            )
        lookups = parse_lookups(model, kwargs)
        pk = model._meta.primary_key
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

    def get_or_create(
        self, defaults: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> tuple[M, bool]:
        """``(record, created)``: the one record matching ``kwargs``, or a new
        one made from ``kwargs`` and ``defaults`` and saved.

        Lookups with ``__`` (``name__startswith=...``) select but are not
        given to the new record.  Race-free when a lookup is an equality on a
        ``unique=True`` field: of two processes that both found nothing, one
        creates the record and the other's save is refused by the unique
        claim, so it returns that record (``created`` False).  On other
        lookups two racing processes can create two records (as in Django
        without a database constraint).

        :raises Model.MultipleObjectsReturned: several records match.
        """
        model = self.model
        try:
            return self.get(**kwargs), False
        except model.DoesNotExist:
            pass
        record = model(**{**_plain_fields(model, kwargs), **(defaults or {})})
        try:
            record.save()
        except errors.UniqueViolation as violation:
            # another writer created it between our get() and save()
            try:
                return self.get(**kwargs), False
            except model.DoesNotExist:
                # the value is held by a record these lookups do not match
                raise violation from None
        return record, True

    def update_or_create(
        self, defaults: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> tuple[M, bool]:
        """``(record, created)``: the one record matching ``kwargs`` with
        ``defaults`` assigned and saved, or a new one made from both.

        Creation races as in :meth:`get_or_create`; the update is a plain
        :meth:`~repocket.model.ActiveRecord.save` (the last writer wins; use
        ``save(if_unchanged=True)`` yourself for a conditional update).

        :raises Model.MultipleObjectsReturned: several records match.
        """
        record, created = self.get_or_create(defaults, **kwargs)
        if not created and defaults:
            for name, value in defaults.items():
                setattr(record, name, value)
            record.save()
        return record, created

    # -- for async code: the same operations, awaited (see repocket.asyncbridge) ----

    async def aget_or_create(
        self, defaults: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> tuple[M, bool]:
        """:meth:`get_or_create`, for async code."""
        return await run_sync(self.get_or_create, defaults, **kwargs)

    async def aupdate_or_create(
        self, defaults: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> tuple[M, bool]:
        """:meth:`update_or_create`, for async code."""
        return await run_sync(self.update_or_create, defaults, **kwargs)

    async def aget(self, **kwargs: Any) -> M:
        """:meth:`get`, for async code."""
        return await run_sync(self.get, **kwargs)

    async def aget_many(self, ids: Iterable[Any]) -> list[M | None]:
        """:meth:`get_many`, for async code."""
        return await run_sync(self.get_many, ids)

    async def acreate(self, **kwargs: Any) -> M:
        """:meth:`create`, for async code."""
        return await run_sync(self.create, **kwargs)

    async def abulk_create(self, records: Iterable[M], batch_size: int | None = None) -> list[M]:
        """:meth:`bulk_create`, for async code."""
        return await run_sync(self.bulk_create, records, batch_size)

    async def acount(self) -> int:
        """:meth:`count`, for async code."""
        return await run_sync(self.count)

    async def aexists(self) -> bool:
        """:meth:`exists`, for async code."""
        return await run_sync(self.exists)

    async def afirst(self) -> M | None:
        """:meth:`first`, for async code."""
        return await run_sync(self.first)

    def get_many(self, ids: Iterable[Any]) -> list[M | None]:
        """The records with these ids, in order (``None`` where there is none).

        One round trip per :attr:`get_many_batch_size` ids, plus one per
        batch for their pointers.
        """
        pk_field = self.model._meta.fields[self.model._meta.primary_key]
        name = self.model.__name__
        key_text = pk_field.key_text
        values = list(ids)
        keys = [key_text(value, name) for value in values]
        # ids given as UUIDs become the records' own values (a UUID is
        # immutable): nothing to parse again
        known = [value if value.__class__ is uuid.UUID else None for value in values]
        found: list[M | None] = []
        gone: set[str] = set()  # deleted pointer targets, reported once per call
        size = self.get_many_batch_size
        for start in range(0, len(keys), size):
            stop = start + size
            found.extend(
                load_many(self.model, keys[start:stop], gone=gone, known=known[start:stop])
            )
        return found

    def all(self) -> ResultSet[M]:
        """Every record of the model, as a lazy :class:`ResultSet`."""
        return ResultSet(self.model)

    def filter(self, *conditions: Q, **kwargs: Any) -> ResultSet[M]:
        """Records matching ALL the lookups, as a lazy :class:`ResultSet`.

        ``filter(house_name="Gryffindor", age__gte=17, name__in=[...])``, and
        :class:`~repocket.query.Q` conditions:
        ``filter(Q(house_name="Gryffindor") | Q(age__gt=30))``; see
        :mod:`repocket.query` for the lookups.
        """
        return ResultSet(self.model).filter(*conditions, **kwargs)

    def exclude(self, *conditions: Q, **kwargs: Any) -> ResultSet[M]:
        """Records NOT matching all the lookups (and conditions) together."""
        return ResultSet(self.model).exclude(*conditions, **kwargs)

    def update(self, **changes: Any) -> int:
        """Set fields of every record; see :meth:`ResultSet.update`."""
        return ResultSet(self.model).update(**changes)

    def order_by(self, *fields: str) -> ResultSet[M]:
        """Every record, sorted; see :meth:`ResultSet.order_by`."""
        return ResultSet(self.model).order_by(*fields)

    def count(self) -> int:
        """How many records the model has, without loading any."""
        return configure.storage().count_records(self.model._meta.collection)

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
        :raises StorageError: the outcome of a batch is unknown (a timeout,
            a connection lost half-way): some of its records may be written.
            Each new record keeps its id, so ``bulk_create`` again with the
            same records repeats the same create-only writes and stores
            each record once.
        """
        model = self.model
        records = list(records)
        for position, record in enumerate(records):
            if type(record) is not model:
                raise errors.ValidationError(
                    f"{model.__name__}.objects.bulk_create() saves {model.__name__} records; "
                    f"item {position} is {short_repr(record)}; nothing was written",
                    model=model.__name__,
                    value=record,
                )
        size = batch_size or ResultSet.batch_size
        pk = model._meta.primary_key
        missing = sum(1 for record in records if record._values[pk] is None)
        new_ids = iter(AutoUUID.generate_many(missing))
        prepared = [
            record._prepare_save(new_id=next(new_ids) if record._values[pk] is None else None)
            for record in records
        ]
        storage = configure.storage()
        if model._meta.ttl is not None and not storage.supports_ttl:
            raise errors.UnsupportedError(
                f"{model.__name__} records cannot expire on {storage.describe()}: the "
                f"backend does not support expiring records; nothing was written"
            )
        written: list[M] = []
        for start in range(0, len(records), size):
            batch = records[start : start + size]
            chunk = prepared[start : start + size]
            try:
                storage.save_records([write for write, _ in chunk])
            except (errors.StorageError, asyncio.CancelledError):
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
        storage.drop_index(model._meta.collection)
        seen: set[str] = set()
        indexed = 0
        for batch in _batched(
            storage.iter_stored_ids(model._meta.collection, batch_size), batch_size
        ):
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


def _matches_all(record: ActiveRecord, lookups: Iterable[Lookup]) -> bool:
    fields = type(record)._meta.fields
    return all(lookup_matches(fields[lk.field], record._values[lk.field], lk) for lk in lookups)


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


def _plain_fields(model: type[ActiveRecord], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The plain ``field=value`` items of lookups (no ``__`` operator), as
    values a new record takes: a pointer given as an id or key (as lookups
    accept) names its target without loading it."""
    plain = {}
    for name, value in kwargs.items():
        if "__" in name:
            continue
        field = model._meta.fields.get(name)
        if (
            isinstance(field, Pointer)
            and value is not None
            and not isinstance(value, (field.to_model, PendingPointer))
        ):
            key = expected_pointer_key(field, value)
            value = None if key is None else PendingPointer(key)
        plain[name] = value
    return plain


def _describe(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in kwargs.items())
