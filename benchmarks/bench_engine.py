#!/usr/bin/env python
"""repocket's engine against raw redis-py, as ratios measured in one run.

Usage::

    python benchmarks/bench_engine.py                  # N = 20,000 records, 8 rounds
    python benchmarks/bench_engine.py --quick          # N = 2,000, short samples: a smoke run
    python benchmarks/bench_engine.py --records 100000 --repeats 5
    python benchmarks/bench_engine.py --only get filter_eq_200
    python benchmarks/bench_engine.py --profile save   # cProfile of repocket's side only

The script starts its own ``redis-server`` on a free loopback port (``--save
'' --appendonly no``) and stops it at the end.  repocket uses db 0 (through
``configure.from_url``), raw redis-py db 1; both clients use hiredis when it
is installed.

Data: N records of ``Person`` (``name``, ``house``, ``age``, ``email``,
``joined``, plus the implicit ``id``).  The houses are chosen so that an
equality filter returns exactly 200 rows or exactly 10: about 95% of the
records live in houses of exactly 200 members, the rest in houses of exactly
10 (at N = 20,000: 95 houses of 200 and 100 houses of 10).  This keeps the
model as the issue states it (no extra field, whose index would cost every
save).  Every age is held by exactly 5 records, so ``age__gte=a, age__lt=a+40``
returns 200 rows and ``age__gte=a, age__lt=a+2`` returns 10.

The raw copy in db 1 holds byte-for-byte the hashes repocket stored (same
keys, same envelope texts), plus a hand-written index: one set of ids per
house, and one sorted set of ids by age.

Every operation is timed for repocket and for its raw baseline(s) in
alternating samples, one sample of each side per round; ops/s are the
median of ``--repeats`` rounds.  The ratio is repocket's operations per
second over raw redis-py's (1.00 = as fast, higher is better), taken in
each round and reported as the median over the rounds: the two samples of
a round are timed back to back, so a slow spell of the machine (a shared
virtual machine has them) weighs on both sides of one ratio alike.  Round
trips (requests redis-py sends) and redis commands (an ``INFO
commandstats`` delta, MULTI/EXEC and the commands Lua scripts run
included) are counted for one call of each side.  Nothing
asserts on timings: a slow machine fails no target, it only prints "no".

The exit status is 1 only when an operation could not run or returned wrong
results (printed as ``error``), so a smoke test can run ``--quick``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import math
import os
import platform
import pstats
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar
from unittest import mock

import redis
import redis.utils
from redis.connection import AbstractConnection

import repocket
from repocket import ActiveRecord, attributes
from repocket.connections import configure

MODEL_MODULE = "repocket_bench"  # record keys: repocket:repocket_bench:Person:<id>
EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
BIG_HOUSE = 200  # members of a "big" house: filter(house=...) -> 200 rows
SMALL_HOUSE = 10  # members of a "small" house: filter(house=...) -> 10 rows
AGE_SHARE = 5  # records per age value
RANGE_200 = 200 // AGE_SHARE  # ages per 200-row range
RANGE_10 = 10 // AGE_SHARE  # ages per 10-row range
TOP = 10  # order_by("age")[:10]
GET_MANY = 1_000  # ids per get_many call
BULK_RECORDS, BULK_BATCH = 1_000, 500  # records per bulk_create call, and its batch size
LOAD_CHUNK = 5_000  # records per bulk_create call while loading
INCREMENT_POOL = 100  # records incremented in turn
MIN_CALLS, MAX_CALLS = 3, 5_000  # bounds of the calls in one sample (a bulk_create: ~80 ms)
WRITTEN_HOUSE = "written"  # house of the records the write operations add

#: The targets of the issue: repocket ops/s / raw ops/s must be at least this.
TARGETS: dict[str, float] = {
    "save": 0.5,
    "get": 0.8,
    "get_many": 0.6,
    "filter_eq_200": 0.6,
    "filter_range_200": 0.6,
    "order_by": 0.8,
    "delete": 0.4,
    "bulk_create": 0.5,
}
BYTES_TARGET = 1.3  # repocket bytes per record <= 1.3 x the hand-written index's
KEYS_TARGET = 1.0  # keys per record, at one decimal

#: Every operation, in the order of the report; reads run before writes.
OPERATIONS = (
    "save",
    "get",
    "get_many",
    "filter_eq_200",
    "filter_eq_10",
    "filter_range_200",
    "filter_range_10",
    "order_by",
    "delete",
    "bulk_create",
    "increment",
)
#: The operations that only read: timed first, on exactly the N records.
READS = (
    "get",
    "get_many",
    "filter_eq_200",
    "filter_eq_10",
    "filter_range_200",
    "filter_range_10",
    "order_by",
)


class BenchmarkError(Exception):
    """An operation returned something other than what it is credited with."""


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


def person_model() -> tuple[type[ActiveRecord], str]:
    """The issue's model, and how its ``age`` field was declared.

    ``age`` asks for ``Integer(index="range")``; if the library refuses that,
    it falls back to ``Integer()`` (whose default indexes are eq and range)
    and says so.
    """
    try:
        age = attributes.Integer(index="range")
        declared = 'Integer(index="range")'
    except Exception as exc:  # any refusal: the fallback is printed with its reason
        age = attributes.Integer()
        declared = f'Integer() (index="range" was refused: {type(exc).__name__}: {exc})'
    namespace = {
        "__module__": MODEL_MODULE,
        "__qualname__": "Person",
        "name": attributes.Unicode(index=False),
        "house": attributes.Unicode(),
        "age": age,
        "email": attributes.Unicode(index=False),
        "joined": attributes.DateTime(index=False),
    }
    return type(ActiveRecord)("Person", (ActiveRecord,), namespace), declared


def describe_model(model: type[ActiveRecord], age_declared: str) -> str:
    """One line per field with the indexes the library gave it."""
    lines = []
    for name, attribute in model._fields.items():
        indexes = getattr(attribute, "indexes", None)
        shown = ", ".join(sorted(indexes)) if indexes else "none"
        kind = age_declared if name == "age" else type(attribute).__name__
        lines.append(f"  {name:<7} {kind:<24} indexes: {shown}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Server and clients
# ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on, on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_server(binary: str | None) -> Iterator[str]:
    """Run a throwaway redis-server on a free loopback port; yield its URL (db 0).

    No RDB snapshots, no AOF; its directory is removed at the end.
    """
    binary = binary or os.environ.get("REPOCKET_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
    directory = tempfile.mkdtemp(prefix="repocket-bench-")
    log_path = os.path.join(directory, "redis.log")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", directory, "--protected-mode", "yes"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, encoding="utf-8", errors="replace") as text:
                        sys.exit(f"redis-server did not start:\n{text.read()[-2000:]}")
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def parser_name(client: redis.Redis) -> str:
    """The response parser class a client's connections use."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        return type(connection._parser).__name__
    finally:
        pool.release(connection)


# ---------------------------------------------------------------------------
# Machine-independent costs: round trips and commands
# ---------------------------------------------------------------------------


@contextmanager
def count_requests() -> Iterator[list[int]]:
    """Count the requests (round trips) redis-py sends inside the block.

    A command, a pipeline or a transaction is sent with one
    ``send_packed_command``.
    """
    counter = [0]
    original = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        counter[0] += 1
        return original(self, command, check_health)

    with mock.patch.object(AbstractConnection, "send_packed_command", counting):
        yield counter


def commands_so_far(admin: redis.Redis) -> int:
    """Commands the server has run (INFO and PING, the admin's own, left out)."""
    stats = admin.info("commandstats")
    return sum(
        int(value["calls"])
        for name, value in stats.items()
        if name not in ("cmdstat_info", "cmdstat_ping")
    )


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


@dataclass
class Side:
    """One way of doing an operation: ``fn(i)`` does call number ``i``.

    ``prepare(calls)``, when given, runs untimed before every sample (for
    operations that consume something, such as records to delete).
    """

    label: str
    fn: Callable[[int], Any]
    prepare: Callable[[int], Any] | None = None
    reference: bool = False  # a reference baseline: printed, no target
    calls: int = 0
    position: int = 0
    samples: list[float] = field(default_factory=list)  # seconds per call
    trips: int = 0
    commands: int = 0

    def run(self, calls: int) -> float:
        """Do ``calls`` calls; return the seconds per call."""
        if self.prepare is not None:
            self.prepare(calls)
        fn, start = self.fn, self.position
        gc.collect()
        began = time.perf_counter()
        for i in range(start, start + calls):
            fn(i)
        elapsed = time.perf_counter() - began
        self.position = start + calls
        return elapsed / calls

    def calibrate(self, seconds: float, warmup: int) -> None:
        """Warm up (at most ``warmup`` calls, at most about ``seconds``), then
        choose the calls per sample so that one lasts about ``seconds``."""
        deadline = time.perf_counter() + seconds
        for _ in range(warmup):
            self.run(1)
            if time.perf_counter() > deadline:
                break
        single = min(self.run(1), self.run(1))
        self.calls = max(MIN_CALLS, min(MAX_CALLS, int(seconds / max(single, 1e-7))))

    def count_costs(self, admin: redis.Redis) -> None:
        """Round trips and commands of one call (after the warm-up)."""
        if self.prepare is not None:
            self.prepare(1)
        admin.ping()
        before = commands_so_far(admin)
        with count_requests() as trips:
            self.fn(self.position)
        self.position += 1
        self.trips, self.commands = trips[0], commands_so_far(admin) - before

    @property
    def seconds(self) -> float:
        """Median seconds per call."""
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the range of the samples, relative to their median."""
        return (max(self.samples) - min(self.samples)) / 2 / self.seconds


@dataclass
class Operation:
    """repocket's side of one operation, its raw baselines (the first one
    is what the target compares with), and a check of both."""

    key: str
    label: str
    repocket: Side
    baselines: list[Side]
    check: Callable[[], None]
    records_per_call: int = 1

    @property
    def target(self) -> float | None:
        """The issue's lowest acceptable ratio (against the first baseline)."""
        return TARGETS.get(self.key)


@dataclass
class Unavailable:
    """An operation the library under test does not have."""

    label: str
    reason: str


@dataclass
class Outcome:
    """What measuring one operation gave: timed sides, or why not."""

    operation: Operation | None
    key: str
    label: str
    error: str | None = None  # "n/a: ..." when the operation does not exist


def measure(op: Operation, options: argparse.Namespace, admin: redis.Redis) -> None:
    """Time every side of an operation in alternating samples."""
    sides = [op.repocket, *op.baselines]
    for side in sides:
        side.calibrate(options.sample_seconds, options.warmup)
    for side in sides:
        side.count_costs(admin)
    for round_number in range(options.repeats):
        # ABBA...: over every 4 rounds each side goes first twice, so taking
        # a sample first or second weighs on no side (with an even count)
        order = sides if round_number % 4 in (0, 3) else sides[::-1]
        for side in order:
            side.samples.append(side.run(side.calls))
    mine = op.repocket
    for base in op.baselines:
        print(
            f"  {op.label:<30} vs {base.label:<30} repocket {1 / mine.seconds:>9,.1f}/s "
            f"(+-{mine.spread:4.0%})  raw {1 / base.seconds:>9,.1f}/s (+-{base.spread:4.0%})  "
            f"ratio {paired_ratio(mine, base):5.2f}",
            file=sys.stderr,
        )


def paired_ratio(mine: Side, base: Side) -> float:
    """The median over rounds of the ratio of the two sides' samples in
    that round (each round times both back to back, so a slow spell of the
    machine weighs on both sides of a ratio alike).  With an even number of
    rounds, the geometric mean of the middle two: the ratio the other way
    round is then exactly its inverse, as with an odd number."""
    ratios = sorted(b / m for m, b in zip(mine.samples, base.samples, strict=True))
    middle = len(ratios) // 2
    if len(ratios) % 2:
        return ratios[middle]
    return math.sqrt(ratios[middle - 1] * ratios[middle])


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@dataclass
class Dataset:
    """The N records both sides hold, and where the raw side keeps them."""

    model: type[ActiveRecord]
    age_declared: str  # how the age field was declared (see person_model)
    size: int
    ids: list[uuid.UUID]  # as repocket returns them
    houses: list[str]  # per record
    ages: list[int]  # per record
    big_houses: list[str]
    small_houses: list[str]
    template: dict[bytes, bytes]  # a stored hash, for raw writes
    raw_prefix: bytes  # record key = raw_prefix + id
    memory: dict[str, tuple[int, int]]  # side -> (used_memory delta, DBSIZE delta)
    key_kinds: dict[str, int]  # repocket's keys after loading, by kind
    load_seconds: dict[str, float]

    @property
    def distinct_ages(self) -> int:
        """Ages 0 to this - 1, each held by AGE_SHARE records."""
        return self.size // AGE_SHARE

    @property
    def written_age(self) -> int:
        """The age of records the writes add: above every queried age."""
        return self.distinct_ages + 1_000

    def raw_key(self, record_id: Any) -> bytes:
        """The raw copy's key of a record (the same key as repocket's)."""
        text = record_id if isinstance(record_id, bytes) else str(record_id).encode()
        return self.raw_prefix + text

    @staticmethod
    def house_key(house: str) -> str:
        """The hand-written index's set of the ids of one house."""
        return f"idx:Person:house:{house}"

    #: The hand-written index's sorted set of ids, by age.
    age_key: ClassVar[str] = "idx:Person:age"


def plan_houses(size: int, rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """Per-record houses: 200-member houses, and about 5% of the records in
    10-member houses.  Returns (houses per record, big houses, small houses)."""
    small_records = max(BIG_HOUSE, round(size / 20 / BIG_HOUSE) * BIG_HOUSE)
    big = [f"house-b{k}" for k in range((size - small_records) // BIG_HOUSE)]
    small = [f"house-s{k}" for k in range(small_records // SMALL_HOUSE)]
    per_record = [h for h in big for _ in range(BIG_HOUSE)]
    per_record += [h for h in small for _ in range(SMALL_HOUSE)]
    rng.shuffle(per_record)
    return per_record, big, small


def person_values(i: int, house: str, age: int) -> dict[str, Any]:
    """The field values of record number ``i``."""
    return {
        "name": f"Persón {i}",
        "house": house,
        "age": age,
        "email": f"person{i}@example.com",
        "joined": EPOCH + datetime.timedelta(seconds=i),
    }


def memory_and_keys(client: redis.Redis) -> tuple[int, int]:
    """(used_memory of the server, DBSIZE of the client's db)."""
    client.ping()
    return int(client.info("memory")["used_memory"]), int(client.dbsize())


def key_kinds(client: redis.Redis, record_keys: set[bytes]) -> dict[str, int]:
    """repocket's keys by kind: ``record`` (the records' own keys), ``index
    <entry>`` for index keys (``index eq:house``, ``index range:age``...), or
    the segment after ``repocket::`` (``ids``, ``terms``...)."""
    kinds: dict[str, int] = {}
    for key in client.scan_iter(count=1000):
        if key in record_keys:
            kind = "record"
        elif match := _INDEX_KEY.match(key):
            kind = "index " + match.group(1).decode(errors="replace")
        elif key.startswith(b"repocket::"):
            kind = key[len(b"repocket::") :].split(b":", 1)[0].decode(errors="replace")
        else:
            kind = "other"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# repocket::index:<module>:Person:<kind>:<field>[:<term>], or with a shard's
# hash tag instead of <module>:Person
_INDEX_KEY = re.compile(
    rb"^repocket::index:(?:\{[^}]*\}|" + MODEL_MODULE.encode() + rb":Person):([^:]+:[^:]+)"
)


def load(size: int, seed: int, repocket_client: redis.Redis, raw_client: redis.Redis) -> Dataset:
    """Load N records on both freshly flushed dbs, measuring memory and keys.

    repocket's side is written with ``bulk_create``; the raw side is a copy
    of the hashes repocket stored (read back with HGETALL), under the same
    keys, plus the hand-written index.
    """
    model, age_declared = person_model()
    rng = random.Random(seed)
    houses, big, small = plan_houses(size, rng)
    ages = [position // AGE_SHARE for position in range(size)]
    rng.shuffle(ages)
    repocket_client.flushdb()
    raw_client.flushdb()

    before = memory_and_keys(repocket_client)
    began = time.perf_counter()
    ids: list[uuid.UUID] = []
    for start in range(0, size, LOAD_CHUNK):
        people = [
            model(**person_values(i, houses[i], ages[i]))
            for i in range(start, min(size, start + LOAD_CHUNK))
        ]
        model.objects.bulk_create(people, batch_size=BULK_BATCH)
        ids.extend(person.id for person in people)
    repocket_seconds = time.perf_counter() - began
    after = memory_and_keys(repocket_client)
    memory = {"repocket": (after[0] - before[0], after[1] - before[1])}

    prefix = model._collection.record_key("").encode()
    keys = [prefix + str(record_id).encode() for record_id in ids]
    hashes = stored_hashes(repocket_client, keys)

    before = memory_and_keys(raw_client)
    began = time.perf_counter()
    for start in range(0, size, BULK_BATCH):
        pipe = raw_client.pipeline(transaction=False)
        for i in range(start, min(size, start + BULK_BATCH)):
            pipe.hset(keys[i], mapping=hashes[i])
            pipe.sadd(Dataset.house_key(houses[i]), str(ids[i]))
            pipe.zadd(Dataset.age_key, {str(ids[i]): ages[i]})
        pipe.execute()
    raw_seconds = time.perf_counter() - began
    after = memory_and_keys(raw_client)
    memory["raw"] = (after[0] - before[0], after[1] - before[1])

    return Dataset(
        model=model,
        age_declared=age_declared,
        size=size,
        ids=ids,
        houses=houses,
        ages=ages,
        big_houses=big,
        small_houses=small,
        template=hashes[0],
        raw_prefix=prefix,
        memory=memory,
        key_kinds=key_kinds(repocket_client, set(keys)),
        load_seconds={"repocket": repocket_seconds, "raw": raw_seconds},
    )


def stored_hashes(client: redis.Redis, keys: list[bytes]) -> list[dict[bytes, bytes]]:
    """The hashes repocket stored under these record keys (exit if one is not)."""
    kind = client.type(keys[0]).decode()
    if kind != "hash":
        sys.exit(
            f"repocket's record key {keys[0]!r} (from Collection.record_key) holds "
            f"{'nothing' if kind == 'none' else 'a ' + kind}, not a hash: the key layout "
            "changed, and the raw HSET/HGETALL baselines must follow it"
        )
    hashes: list[dict[bytes, bytes]] = []
    for start in range(0, len(keys), BULK_BATCH):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + BULK_BATCH]:
            pipe.hgetall(key)
        hashes.extend(pipe.execute())
    if not all(hashes):
        sys.exit("some records bulk_create() returned are not stored under their record key")
    return hashes


# ---------------------------------------------------------------------------
# The operations
# ---------------------------------------------------------------------------


def expect(condition: bool, message: str) -> None:
    """Raise :class:`BenchmarkError` unless ``condition``."""
    if not condition:
        raise BenchmarkError(message)


class Workload:
    """Builds each operation on one dataset: repocket's side, the raw
    baseline(s), and a check that both do the work they are credited with.

    Queries pick their house, age range or ids from lists drawn once with a
    fixed seed; call number ``i`` uses entry ``i`` modulo the list's length.
    Records added by the writes live in their own house with an age above
    every queried one, so they never match a query.
    """

    picks = 512

    def __init__(self, data: Dataset, raw: redis.Redis, seed: int) -> None:
        self.data, self.raw = data, raw
        self.objects = data.model.objects
        rng = random.Random(seed * 7 + data.size)
        self.get_ids = [rng.choice(data.ids) for _ in range(self.picks)]
        self.many = min(GET_MANY, data.size)
        self.many_ids = [rng.sample(data.ids, self.many) for _ in range(16)]
        self.big_houses = [rng.choice(data.big_houses) for _ in range(self.picks)]
        self.small_houses = [rng.choice(data.small_houses) for _ in range(self.picks)]
        self.lows = {
            width: [rng.randrange(data.distinct_ages - width + 1) for _ in range(self.picks)]
            for width in (RANGE_200, RANGE_10)
        }
        self.written_house_key = data.house_key(WRITTEN_HOUSE)
        self.new_records = 0

    def build(self, key: str) -> Operation | Unavailable:
        """The operation ``key`` (one of :data:`OPERATIONS`)."""
        builder: Callable[[], Operation | Unavailable] = getattr(self, key)
        return builder()

    # -- helpers ---------------------------------------------------------------

    def raw_load(self, keys: Sequence[bytes]) -> list[dict[bytes, bytes]]:
        """HGETALL of these keys, in one pipeline."""
        pipe = self.raw.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return pipe.execute()

    def raw_load_ids(self, ids: Sequence[bytes]) -> list[dict[bytes, bytes]]:
        """HGETALL of the records with these ids (as an index returns them)."""
        prefix = self.data.raw_prefix
        return self.raw_load([prefix + record_id for record_id in ids])

    def new_people(self, count: int) -> list[ActiveRecord]:
        """New, unsaved records in the written house."""
        data, start = self.data, self.data.size + self.new_records
        self.new_records += count
        return [
            data.model(**person_values(start + k, WRITTEN_HOUSE, data.written_age))
            for k in range(count)
        ]

    def new_raw_key(self) -> tuple[bytes, str]:
        """A new raw record key and its id (generated as repocket does)."""
        record_id = str(uuid.uuid1())
        return self.data.raw_prefix + record_id.encode(), record_id

    def raw_insert(self, count: int, indexed: bool = True) -> list[tuple[bytes, str]]:
        """Write ``count`` new raw records (hash, and index entries when
        ``indexed``), in pipelines; return their (key, id)."""
        made = []
        for start in range(0, count, BULK_BATCH):
            pipe = self.raw.pipeline(transaction=False)
            for _ in range(min(BULK_BATCH, count - start)):
                key, record_id = self.new_raw_key()
                pipe.hset(key, mapping=self.data.template)
                if indexed:
                    pipe.sadd(self.written_house_key, record_id)
                    pipe.zadd(self.data.age_key, {record_id: self.data.written_age})
                made.append((key, record_id))
            pipe.execute()
        return made

    # -- the operations ------------------------------------------------------------

    def save(self) -> Operation:
        """``Model(...).save()`` vs one HSET (and a hand-written MULTI)."""
        raw, data, template = self.raw, self.data, self.data.template
        last: list[ActiveRecord] = []

        def mine(i: int) -> Any:
            person = self.new_people(1)[0]
            last[:] = [person]
            return person.save()

        def hset(i: int) -> Any:
            return raw.hset(self.new_raw_key()[0], mapping=template)

        def indexed(i: int) -> Any:
            key, record_id = self.new_raw_key()
            pipe = raw.pipeline(transaction=True)
            pipe.hset(key, mapping=template)
            pipe.sadd(self.written_house_key, record_id)
            pipe.zadd(data.age_key, {record_id: data.written_age})
            return pipe.execute()

        def check() -> None:
            mine(0)
            stored = self.objects.get_many([last[0].id])[0]
            expect(stored is not None and stored.house == WRITTEN_HOUSE, "save(): not stored")
            expect(hset(0) == len(template), "HSET did not create the fields")
            expect(indexed(0)[0] == len(template), "HSET in MULTI did not create the fields")

        return Operation(
            "save",
            "save() of a new record",
            Side("repocket", mine),
            [Side("HSET", hset), Side("HSET+SADD+ZADD MULTI", indexed, reference=True)],
            check,
        )

    def get(self) -> Operation:
        """``objects.get(id=...)`` vs HGETALL."""
        ids, raw = self.get_ids, self.raw
        keys = [self.data.raw_key(record_id) for record_id in ids]

        def mine(i: int) -> Any:
            return self.objects.get(id=ids[i % len(ids)])

        def theirs(i: int) -> Any:
            return raw.hgetall(keys[i % len(keys)])

        def check() -> None:
            expect(mine(0).id == ids[0], "get(): wrong record")
            expect(bool(theirs(0)), "HGETALL: no record")

        return Operation(
            "get", "get(id=...)", Side("repocket", mine), [Side("HGETALL", theirs)], check
        )

    def get_many(self) -> Operation:
        """``objects.get_many(1,000 ids)`` vs 1,000 HGETALL in one pipeline."""
        batches, many = self.many_ids, self.many
        key_batches = [[self.data.raw_key(i) for i in batch] for batch in batches]

        def mine(i: int) -> Any:
            return self.objects.get_many(batches[i % len(batches)])

        def theirs(i: int) -> Any:
            return self.raw_load(key_batches[i % len(key_batches)])

        def check() -> None:
            found = mine(0)
            expect(len(found) == many and all(found), "get_many(): records missing")
            expect([p.id for p in found if p] == batches[0], "get_many(): wrong records")
            expect(len(theirs(0)) == many and all(theirs(0)), "HGETALL pipeline: records missing")

        return Operation(
            "get_many",
            f"get_many({many:,} ids)",
            Side("repocket", mine),
            [Side(f"{many:,} HGETALL pipelined", theirs)],
            check,
            records_per_call=many,
        )

    def _filter_eq(self, key: str, houses: list[str], rows: int) -> Operation:
        """``list(filter(house=h))`` vs SMEMBERS, then HGETALL pipelined."""
        house_keys = [self.data.house_key(h) for h in houses]

        def mine(i: int) -> Any:
            return list(self.objects.filter(house=houses[i % len(houses)]))

        def theirs(i: int) -> Any:
            return self.raw_load_ids(list(self.raw.smembers(house_keys[i % len(house_keys)])))

        def check() -> None:
            found = mine(0)
            expect(len(found) == rows, f"filter(house=...): {len(found)} rows, not {rows}")
            expect({p.house for p in found} == {houses[0]}, "filter(house=...): wrong house")
            expect(len(theirs(0)) == rows, f"SMEMBERS+HGETALL: not {rows} rows")

        return Operation(
            key,
            f"filter(house=h) -> {rows} rows",
            Side("repocket", mine),
            [Side("SMEMBERS+HGETALL", theirs)],
            check,
            records_per_call=rows,
        )

    def filter_eq_200(self) -> Operation:
        """An equality filter on a house of 200."""
        return self._filter_eq("filter_eq_200", self.big_houses, BIG_HOUSE)

    def filter_eq_10(self) -> Operation:
        """An equality filter on a house of 10."""
        return self._filter_eq("filter_eq_10", self.small_houses, SMALL_HOUSE)

    def _filter_range(self, key: str, width: int) -> Operation:
        """``list(filter(age__gte=a, age__lt=a + width))`` vs ZRANGEBYSCORE,
        then HGETALL pipelined."""
        lows, rows, age_key = self.lows[width], width * AGE_SHARE, self.data.age_key

        def mine(i: int) -> Any:
            low = lows[i % len(lows)]
            return list(self.objects.filter(age__gte=low, age__lt=low + width))

        def theirs(i: int) -> Any:
            low = lows[i % len(lows)]
            return self.raw_load_ids(self.raw.zrangebyscore(age_key, low, f"({low + width}"))

        def check() -> None:
            found, low = mine(0), lows[0]
            expect(len(found) == rows, f"filter(age range): {len(found)} rows, not {rows}")
            expect(all(low <= p.age < low + width for p in found), "filter(age range): wrong ages")
            expect(len(theirs(0)) == rows, f"ZRANGEBYSCORE+HGETALL: not {rows} rows")

        return Operation(
            key,
            f"filter(age range) -> {rows} rows",
            Side("repocket", mine),
            [Side("ZRANGEBYSCORE+HGETALL", theirs)],
            check,
            records_per_call=rows,
        )

    def filter_range_200(self) -> Operation:
        """A range filter matching 200 records."""
        return self._filter_range("filter_range_200", RANGE_200)

    def filter_range_10(self) -> Operation:
        """A range filter matching 10 records."""
        return self._filter_range("filter_range_10", RANGE_10)

    def order_by(self) -> Operation:
        """``list(order_by("age")[:10])`` vs ZRANGE 0 9, then HGETALL pipelined."""
        youngest = sorted(self.data.ages)[:TOP]

        def mine(i: int) -> Any:
            return list(self.objects.order_by("age")[:TOP])

        def theirs(i: int) -> Any:
            return self.raw_load_ids(self.raw.zrange(self.data.age_key, 0, TOP - 1))

        def check() -> None:
            expect([p.age for p in mine(0)] == youngest, f"order_by('age')[:{TOP}]: wrong ages")
            expect(len(theirs(0)) == TOP, f"ZRANGE+HGETALL: not {TOP} rows")

        return Operation(
            "order_by",
            f'order_by("age")[:{TOP}]',
            Side("repocket", mine),
            [Side(f"ZRANGE 0 {TOP - 1}+HGETALL", theirs)],
            check,
            records_per_call=TOP,
        )

    def delete(self) -> Operation:
        """``record.delete()`` of a loaded record vs DEL (and a hand-written
        MULTI); every sample first creates, untimed, the records it deletes."""
        raw, data = self.raw, self.data
        doomed: list[ActiveRecord] = []
        raw_doomed: list[tuple[bytes, str]] = []
        raw_doomed_indexed: list[tuple[bytes, str]] = []

        def prepare_mine(calls: int) -> None:
            people = self.objects.bulk_create(self.new_people(calls), batch_size=BULK_BATCH)
            doomed.extend(p for p in self.objects.get_many([p.id for p in people]) if p)

        def prepare_raw(calls: int) -> None:
            raw_doomed.extend(self.raw_insert(calls))

        def prepare_raw_indexed(calls: int) -> None:
            raw_doomed_indexed.extend(self.raw_insert(calls))

        def mine(i: int) -> Any:
            return doomed.pop().delete()

        def theirs(i: int) -> Any:
            return raw.delete(raw_doomed.pop()[0])

        def indexed(i: int) -> Any:
            key, record_id = raw_doomed_indexed.pop()
            pipe = raw.pipeline(transaction=True)
            pipe.delete(key)
            pipe.srem(self.written_house_key, record_id)
            pipe.zrem(data.age_key, record_id)
            return pipe.execute()

        def check() -> None:
            prepare_mine(1)
            record_id = doomed[-1].id
            expect(mine(0) == 1, "delete(): did not report 1 key removed")
            expect(self.objects.get_many([record_id])[0] is None, "delete(): record still there")
            prepare_raw(1)
            expect(theirs(0) == 1, "DEL removed nothing")
            prepare_raw_indexed(1)
            expect(indexed(0) == [1, 1, 1], "DEL+SREM+ZREM removed nothing")

        return Operation(
            "delete",
            "delete() of a loaded record",
            Side("repocket", mine, prepare_mine),
            [
                Side("DEL", theirs, prepare_raw),
                Side("DEL+SREM+ZREM MULTI", indexed, prepare_raw_indexed, reference=True),
            ],
            check,
        )

    def bulk_create(self) -> Operation:
        """``bulk_create`` of 1,000 new records in batches of 500 vs 1,000
        HSET in pipelines of 500 (the same round trips)."""
        raw = self.raw

        def mine(i: int) -> Any:
            return self.objects.bulk_create(self.new_people(BULK_RECORDS), batch_size=BULK_BATCH)

        def theirs(i: int) -> Any:
            return self.raw_insert(BULK_RECORDS, indexed=False)

        def check() -> None:
            people = mine(0)
            expect(len(people) == BULK_RECORDS, "bulk_create(): wrong number of records")
            stored = self.objects.get_many([people[0].id, people[-1].id])
            expect(all(stored), "bulk_create(): records not stored")
            before = raw.dbsize()
            theirs(0)
            expect(raw.dbsize() - before == BULK_RECORDS, "pipelined HSET: wrong number of keys")

        return Operation(
            "bulk_create",
            f"bulk_create({BULK_RECORDS:,}, batch {BULK_BATCH})",
            Side("repocket", mine),
            [Side(f"{BULK_RECORDS:,} HSET, pipelines of {BULK_BATCH}", theirs)],
            check,
            records_per_call=BULK_RECORDS,
        )

    def increment(self) -> Operation | Unavailable:
        """``record.increment("age", 1)`` vs HINCRBY, on 100 records in turn;
        only when the library has ``ActiveRecord.increment``."""
        if not hasattr(ActiveRecord, "increment"):
            return Unavailable('increment("age", 1)', "ActiveRecord.increment does not exist")
        raw = self.raw
        counters: list[Any] = []
        raw_counters: list[bytes] = []

        def prepare_mine(calls: int) -> None:
            if not counters:
                people = self.objects.bulk_create(self.new_people(INCREMENT_POOL))
                counters.extend(self.objects.get_many([p.id for p in people]))

        def prepare_raw(calls: int) -> None:
            if not raw_counters:
                raw_counters.extend(
                    key for key, _ in self.raw_insert(INCREMENT_POOL, indexed=False)
                )

        def mine(i: int) -> Any:
            return counters[i % len(counters)].increment("age", 1)

        def theirs(i: int) -> Any:
            return raw.hincrby(raw_counters[i % len(raw_counters)], "n", 1)

        def check() -> None:
            prepare_mine(1)
            before = self.objects.get(id=counters[0].id).age
            mine(0)
            after = self.objects.get(id=counters[0].id).age
            expect(after == before + 1, f"increment('age', 1): stored age {before} -> {after}")
            prepare_raw(1)
            expect(theirs(0) == 1, "HINCRBY did not count from 0")

        return Operation(
            "increment",
            'increment("age", 1)',
            Side("repocket", mine, prepare_mine),
            [Side("HINCRBY", theirs, prepare_raw)],
            check,
        )


def run_operation(
    key: str, op: Operation | Unavailable, options: argparse.Namespace, admin: redis.Redis
) -> Outcome:
    """Check, then measure one operation; an error becomes the outcome."""
    if isinstance(op, Unavailable):
        print(f"  {op.label}: n/a ({op.reason})", file=sys.stderr)
        return Outcome(None, key, op.label, error=f"n/a: {op.reason}")
    try:
        op.check()
        measure(op, options, admin)
    except Exception as exc:  # the library is changing: report, go on with the others
        traceback.print_exc(file=sys.stderr)
        return Outcome(None, key, op.label, error=f"error: {type(exc).__name__}: {exc}")
    return Outcome(op, key, op.label)


# ---------------------------------------------------------------------------
# Profiling
# ---------------------------------------------------------------------------


def profile(op: Operation, options: argparse.Namespace) -> str:
    """CPU and wall time per call of repocket's side, then cProfile's top 25
    functions by cumulative time, over a run of about ``--profile-seconds``."""
    op.check()
    side = op.repocket
    side.calibrate(options.profile_seconds, options.warmup)
    if side.prepare is not None:
        side.prepare(side.calls)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(side.position, side.position + side.calls):
        side.fn(i)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    side.position += side.calls
    if side.prepare is not None:
        side.prepare(side.calls)
    profiler = cProfile.Profile()
    gc.collect()
    profiler.enable()
    for i in range(side.position, side.position + side.calls):
        side.fn(i)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    calls, per = side.calls, op.records_per_call
    lines = [
        f"repocket's {op.label}, N = {options.records:,}: {calls:,} calls, without the profiler",
        f"  wall {wall / calls * 1e3:.3f} ms/call, process CPU {cpu / calls * 1e3:.3f} ms/call",
    ]
    if per > 1:
        lines.append(
            f"  per record ({per:,} per call): wall {wall / calls / per * 1e6:.1f} us, "
            f"CPU {cpu / calls / per * 1e6:.1f} us"
        )
    lines += ["", f"cProfile of the same {calls:,} calls, top 25 by cumulative time:", ""]
    return "\n".join(lines) + out.getvalue()


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def git_revision() -> str:
    """This checkout's ``<short hash>``, and whether repocket/ has uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "repocket"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (", with uncommitted changes under repocket/" if changes else "")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_description() -> str:
    """CPU count (and how many this process may use), and the model name."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return f"{cores} ({usable} usable), {model}"


def environment(
    admin: redis.Redis, mine: redis.Redis, raw: redis.Redis, *, own_server: bool = True
) -> list[tuple[str, str]]:
    """What the figures depend on, as (name, value) pairs.

    :param own_server: whether the script started the server (as
        :func:`own_server` does) rather than being given one.
    """
    try:
        import hiredis

        hiredis_version = f"hiredis {hiredis.__version__}"
    except ImportError:
        hiredis_version = "hiredis not installed"
    info = admin.info("server")
    kwargs = admin.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    how = "started by the script, --save '' --appendonly no" if own_server else "given"
    return [
        ("redis-server", f"{info.get('redis_version')} at {where} ({how})"),
        ("redis-py", redis.__version__),
        (
            "hiredis",
            f"{'in use' if redis.utils.HIREDIS_AVAILABLE else 'NOT in use'} "
            f"(redis.utils.HIREDIS_AVAILABLE = {redis.utils.HIREDIS_AVAILABLE}, "
            f"{hiredis_version}; parsers: repocket {parser_name(mine)}, raw {parser_name(raw)})",
        ),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("CPUs", cpu_description()),
        ("git", git_revision()),
        (
            "repocket",
            f"{repocket.__version__}, imported from {os.path.dirname(repocket.__file__)}",
        ),
    ]


def table(header: list[str], rows: list[list[str]], aligns: str) -> str:
    """A reStructuredText simple table (readable as plain text)."""
    every = [header, *rows]
    widths = [max(len(row[c]) for row in every) for c in range(len(header))]
    rule = "  ".join("=" * w for w in widths)

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if a == "l" else cell.rjust(w)
            for cell, w, a in zip(row, widths, aligns, strict=True)
        ).rstrip()

    return "\n".join([rule, line(header), rule, *(line(r) for r in rows), rule])


def rate(seconds: float) -> str:
    """Operations per second, with a sensible number of digits."""
    per_second = 1 / seconds
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:,.1f}"


def operation_rows(outcomes: list[Outcome]) -> list[list[str]]:
    """One row per (operation, baseline); reference baselines have no target."""
    rows = []
    for outcome in outcomes:
        op = outcome.operation
        if op is None:
            status = (outcome.error or "error").split(":", 1)[0]
            rows.append([outcome.label, status, status, status, "-", status, "-", "-"])
            continue
        mine = op.repocket
        for base in op.baselines:
            ratio = paired_ratio(mine, base)
            target = None if base.reference else op.target
            label = f"{op.label} vs {base.label}"
            if base.reference:
                label += " (reference)"
            rows.append(
                [
                    label,
                    rate(mine.seconds),
                    rate(base.seconds),
                    f"{ratio:.2f}",
                    "-" if target is None else f">= {target}",
                    "-" if target is None else ("yes" if ratio >= target else "NO"),
                    f"{mine.trips} / {base.trips}",
                    f"{mine.commands:,} / {base.commands:,}",
                ]
            )
    return rows


def memory_rows(data: Dataset) -> list[list[str]]:
    """Bytes and keys per record, repocket against the hand-written index."""
    n = data.size
    mine_bytes, mine_keys = data.memory["repocket"]
    raw_bytes, raw_keys = data.memory["raw"]
    bytes_ratio = mine_bytes / raw_bytes
    keys_per_record = mine_keys / n
    keys_met = round(keys_per_record, 1) == KEYS_TARGET
    return [
        [
            "bytes per record (used_memory delta / N)",
            f"{mine_bytes / n:,.0f}",
            f"{raw_bytes / n:,.0f}",
            f"{bytes_ratio:.2f}",
            f"<= {BYTES_TARGET}",
            "yes" if bytes_ratio <= BYTES_TARGET else "NO",
        ],
        [
            "keys per record (DBSIZE delta / N)",
            f"{keys_per_record:.3f}",
            f"{raw_keys / n:.3f}",
            f"{keys_per_record / (raw_keys / n):.2f}",
            "== 1",
            "yes" if keys_met else "NO",
        ],
    ]


def report(
    data: Dataset,
    outcomes: list[Outcome],
    options: argparse.Namespace,
    env: list[tuple[str, str]],
    loads: tuple[str, str],
    elapsed: float,
) -> str:
    """The whole printed report."""
    out = ["Environment", ""]
    out += [f"  {name + ':':<14}{value}" for name, value in env]
    out.append(f"  {'load average:':<14}{loads[0]} at the start, {loads[1]} at the end")
    houses = (
        f"{len(data.big_houses)} houses of {BIG_HOUSE} and {len(data.small_houses)} "
        f"of {SMALL_HOUSE}"
    )
    out += [
        "",
        f"Model Person, N = {data.size:,} records ({houses}; {data.distinct_ages:,} ages of "
        f"{AGE_SHARE} records each):",
        describe_model(data.model, data.age_declared),
        "",
        f"Loading: repocket bulk_create {data.load_seconds['repocket']:.1f} s "
        f"({data.size / data.load_seconds['repocket']:,.0f} records/s); raw pipelined "
        f"HSET+SADD+ZADD {data.load_seconds['raw']:.1f} s "
        f"({data.size / data.load_seconds['raw']:,.0f} records/s).",
        "repocket's keys after loading, by kind: "
        + ", ".join(f"{kind} {count:,}" for kind, count in sorted(data.key_kinds.items())),
        "",
        f"Operations: median of {options.repeats} rounds of samples of about "
        f"{options.sample_seconds} s, the two sides alternating (ABBA); "
        "ratio = repocket ops/s / raw ops/s in each round, median over the rounds.",
        "",
        table(
            [
                "operation",
                "repocket ops/s",
                "raw ops/s",
                "ratio",
                "target",
                "met?",
                "round trips/call",
                "commands/call",
            ],
            operation_rows(outcomes),
            "lrrrrlrr",
        ),
        *(
            f"  {outcome.label}: {outcome.error}"
            for outcome in outcomes
            if outcome.error is not None
        ),
        "",
        "Memory, after loading the N records on a freshly flushed db (hand-written: "
        "the same hashes, one set of ids per house, one sorted set of ids by age):",
        "",
        table(
            ["measure", "repocket", "hand-written", "ratio", "target", "met?"],
            memory_rows(data),
            "lrrrrl",
        ),
        "",
        "ops/s: calls per second (a get_many, filter or bulk_create call handles many "
        "records).  round trips/call, commands/call: one call, repocket / raw; commands "
        "are an INFO commandstats delta (MULTI, EXEC and commands run by Lua scripts "
        "included).  Reference rows compare with a hand-written index and have no target.  "
        "Keys per record meets its target when it rounds to 1.0.",
        "",
        f"Total run time {elapsed:.0f} s.",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, with the --quick defaults applied."""
    parser = argparse.ArgumentParser(
        description="repocket against raw redis-py: ratios, round trips, memory."
    )
    parser.add_argument(
        "--records",
        type=int,
        default=None,
        help="N, a multiple of 200, at least 1,000 (default 20,000; --quick 2,000)",
    )
    parser.add_argument(
        "--repeats", type=int, default=8, help="rounds per operation; the median is reported"
    )
    parser.add_argument(
        "--sample-seconds",
        type=float,
        default=None,
        help="approximate length of one sample (default 0.15; --quick 0.05)",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed calls first (default 20; --quick 3)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: N = 2,000, short samples"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=OPERATIONS,
        metavar="OP",
        help=f"time only these operations ({', '.join(OPERATIONS)})",
    )
    parser.add_argument(
        "--profile",
        choices=OPERATIONS,
        metavar="OP",
        help="instead of the table: cProfile repocket's side of OP and print the top 25 "
        "functions by cumulative time",
    )
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=None,
        help="approximate length of the profiled run (default 2; --quick 0.5)",
    )
    parser.add_argument(
        "--redis-server",
        help="redis-server binary (default: $REPOCKET_REDIS_SERVER, or redis-server on PATH)",
    )
    parser.add_argument("--seed", type=int, default=20240601)
    options = parser.parse_args(argv)
    quick = options.quick
    if options.records is None:
        options.records = 2_000 if quick else 20_000
    if options.sample_seconds is None:
        options.sample_seconds = 0.05 if quick else 0.15
    if options.warmup is None:
        options.warmup = 3 if quick else 20
    if options.profile_seconds is None:
        options.profile_seconds = 0.5 if quick else 2.0
    if options.records < 1_000 or options.records % BIG_HOUSE:
        parser.error("--records must be a multiple of 200, at least 1,000")
    if options.repeats < 1 or options.sample_seconds <= 0 or options.warmup < 0:
        parser.error("--repeats and --sample-seconds must be positive, --warmup not negative")
    return options


def run(options: argparse.Namespace, url: str) -> int:
    """Load, measure (or profile), print; return the exit status."""
    began = time.perf_counter()
    start_load = load_average()
    configure.from_url(url)
    mine = configure.get_connection()
    raw = redis.Redis.from_url(url.rsplit("/", 1)[0] + "/1", decode_responses=False)
    admin = redis.Redis.from_url(url)
    try:
        env = environment(admin, mine, raw)
        for name, value in env:
            print(f"{name}: {value}", file=sys.stderr)
        print(f"loading N={options.records:,} ...", file=sys.stderr)
        data = load(options.records, options.seed, mine, raw)
        workload = Workload(data, raw, options.seed)
        if options.profile:
            op = workload.build(options.profile)
            if isinstance(op, Unavailable):
                print(f"{op.label}: n/a ({op.reason})")
                return 0
            print(profile(op, options))
            return 0
        wanted = set(options.only or OPERATIONS)
        order = [k for k in READS if k in wanted] + [
            k for k in OPERATIONS if k in wanted and k not in READS
        ]
        outcomes = {key: run_operation(key, workload.build(key), options, admin) for key in order}
        shown = [outcomes[key] for key in OPERATIONS if key in outcomes]
        print(
            report(
                data, shown, options, env, (start_load, load_average()), time.perf_counter() - began
            )
        )
        failed = [o for o in shown if o.error and o.error.startswith("error")]
        return 1 if failed else 0
    finally:
        raw.close()
        admin.close()
        configure.reset()


def main(argv: Sequence[str] | None = None) -> int:
    """Start a server of our own, run the benchmark on it, stop it."""
    options = parse_args(argv)
    with own_server(options.redis_server) as url:
        return run(options, url)


if __name__ == "__main__":
    sys.exit(main())
