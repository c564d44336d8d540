"""Checking a model's index data against its stored records, both ways.

:func:`check_index` (``Model.objects.check()``) changes nothing.  It reads

1. every record the id index lists: a listed id with no record is an
   *orphan*; a record whose remembered entries differ from those its values
   give, or whose entries the index structures do not hold, is *stale*;
2. every record stored (found by scanning storage, not through the index):
   one the id index does not list is *missing*;
3. every entry the index structures hold: one that no record's values
   justify (its record is gone, or holds another value) is an *orphaned
   entry*;
4. the keys nothing should hold: a ByteStream whose record is gone, a
   query's temporary result left without an expiry (*stray keys*).

Memory stays bounded: each step works one batch at a time and keeps only
what it found wrong (at most :data:`MAX_LISTED` items of each kind are
listed; the counts are complete).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .connections import configure
from .indexes import entries_for
from .pointers import load_many
from .storage import IndexEntry

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .model import ActiveRecord

__all__ = ["IndexReport", "check_index", "MAX_LISTED"]

#: How many problems of each kind a report lists (all are counted).
MAX_LISTED = 1000

T = TypeVar("T")


@dataclass
class IndexReport:
    """What :meth:`Manager.check <repocket.manager.Manager.check>` found.

    :param checked: records examined: those the id index lists, and those
        it misses.
    :param missing: ids of stored records the id index does not list.
    :param stale: ids of records whose index data differs from their values.
    :param orphans: ids the id index lists with no record behind them.
    :param orphan_entries: ``(entry name, id)`` pairs the index holds that no
        record justifies.
    :param stray_keys: keys nothing should hold (a ByteStream without its
        record, a temporary query result without an expiry).
    :param counts: how many of each kind were found, when more were found
        than listed (``{"orphan_entries": 12345}``).
    :param orphan_claims: ``(field, term, holder id)`` of unique claims no
        stored record justifies (left by an interrupted write on a cluster,
        or by damage): they would refuse the value to every other record.
        ``repocket reindex`` rebuilds the claims.
    :param undeclared_fields: stored field name -> how many records hold it,
        for fields the model no longer declares (a field removed or renamed).
        Not an inconsistency: such values are kept untouched on save, and
        :attr:`ok` ignores them.
    """

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    orphan_entries: list[tuple[str, str]] = field(default_factory=list)
    stray_keys: list[str] = field(default_factory=list)
    orphan_claims: list[tuple[str, str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    undeclared_fields: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the index matches the records exactly."""
        return not (
            self.missing
            or self.stale
            or self.orphans
            or self.orphan_entries
            or self.stray_keys
            or self.orphan_claims
        )

    def count(self, kind: str) -> int:
        """How many problems of ``kind`` (an attribute name) were found."""
        return self.counts.get(kind, len(getattr(self, kind)))

    def _add(self, kind: str, item: Any) -> None:
        listed: list[Any] = getattr(self, kind)
        if item in listed:  # a scan may return a key or id twice
            return
        if len(listed) < MAX_LISTED:
            listed.append(item)
        else:
            self.counts[kind] = self.counts.get(kind, MAX_LISTED) + 1


def check_index(
    model: type[ActiveRecord],
    batch_size: int = 500,
    progress: Callable[[int], object] | None = None,
) -> IndexReport:
    """Compare a model's index data with its stored records; see the module."""
    storage = configure.storage()
    collection = model._meta.collection
    report = IndexReport()
    storage.expire_due(collection)  # expired records are gone, not inconsistencies

    # 1. the id index -> the records
    for batch in _batched(storage.iter_ids(collection, batch_size), batch_size):
        records = load_many(model, batch, with_pointers=False)
        present: list[ActiveRecord] = []
        for record_id, record in zip(batch, records, strict=True):
            if record is None:
                report._add("orphans", record_id)
            else:
                present.append(record)
        report.checked += len(present)
        declared = model._meta.fields
        for record in present:
            for name in record._stored or ():
                if name not in declared:
                    report.undeclared_fields[name] = report.undeclared_fields.get(name, 0) + 1
        expected = [(str(r.pk), entries_for(model, r._values)) for r in present]
        remembered = storage.read_index_entries(collection, [i for i, _ in expected])
        for (record_id, terms), found in zip(expected, remembered, strict=True):
            if found is not None and found != terms:
                report._add("stale", record_id)
        for record_id in storage.missing_entries(
            collection, [(i, entries) for i, (entries, _) in expected]
        ):
            report._add("stale", record_id)
        if progress is not None:
            progress(len(batch))

    # 2. the stored records -> the id index
    for batch in _batched(storage.iter_stored_ids(collection, batch_size), batch_size):
        unique = list(dict.fromkeys(batch))
        for record_id in storage.missing_entries(collection, [(i, frozenset()) for i in unique]):
            report._add("missing", record_id)

    report.checked += report.count("missing")  # examined too, through the scan

    # 3. the index structures -> the records
    members = storage.iter_index_members(collection, batch_size)
    for pairs in _batched(members, batch_size):
        ids = list(dict.fromkeys(record_id for record_id, _ in pairs))
        justified: dict[str, frozenset[IndexEntry]] = {}
        for record_id, record in zip(ids, load_many(model, ids, with_pointers=False), strict=True):
            if record is not None:
                justified[record_id] = entries_for(model, record._values)[0]
        for record_id, entry in pairs:
            if entry not in justified.get(record_id, frozenset()):
                report._add("orphan_entries", (entry.name, record_id))

    # 4. keys nothing should hold
    for key in storage.iter_stray_keys(collection, batch_size):
        report._add("stray_keys", key)

    # 5. the unique claims -> the records holding them
    for claims in _batched(storage.iter_claims(collection, batch_size), batch_size):
        holders = list(dict.fromkeys(holder for _, holder in claims))
        held: dict[str, frozenset[Any]] = {}
        loaded = load_many(model, holders, with_pointers=False)
        for record_id, record in zip(holders, loaded, strict=True):
            if record is not None:
                held[record_id] = entries_for(model, record._values)[1]
        for claim, holder in claims:
            if claim not in held.get(holder, frozenset()):
                report._add("orphan_claims", (claim.field, claim.term, holder))
    return report


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
