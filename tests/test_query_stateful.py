"""The query engine against a brute-force oracle: a stateful property test.

A hypothesis :class:`~hypothesis.stateful.RuleBasedStateMachine` runs random
sequences of writes -- create, bulk_create, update (one or more fields, then
save), delete, ``filter(...).delete()``, ByteStream appends, saving a deleted
record's instance again, reindex -- and of queries on a model with every kind
of indexed field (and unindexed ones, which take the fallback path).  Each
query's answers -- the ids and their order when iterated, ``count()``,
``len()``, ``exists()``, ``first()``, slices and indexing after
``order_by()``, ``get()`` -- are compared with a plain Python evaluation over
a dict of every record's values; loaded records are compared value by value.
After every step ``Model.objects.check()`` must find the index data exactly
right and ``Model.objects.count()`` must equal the number of records.

Values are drawn where a float score cannot tell values apart (integers
beyond 2**53, decimals, infinities, the largest floats, datetimes far from
1970, -0.0, NaN) and range bounds right next to stored values, so that the
inexact-index paths are exercised; text includes ':', '*', '{', quotes, NUL,
lone surrogates, the empty string and names around the 32-character prefix
limit.

The machine runs once per backend: the memory backend, a real
redis-server and the SQLite plugin (the same semantics written in SQL).
``REPOCKET_STATEFUL_EXAMPLES`` and ``REPOCKET_STATEFUL_STEPS`` set the
number of runs per backend (25 by default) and steps per run (30);
e.g. ``HYPOTHESIS_PROFILE=dev REPOCKET_STATEFUL_EXAMPLES=500`` for a long,
randomized search.

The oracle is deliberately independent of :mod:`repocket.query`: it follows
the documented semantics only --

* ``f=v`` / ``__ne`` / ``__in``: Python equality (values are cast to the
  field's type first: ``"5"`` for an Integer, ISO text for a DateTime);
  ``None`` equals only ``None``; NaN equals nothing;
* ``__gt`` ... : Python comparison; ``None`` and NaN match no range lookup;
* ``__startswith``: ``str.startswith`` (``None`` matches nothing);
* a Pointer compares the key it *stores*, given as an instance, id, UUID or
  key: a pointer to a deleted record still matches that record's id in
  lookups, but loads as ``None`` (and is saved as ``None`` if its holder is
  loaded and saved again);
* ordering (:meth:`repocket.resultset.ResultSet.order_by`): by each field in
  turn, ``None`` and NaN before every value (so last when descending);
  records equal in every field by id, ascending or descending as the first
  field is; no ordering means ascending id;
* ``unique=True``: ``None`` and ``""`` are never claimed; a claimed value
  raises ``UniqueViolation`` and writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from repocket import CASCADE, SET_NULL, ActiveRecord, F, Q, attributes
from repocket.backends.layout import Shard
from repocket.backends.memory import MemoryStorage
from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.errors import UniqueViolation
from repocket.keys import Collection
from repocket.resultset import ResultSet
from repocket.storage import Storage

from .conftest import make_storage
from .test_suite_sqlite import sqlite_backend

EXAMPLES = int(os.environ.get("REPOCKET_STATEFUL_EXAMPLES", "25"))
STEPS = int(os.environ.get("REPOCKET_STATEFUL_STEPS", "30"))
#: ResultSet.batch_size during the run: results and get_many span several batches
BATCH_SIZE = 4


class Specimen(ActiveRecord):
    """One field per kind of index, plus unindexed ones (the fallback path)."""

    name = attributes.Unicode(index="prefix")
    house = attributes.Unicode()
    age = attributes.Integer(null=True)
    score = attributes.Float(null=True)
    amount = attributes.Decimal(null=True)
    born = attributes.DateTime(null=True)  # naive values only
    stamp = attributes.DateTime(null=True)  # aware values only, in several offsets
    tag = attributes.Bytes()
    friend = attributes.Pointer("Specimen", null=True)
    note = attributes.Unicode(index=False)
    code = attributes.Unicode(unique=True, null=True)
    log = attributes.ByteStream()


class Tag(ActiveRecord):
    """Points to a Specimen; cleared when it is deleted (SET_NULL)."""

    label = attributes.Unicode()
    owner = attributes.Pointer(Specimen, null=True, related_name="tags", on_delete=SET_NULL)


class Badge(ActiveRecord):
    """Points to a Specimen; deleted with it (CASCADE)."""

    owner = attributes.Pointer(Specimen, related_name="badges", on_delete=CASCADE)


# ---------------------------------------------------------------------------
# value strategies
# ---------------------------------------------------------------------------

LONG = "p" * 31  # names of 31..41 characters around the 32-character prefix limit

names = st.one_of(
    st.text(st.sampled_from("ab:*{} é\U0001f600"), max_size=5),
    st.builds(
        lambda extra, tail: LONG + extra + tail,
        st.sampled_from(["", "q", "qq"]),
        st.text(st.sampled_from("ab:"), max_size=8),
    ),
    st.text(st.sampled_from(["a", "\ud800", "\udc00", "\x00", "'", '"', "\\"]), max_size=4),
    st.text(max_size=40),
)
houses = st.sampled_from(["", "Gryffindor", "Slytherin", ":", "*", "{x}", "é", "a:b*c", "null"])
# Values around the places where a float score cannot tell values apart:
# beyond 2**53, infinities, the largest floats, decimals that are not binary
# fractions, datetimes more than 2**53 microseconds away from 1970.
BIG_INTS = [
    2**53 - 1,
    2**53,
    2**53 + 1,
    2**53 + 2,
    2**53 + 3,
    -(2**53) - 1,
    -(2**53) - 2,
    2**63,
    2**64 + 1,
    -(2**64),
    10**30,
    10**30 + 1,
    -(10**30),
    10**400,
    -1,
    0,
    1,
]
ages = st.one_of(st.none(), st.sampled_from(BIG_INTS), st.integers())
MAX_FLOAT = 1.7976931348623157e308
FLOATS = [
    0.0,
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
    1.5,
    -1.5,
    5e-324,
    0.1,
    MAX_FLOAT,
    -MAX_FLOAT,
    2.0**53,
    2.0**53 + 2,
]
scores = st.one_of(st.none(), st.sampled_from(FLOATS), st.floats())
DECIMALS = [
    Decimal(text)
    for text in [
        "0",
        "-0",
        "0.1",
        "1",
        "1.0",
        "1.00",
        "-1.5",
        "Infinity",
        "-Infinity",
        "NaN",
        "1E+400",
        "-1E+400",
        "1E-400",
        "9007199254740993",
        "9007199254740992",
        "0.1000000000000000055511151231257827021181583404541015625",  # exactly float(0.1)
        "3.14159265358979323846264338327950288419716939937510",
        "1.7976931348623157E+308",
        "1.7976931348623158E+308",
        "-1.7976931348623159E+308",
    ]
]
amounts = st.one_of(
    st.none(), st.sampled_from(DECIMALS), st.decimals(allow_nan=False, allow_infinity=True)
)
DATETIMES = [
    dt.datetime.min,
    dt.datetime.max,
    dt.datetime(1970, 1, 1),
    dt.datetime(1970, 1, 1, 0, 0, 0, 1),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
    dt.datetime(1, 1, 1, 0, 0, 0, 1),
    dt.datetime(1, 1, 1, 0, 0, 0, 3),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999998),
    dt.datetime(2255, 6, 5),
    dt.datetime(2255, 6, 5, 23, 47, 34, 740993),
]
borns = st.one_of(st.none(), st.sampled_from(DATETIMES), st.datetimes())
OFFSETS = [
    dt.timezone.utc,
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
    dt.timezone(dt.timedelta(hours=-8)),
    dt.timezone(dt.timedelta(microseconds=1)),
    dt.timezone(dt.timedelta(hours=23, minutes=59)),
]
stamps = st.one_of(
    st.none(),
    st.builds(
        lambda moment, zone: moment.replace(tzinfo=dt.timezone.utc).astimezone(zone),
        st.one_of(
            st.sampled_from([d for d in DATETIMES if 2 <= d.year <= 9998]),
            st.datetimes(dt.datetime(2, 1, 1), dt.datetime(9998, 12, 30)),
        ),
        st.sampled_from(OFFSETS),
    ),
)
tags = st.one_of(st.sampled_from([b"", b"\xff", b":*", b"null"]), st.binary(max_size=4))
notes = st.sampled_from(["", "x", "xy", "y", ":", "*", "\ud800"])
codes = st.sampled_from([None, "", "A", "B", "c:*", "{d}"])
logs = st.sampled_from([b"", b"a", b"ab", b"\x00"])

#: field -> strategy of its values; "friend" is drawn from the machine's ids.
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": names,
    "house": houses,
    "age": ages,
    "score": scores,
    "amount": amounts,
    "born": borns,
    "stamp": stamps,
    "tag": tags,
    "note": notes,
    "code": codes,
    "log": logs,
}
RANGE_FIELDS = ("age", "score", "amount", "born", "stamp")
ORDERINGS: list[tuple[str, ...]] = [
    ("age",),
    ("-age",),
    ("score",),
    ("-score",),
    ("amount",),
    ("-amount",),
    ("born",),
    ("-born",),
    ("stamp",),
    ("-stamp",),
    ("name",),
    ("-name",),
    ("house", "-age"),
    ("-house", "score"),
    ("tag",),
    ("code", "-stamp"),
]


def neighbours(value: Any) -> list[Any]:
    """Values next to ``value`` (of its type), where a float score may not
    separate them from it: bounds that probe the edges of range lookups."""
    if value is None:
        return []
    if isinstance(value, int):
        return [value + step for step in (-2, -1, 0, 1, 2)]
    if isinstance(value, float):
        if math.isnan(value):
            return [value]
        around = [value, math.nextafter(value, -math.inf), math.nextafter(value, math.inf)]
        return around + ([MAX_FLOAT, -MAX_FLOAT] if math.isinf(value) else [])
    if isinstance(value, Decimal):
        if value.is_nan():
            return [value]
        around = [value, value.next_minus(), value.next_plus()]
        if value.is_finite():
            around.append(Decimal(float(value)))  # the exact value of its float
        return around
    around = [value]
    for micros in (-2, -1, 1, 2):
        with contextlib.suppress(OverflowError):
            around.append(value + dt.timedelta(microseconds=micros))
    return around


# ---------------------------------------------------------------------------
# the oracle: plain Python semantics
# ---------------------------------------------------------------------------


def is_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, Decimal) and value.is_nan()


def o_equal(actual: Any, expected: Any) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    if is_nan(actual) or is_nan(expected):
        return False
    return bool(actual == expected)


def o_compare(actual: Any, op: str, bound: Any) -> bool:
    if actual is None or is_nan(actual) or is_nan(bound):
        return False
    return {
        "gt": actual > bound,
        "gte": actual >= bound,
        "lt": actual < bound,
        "lte": actual <= bound,
    }[op]


Predicate = Callable[[dict[str, Any]], bool]


def o_sort(
    ids: list[str], records: dict[str, dict[str, Any]], ordering: tuple[str, ...]
) -> list[str]:
    """``ids`` sorted by ``ordering``: None/NaN lowest; records equal in every
    field by id, ascending or descending as the first field is."""
    ids_descending = bool(ordering) and ordering[0].startswith("-")

    def value_cmp(a: Any, b: Any) -> int:
        a = None if a is None or is_nan(a) else a
        b = None if b is None or is_nan(b) else b
        if a is None or b is None:
            return (a is not None) - (b is not None)
        return -1 if a < b else 1 if a > b else 0

    def cmp(x: str, y: str) -> int:
        for spec in ordering:
            name = spec.lstrip("-")
            result = value_cmp(records[x][name], records[y][name])
            if result:
                return -result if spec.startswith("-") else result
        by_id = -1 if x < y else 1 if x > y else 0
        return -by_id if ids_descending else by_id

    return sorted(ids, key=functools.cmp_to_key(cmp))


def same_value(name: str, loaded: Any, expected: Any) -> bool:
    if name == "score" and loaded is not None and expected is not None:
        if math.isnan(expected):
            return math.isnan(loaded)
        return loaded == expected and math.copysign(1, loaded) == math.copysign(1, expected)
    if name == "amount" and loaded is not None and expected is not None:
        return str(loaded) == str(expected)
    if name == "stamp" and loaded is not None and expected is not None:
        return loaded == expected and loaded.utcoffset() == expected.utcoffset()
    return type(loaded) is type(expected) and loaded == expected


# ---------------------------------------------------------------------------
# the machine
# ---------------------------------------------------------------------------


class QueryMachine(RuleBasedStateMachine):
    """Random writes and queries, each query checked against the oracle."""

    def __init__(self) -> None:
        super().__init__()
        configure.storage().clear()
        #: id -> field values as stored (friend: the id it names, even if deleted)
        self.records: dict[str, dict[str, Any]] = {}
        #: ids of records that existed once and were deleted (a dict for its order:
        #: draws pick records by position, never by their time-based uuid1 ids,
        #: so that a run replays the same way)
        self.deleted: dict[str, None] = {}
        #: deleted records' instances, which can be saved again
        self.graveyard: dict[str, tuple[Specimen, dict[str, Any]]] = {}
        #: every value each field ever held, so queries hit existing values
        self.seen: dict[str, list[Any]] = {name: [] for name in VALUES}
        #: on_delete: tag id -> owner id (SET_NULL), badge id -> owner id (CASCADE)
        self.tags: dict[str, str | None] = {}
        self.badges: dict[str, str] = {}

    # -- helpers ---------------------------------------------------------------

    def forget(self, record_id: str) -> int:
        """Apply the on_delete rules of a deleted Specimen to the oracle;
        returns the keys its cascade removed (one per badge)."""
        for tag_id, owner in self.tags.items():
            if owner == record_id:
                self.tags[tag_id] = None
        cascaded = [b for b, owner in self.badges.items() if owner == record_id]
        for badge_id in cascaded:
            del self.badges[badge_id]
        return len(cascaded)

    def remember(self, values: dict[str, Any]) -> None:
        for name in VALUES:
            if len(self.seen[name]) < 40:
                self.seen[name].append(values[name])

    def live_friend(self, values: dict[str, Any]) -> str | None:
        """What a loaded record's friend reads as: None once the target is gone."""
        friend = values["friend"]
        return friend if friend in self.records else None

    def holder_of(self, code: Any, other_than: str | None = None) -> str | None:
        if code is None or code == "":
            return None  # None and "" are "no value": never claimed
        return next(
            (rid for rid, v in self.records.items() if v["code"] == code and rid != other_than),
            None,
        )

    def load(self, record_id: str) -> Specimen:
        record = Specimen.objects.get(id=record_id)
        self.assert_loaded(record)
        return record

    def assert_loaded(self, record: Specimen) -> None:
        record_id = str(record.id)
        expected = self.records[record_id]
        for name in VALUES:
            loaded = getattr(record, name)
            assert same_value(name, loaded, expected[name]), (
                f"{record_id}.{name}: loaded {loaded!r}, stored {expected[name]!r}"
            )
        friend = record.friend
        assert (None if friend is None else str(friend.id)) == self.live_friend(expected)

    def draw_values(self, data: st.DataObject, fields: list[str] | None = None) -> dict[str, Any]:
        chosen = [*VALUES, "friend"] if fields is None else fields
        values = {}
        for name in chosen:
            if name == "friend":
                choices = list(self.records)
                values[name] = data.draw(
                    st.none() | st.sampled_from(choices) if choices else st.none(), label="friend"
                )
            else:
                values[name] = data.draw(VALUES[name], label=name)
        return values

    def instance_kwargs(self, values: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(values)
        if "friend" in kwargs and kwargs["friend"] is not None:
            kwargs["friend"] = Specimen.objects.get(id=kwargs["friend"])
        return kwargs

    # -- writes ----------------------------------------------------------------

    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        values = self.draw_values(data)
        kwargs = self.instance_kwargs(values)
        holder = self.holder_of(values["code"])
        if holder is not None:
            with pytest.raises(UniqueViolation):
                Specimen.create(**kwargs)
            return
        record = Specimen.create(**kwargs)
        self.records[str(record.id)] = values
        self.remember(values)

    @rule(data=st.data())
    def bulk_create(self, data: st.DataObject) -> None:
        count = data.draw(st.integers(1, 4), label="count")
        batch = []
        claimed: set[Any] = set()
        for _ in range(count):
            values = self.draw_values(data)
            if values["code"] in claimed or self.holder_of(values["code"]) is not None:
                values["code"] = None  # conflicts in a batch are not what this tests
            if values["code"]:
                claimed.add(values["code"])
            batch.append(values)
        instances = [Specimen(**self.instance_kwargs(v)) for v in batch]
        size = data.draw(st.sampled_from([None, 1, 2, 3]), label="batch_size")
        saved = Specimen.objects.bulk_create(instances, batch_size=size)
        assert saved == instances
        for instance, values in zip(instances, batch, strict=True):
            self.records[str(instance.id)] = values
            self.remember(values)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        record_id = data.draw(st.sampled_from(list(self.records)), label="update id")
        record = self.load(record_id)
        fields = data.draw(
            st.lists(st.sampled_from([*VALUES, "friend"]), unique=True, max_size=4), label="fields"
        )
        changes = self.draw_values(data, fields)
        for name, value in self.instance_kwargs(changes).items():
            setattr(record, name, value)
        # the loaded record holds None where its friend was deleted
        values = {
            **self.records[record_id],
            "friend": self.live_friend(self.records[record_id]),
            **changes,
        }
        if self.holder_of(values["code"], other_than=record_id) is not None:
            with pytest.raises(UniqueViolation):
                record.save()
            return
        record.save()
        self.records[record_id] = values
        self.remember(values)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def update_query(self, data: st.DataObject) -> None:
        """qs.update() with a plain value or an F() expression."""
        kwargs, group = self.draw_group(data)
        name = data.draw(st.sampled_from(["age", "score", "amount", "house"]), label="set")
        if name == "house":
            change: Any = data.draw(houses, label="house")

            def new(value: Any) -> Any:
                return change
        else:
            offsets = st.floats(-2, 2, allow_nan=False) if name == "score" else st.integers(-3, 3)
            offset = data.draw(offsets, label="offset")
            change = F(name) + offset

            def new(value: Any) -> Any:
                return None if value is None else value + offset

        hits = [rid for rid, v in self.records.items() if all(p(v, rid) for p in group)]
        note(f"update {kwargs} {name}={change!r}: {hits}")
        assert Specimen.objects.filter(**kwargs).update(**{name: change}) == len(hits)
        for rid in hits:
            values = self.records[rid]
            # updated records are loaded and saved: a deleted friend is saved as None
            self.records[rid] = {
                **values,
                "friend": self.live_friend(values),
                name: new(values[name]),
            }

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def append(self, data: st.DataObject) -> None:
        record_id = data.draw(st.sampled_from(list(self.records)), label="append id")
        chunk = data.draw(st.binary(min_size=1, max_size=3), label="chunk")
        record = self.load(record_id)
        record.append_log(chunk)
        self.records[record_id]["log"] += chunk
        assert record.log == self.records[record_id]["log"]

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        record_id = data.draw(st.sampled_from(list(self.records)), label="delete id")
        record = self.load(record_id)
        values = {**self.records[record_id], "friend": self.live_friend(self.records[record_id])}
        badges = sum(1 for owner in self.badges.values() if owner == record_id)
        assert record.delete() == 1 + bool(values["log"]) + badges
        assert record.delete() == 0  # already gone
        self.forget(record_id)
        del self.records[record_id]
        self.deleted[record_id] = None
        self.graveyard[record_id] = (record, values)

    @precondition(lambda self: self.graveyard)
    @rule(data=st.data())
    def resurrect(self, data: st.DataObject) -> None:
        """save() of a deleted record's instance writes it again, with its index
        entries; its ByteStream is not written (it was not changed), so it is empty."""
        record_id = data.draw(st.sampled_from(list(self.graveyard)), label="resurrect id")
        record, values = self.graveyard.pop(record_id)
        values = {**values, "log": b""}
        if self.holder_of(values["code"]) is not None:
            with pytest.raises(UniqueViolation):
                record.save()
            return
        record.save()
        self.deleted.pop(record_id, None)
        self.records[record_id] = values

    @rule(data=st.data())
    def get_many(self, data: st.DataObject) -> None:
        known = [*self.records, *self.deleted]
        some_id = st.uuids().map(str)
        if known:
            some_id = st.sampled_from(known) | some_id
        ids = data.draw(st.lists(some_id, max_size=6), label="ids")
        found = Specimen.objects.get_many([UUID(i) for i in ids])
        assert [None if r is None else str(r.id) for r in found] == [
            i if i in self.records else None for i in ids
        ]
        for record in found:
            if record is not None:
                self.assert_loaded(record)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def delete_query(self, data: st.DataObject) -> None:
        """``filter(...).delete()`` on one equality lookup."""
        name = data.draw(st.sampled_from(["house", "code", "tag", "age"]), label="field")
        value = data.draw(st.sampled_from([v[name] for v in self.records.values()]), label="value")
        gone = [rid for rid, v in self.records.items() if o_equal(v[name], value)]
        removed = Specimen.objects.filter(**{name: value}).delete()
        cascaded = sum(self.forget(rid) for rid in gone)
        assert removed == sum(1 + bool(self.records[rid]["log"]) for rid in gone) + cascaded
        for rid in gone:
            del self.records[rid]
            self.deleted[rid] = None
            self.graveyard.pop(rid, None)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        """A record expires (its holders are left as they are: on_delete rules
        are applied by delete(), not by expiry)."""
        record_id = data.draw(st.sampled_from(list(self.records)), label="expire id")
        record = Specimen.objects.get(id=record_id)
        record.expire(0.02)
        left = record.ttl()
        assert left is not None and left <= 0.02
        time.sleep(0.03)
        del self.records[record_id]
        self.deleted[record_id] = None
        self.graveyard.pop(record_id, None)

    @precondition(lambda self: self.records)
    @rule(data=st.data(), cascade=st.booleans())
    def relate(self, data: st.DataObject, cascade: bool) -> None:
        """A Badge (CASCADE) or Tag (SET_NULL) pointing to a Specimen."""
        owner_id = data.draw(st.sampled_from(list(self.records)), label="owner")
        owner = Specimen.objects.get(id=owner_id)
        if cascade:
            self.badges[str(Badge.create(owner=owner).id)] = owner_id
        else:
            self.tags[str(Tag.create(label="t", owner=owner).id)] = owner_id

    @invariant()
    def relations_follow_deletes(self) -> None:
        assert Badge.objects.count() == len(self.badges)
        assert Tag.objects.count() == len(self.tags)
        assert sorted(str(t.id) for t in Tag.objects.filter(owner=None)) == sorted(
            t for t, owner in self.tags.items() if owner is None
        )
        for owner_id in set(self.badges.values()) | {o for o in self.tags.values() if o}:
            owner = Specimen(id=owner_id)
            assert owner.badges.count() == sum(1 for o in self.badges.values() if o == owner_id)
            assert owner.tags.count() == sum(1 for o in self.tags.values() if o == owner_id)

    @rule(batch_size=st.integers(1, 5))
    def reindex(self, batch_size: int) -> None:
        assert Specimen.objects.reindex(batch_size=batch_size) == len(self.records)

    # -- queries ---------------------------------------------------------------

    def draw_pointer_value(self, data: st.DataObject) -> tuple[Any, str | None]:
        """A pointer lookup value in one of its accepted forms, and the id it names."""
        known = [*self.records, *self.deleted]
        target = data.draw(
            st.none() | (st.sampled_from(known) if known else st.nothing()) | st.uuids().map(str),
            label="pointer target",
        )
        if target is None:
            return None, None
        form = data.draw(st.sampled_from(["instance", "id", "ID", "uuid", "key"]), label="form")
        if form == "instance":
            value: Any = (
                Specimen.objects.get(id=target)
                if target in self.records
                else Specimen(id=UUID(target))
            )
        elif form == "uuid":
            value = UUID(target)
        elif form == "key":
            value = Specimen._collection.record_key(target)
        elif form == "ID":
            value = target.upper()
        else:
            value = target
        return value, target

    def draw_plain_value(self, data: st.DataObject, name: str) -> Any:
        """A value held by some record, one next to it, or a fresh one."""
        pool = self.seen[name]
        how = data.draw(
            st.sampled_from(["held", "near", "fresh"] if pool else ["fresh"]), label="value kind"
        )
        if how == "fresh":
            return data.draw(VALUES[name], label=f"{name} value")
        value = data.draw(st.sampled_from(pool), label=f"{name} value")
        if how == "near" and name in RANGE_FIELDS and value is not None:
            value = data.draw(st.sampled_from(neighbours(value)), label=f"{name} near")
        return value

    def draw_form(self, data: st.DataObject, name: str, value: Any) -> Any:
        """``value`` as given, or in another form its field casts back to it."""
        if value is None or not data.draw(st.booleans(), label="other form"):
            return value
        if name in ("age", "amount"):
            return str(value)  # int("..."), Decimal("...") are exact
        if name == "score":
            return repr(value)  # float(repr(x)) is x, also for inf, nan, -0.0
        if name == "stamp" and data.draw(st.booleans(), label="other offset"):
            return value.astimezone(data.draw(st.sampled_from(OFFSETS), label="offset"))
        if name in ("born", "stamp"):
            return value.isoformat()
        if name in ("name", "house", "note", "code"):
            try:
                return value.encode("utf-8")  # Unicode accepts UTF-8 bytes
            except UnicodeEncodeError:
                return value
        return value

    def draw_condition(self, data: st.DataObject) -> tuple[str, Any, Predicate]:
        """One ``field__op=value`` keyword and the oracle's predicate for it."""
        name = data.draw(
            st.sampled_from(
                [
                    "name",
                    "house",
                    "age",
                    "score",
                    "amount",
                    "born",
                    "stamp",
                    "tag",
                    "friend",
                    "note",
                    "code",
                    "log",
                    "id",
                ]
            ),
            label="lookup field",
        )
        ops = ["eq", "ne", "in"]
        if name in RANGE_FIELDS:
            ops += ["gt", "gte", "lt", "lte"]
        if name in ("name", "house", "note", "code"):
            ops += ["startswith"]
        op = data.draw(st.sampled_from(ops), label="op")
        key = name if op == "eq" and data.draw(st.booleans(), label="plain") else f"{name}__{op}"

        if name in ("friend", "id"):

            def draw_one() -> tuple[Any, str | None]:
                if name == "friend":
                    return self.draw_pointer_value(data)
                known = [*self.records, *self.deleted]
                target = data.draw(
                    st.sampled_from(known) if known else st.uuids().map(str), label="id"
                )
                form = st.sampled_from([target, target.upper(), UUID(target)])
                return data.draw(form, label="id form"), target

            def actual(values: dict[str, Any], record_id: str) -> Any:
                return record_id if name == "id" else values["friend"]
        else:

            def draw_one() -> tuple[Any, Any]:
                if op == "startswith":
                    pool = [v[name] for v in self.records.values() if v[name] is not None]
                    if pool and data.draw(st.booleans(), label="prefix of a value"):
                        text = data.draw(st.sampled_from(pool), label="prefix source")
                        cut = data.draw(st.integers(0, len(text)), label="cut")
                        return text[:cut], text[:cut]
                    text = data.draw(VALUES["name"], label="prefix")
                    return text, text
                value = self.draw_plain_value(data, name)
                while value is None and op in ("gt", "gte", "lt", "lte"):
                    value = data.draw(VALUES[name], label=f"{name} bound")
                return self.draw_form(data, name, value), value

            def actual(values: dict[str, Any], record_id: str) -> Any:
                return values[name]

        if op == "in":
            drawn = [draw_one() for _ in range(data.draw(st.integers(0, 3), label="in size"))]
            given: Any = [value for value, _ in drawn]
            if data.draw(st.booleans(), label="as tuple"):
                given = tuple(given)
            wanted = [plain for _, plain in drawn]
            return key, given, lambda v, i: any(o_equal(actual(v, i), w) for w in wanted)
        value, plain = draw_one()
        if op == "eq":
            return key, value, lambda v, i: o_equal(actual(v, i), plain)
        if op == "ne":
            return key, value, lambda v, i: not o_equal(actual(v, i), plain)
        if op == "startswith":
            return (
                key,
                value,
                lambda v, i: isinstance(actual(v, i), str) and actual(v, i).startswith(plain),
            )
        return key, value, lambda v, i: o_compare(actual(v, i), op, plain)

    def draw_group(self, data: st.DataObject) -> tuple[dict[str, Any], list[Predicate]]:
        kwargs: dict[str, Any] = {}
        predicates = []
        for _ in range(data.draw(st.integers(1, 2), label="group size")):
            key, value, predicate = self.draw_condition(data)
            if key not in kwargs:
                kwargs[key] = value
                predicates.append(predicate)
        return kwargs, predicates

    @rule(data=st.data())
    def query(self, data: st.DataObject) -> None:
        filters = [
            self.draw_group(data) for _ in range(data.draw(st.integers(0, 3), label="filters"))
        ]
        excludes = [
            self.draw_group(data) for _ in range(data.draw(st.integers(0, 2), label="excludes"))
        ]
        query = Specimen.objects.all()
        for kwargs, _ in filters:
            query = query.filter(**kwargs)
        for kwargs, _ in excludes:
            query = query.exclude(**kwargs)
        note(f"query: {query!r}")

        def matches(record_id: str) -> bool:
            values = self.records[record_id]
            return all(p(values, record_id) for _, group in filters for p in group) and not any(
                all(p(values, record_id) for p in group) for _, group in excludes
            )

        expected = sorted(rid for rid in self.records if matches(rid))
        note(f"expected ids: {expected}")

        # iteration: no ordering means ascending id
        found = list(query)
        assert [str(r.id) for r in found] == expected
        for record in found:
            self.assert_loaded(record)
        size = data.draw(st.integers(1, 3), label="iterator batch size")
        assert [str(r.id) for r in query.iterator(batch_size=size)] == expected
        assert query.count() == len(expected)
        assert len(query) == len(expected)
        assert query.exists() is bool(expected)
        assert bool(query) is bool(expected)
        first = query.first()
        assert (None if first is None else str(first.id)) == (expected[0] if expected else None)

        # ordering, slices, indexing
        ordering = data.draw(st.sampled_from(ORDERINGS), label="ordering")
        ordered = query.order_by(*ordering)
        want = o_sort(expected, self.records, ordering)
        note(f"ordered {ordering}: {want}")
        assert [str(r.id) for r in ordered] == want
        bounds = st.none() | st.integers(-2, len(want) + 2)
        for _ in range(2):
            start, stop = data.draw(bounds, label="start"), data.draw(bounds, label="stop")
            assert [str(r.id) for r in ordered[start:stop]] == want[start:stop]
        first = ordered.first()
        assert (None if first is None else str(first.id)) == (want[0] if want else None)
        if want:
            index = data.draw(st.integers(-len(want), len(want) - 1), label="index")
            assert str(ordered[index].id) == want[index]
        with pytest.raises(IndexError):
            ordered[len(want)]

        # get() with the first filter's lookups
        if filters:
            kwargs, group = filters[0]
            hits = [rid for rid in self.records if all(p(self.records[rid], rid) for p in group)]
            self.check_get(kwargs, hits)

    def draw_q(self, data: st.DataObject, depth: int = 0) -> tuple[Q, Predicate]:
        """A random Q tree (|, &, ~ over lookup groups) and its oracle."""
        kind = data.draw(
            st.sampled_from(["leaf"] if depth >= 2 else ["leaf", "or", "and", "not"]),
            label="Q node",
        )
        if kind == "leaf":
            kwargs, group = self.draw_group(data)
            return Q(**kwargs), lambda v, i: all(p(v, i) for p in group)
        if kind == "not":
            inner, meets = self.draw_q(data, depth + 1)
            return ~inner, lambda v, i: not meets(v, i)
        (left, lmeets), (right, rmeets) = self.draw_q(data, depth + 1), self.draw_q(data, depth + 1)
        if kind == "or":
            return left | right, lambda v, i: lmeets(v, i) or rmeets(v, i)
        return left & right, lambda v, i: lmeets(v, i) and rmeets(v, i)

    @rule(data=st.data())
    def q_query(self, data: st.DataObject) -> None:
        """filter()/exclude() with Q trees, against the oracle."""
        q, meets = self.draw_q(data)
        negate = data.draw(st.booleans(), label="exclude")
        query = Specimen.objects.exclude(q) if negate else Specimen.objects.filter(q)
        note(f"Q query: {q!r} (exclude={negate})")
        expected = sorted(rid for rid, v in self.records.items() if meets(v, rid) != negate)
        assert [str(r.id) for r in query] == expected
        assert query.count() == len(expected)
        assert query.exists() is bool(expected)
        ordering = data.draw(st.sampled_from(ORDERINGS), label="ordering")
        want = o_sort(expected, self.records, ordering)
        assert [str(r.id) for r in query.order_by(*ordering)[:3]] == want[:3]

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def range_query(self, data: st.DataObject) -> None:
        """One range lookup with a bound next to a stored value, ordered by its field."""
        name = data.draw(st.sampled_from(RANGE_FIELDS), label="range field")
        held = [v[name] for v in self.records.values() if v[name] is not None]
        if not held:
            return
        op = data.draw(st.sampled_from(["gt", "gte", "lt", "lte"]), label="op")
        bound = data.draw(
            st.sampled_from(held).flatmap(lambda value: st.sampled_from(neighbours(value))),
            label="bound",
        )
        expected = sorted(rid for rid, v in self.records.items() if o_compare(v[name], op, bound))
        query = Specimen.objects.filter(**{f"{name}__{op}": bound})
        note(f"query: {query!r}; expected ids: {expected}")
        assert sorted(str(r.id) for r in query) == expected
        assert query.count() == len(expected)
        spec = data.draw(st.sampled_from([name, "-" + name]), label="order")
        want = o_sort(expected, self.records, (spec,))
        assert [str(r.id) for r in query.order_by(spec)] == want
        assert [str(r.id) for r in query.order_by(spec)[1:3]] == want[1:3]
        excluded = Specimen.objects.exclude(**{f"{name}__{op}": bound})
        assert sorted(str(r.id) for r in excluded) == sorted(set(self.records) - set(expected))

    @rule(code=codes)
    def get_unique(self, code: Any) -> None:
        self.check_get(
            {"code": code}, [rid for rid, v in self.records.items() if o_equal(v["code"], code)]
        )

    def check_get(self, kwargs: dict[str, Any], hits: list[str]) -> None:
        if not hits:
            with pytest.raises(Specimen.DoesNotExist):
                Specimen.objects.get(**kwargs)
        elif len(hits) > 1:
            with pytest.raises(Specimen.MultipleObjectsReturned):
                Specimen.objects.get(**kwargs)
        else:
            assert str(Specimen.objects.get(**kwargs).id) == hits[0]

    # -- invariants ------------------------------------------------------------

    @invariant()
    def index_is_exact(self) -> None:
        report = Specimen.objects.check()
        assert report.ok, report
        assert report.checked == len(self.records)

    @invariant()
    def no_temporary_keys_left(self) -> None:
        """Queries delete their intermediate results (abandoned iterations too)."""
        storage = configure.storage()
        if not isinstance(storage, RedisStorage):
            return  # (another backend's queries keep nothing between calls)
        client = storage.native_client
        pattern = Shard(Specimen._collection, 0, 1).temp_key("*")
        assert list(client.scan_iter(match=pattern)) == []

    @invariant()
    def count_matches(self) -> None:
        assert Specimen.objects.count() == len(self.records)


@pytest.mark.parametrize("backend", ["memory", "redis", "sqlite"])
def test_queries_match_a_brute_force_oracle(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "sqlite":
        # the plugin, found through its entry point (see test_suite_sqlite)
        path = request.getfixturevalue("tmp_path") / "stateful.db"
        storage = sqlite_backend().from_url(f"sqlite:///{path}")
    else:
        storage = make_storage(backend, request)
    configure.use(storage)
    # small batches, so that iterating, counting and paging span several
    monkeypatch.setattr(ResultSet, "batch_size", BATCH_SIZE)
    # pointers to deleted records log a warning each time they load
    logger = logging.getLogger("repocket")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        run_state_machine_as_test(
            QueryMachine,
            settings=settings(
                settings(), max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None
            ),
        )
    finally:
        logger.setLevel(level)
        storage.clear()
        configure.reset()


# ---------------------------------------------------------------------------
# cases the machine found, kept as plain regression tests
# ---------------------------------------------------------------------------


def test_range_lookup_finds_a_value_whose_score_rounds_onto_the_bound(storage: Storage) -> None:
    """float(2**53 + 1) == 2**53: an open ``(2**53`` score range missed it."""
    record = Specimen.create(age=2**53 + 1)
    Specimen.create(age=2**53)
    query = Specimen.objects.filter(age__gt=2**53)
    assert [r.id for r in query] == [record.id]
    assert query.count() == 1
    assert [r.id for r in query.order_by("-age")] == [record.id]


def test_exclude_keeps_a_value_whose_score_rounds_onto_the_bound(storage: Storage) -> None:
    """The decimal's float is the bound's; subtracting the closed score range
    on the server dropped a record that does not match the exclusion."""
    record = Specimen.create(amount=Decimal("4959425579411466.413559"))
    query = Specimen.objects.exclude(amount__lte=Decimal("4959425579411466"))
    assert [r.id for r in query] == [record.id]
    assert query.count() == 1
    assert Specimen.objects.filter(amount__lte=Decimal("4959425579411466")).count() == 0


class _ScanTwice(MemoryStorage):
    """Yields every stored id twice in a row, as redis's SCAN may (seen with a
    real redis-server while its key table was being rehashed); the protocol
    allows an id to be yielded more than once."""

    def iter_stored_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        for record_id in super().iter_stored_ids(collection, batch_size):
            yield record_id
            yield record_id


def test_reindex_and_check_count_an_id_scanned_twice_once() -> None:
    """reindex() and check() skip ids seen in earlier batches, not twice in one."""
    configure.use(_ScanTwice())
    try:
        Specimen.create(name="a")
        assert Specimen.objects.reindex() == 1
        report = Specimen.objects.check()
        assert report.ok
        assert report.checked == 1
    finally:
        configure.reset()
