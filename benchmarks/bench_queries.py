#!/usr/bin/env python
"""repocket against raw redis-py, operation by operation, on a real redis-server.

Usage::

    python benchmarks/bench_queries.py                    # N = 1,000 and 100,000
    python benchmarks/bench_queries.py --quick            # N = 1,000, short: a smoke run
    python benchmarks/bench_queries.py --url redis://127.0.0.1:6379/0 --raw-db 1
    python benchmarks/bench_queries.py --sizes 1000 10000 --repeats 15

Without ``--url`` the script starts its own ``redis-server`` on a free
loopback port (no RDB snapshots, no AOF) and stops it at the end; repocket's
data goes to db 0 and the raw redis-py data to db 1.  With ``--url`` it
writes only its own keys (those of the ``repocket_bench.Person<N>`` models,
and raw keys under ``repocket-bench-raw:``) and deletes them when it is done.

Each size N has its own model class, and all sizes are loaded first:
repocket's records with ``bulk_create``, the raw copy with pipelined ``HSET``
plus a hand-written index (``SADD`` per house, ``ZADD`` by age).  Then every
operation is timed on both sides, for every size, in the same run: the reads
first, on exactly N records, then the writes, which add records on top.  The
samples of the two sides and of the sizes alternate, so that all of them see
the same machine conditions, and each figure is the median of ``--repeats``
samples.  A sample repeats the operation a number of times fixed beforehand
(so that it lasts about ``--sample-seconds``, within fixed bounds).

Next to each figure the script prints the round trips (requests sent by
redis-py) and the redis commands (an ``INFO commandstats`` delta, MULTI and
EXEC included) of one call, which do not depend on the machine.  The
benchmark is not a test: nothing fails on a slow machine.

This script measures how query times grow with N.  ``bench_engine.py``, next
to it, measures the ratios the engine's targets are stated in (at one N,
with memory per record); this one borrows its server, counting and report
helpers.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import pstats
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from bench_engine import (
    commands_so_far,
    count_requests,
    environment,
    load_average,
    own_server,
    table,
)

from repocket import ActiveRecord, attributes, serialization
from repocket.backends.layout import meta_patterns
from repocket.connections import configure

MODEL_MODULE = "repocket_bench"
RAW_PREFIX = "repocket-bench-raw"
EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
PER_HOUSE = 10  # every house has exactly this many members, at every N
RANGE_WIDTH = 10  # ages are 0..N-1, each once: [a, a + 10) holds exactly 10
TOP = 10  # order_by("-age")[:10]
GET_MANY_BATCH = 100
BULK_RECORDS = 1_000  # records per timed bulk_create call ...
BULK_BATCH = 500  # ... in batches of this many (one round trip each)
LOAD_CHUNK = 5_000  # records per bulk_create call while loading the N records
MIN_CALLS, MAX_CALLS = 1, 2_000  # bounds of the calls per sample
TARGET_RATIO = {"save": 1.5, "get": 1.5, "filter_eq": 2.0, "filter_range": 2.0}
TARGET_GROWTH = 1.5
READS = ("get", "get_many", "filter_eq", "filter_range", "order_first", "count")
WRITES = ("save", "bulk_create", "save_indexed")
SCALING = ("filter_eq", "filter_range", "order_first", "count")


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


def person_model(size: int) -> type[ActiveRecord]:
    """A small model with each field type's default indexes, one class per N.

    Each size has its own class, so its own keys: all sizes are loaded at
    once and their samples alternate.
    """
    name = f"Person{size}"
    namespace = {
        "__module__": MODEL_MODULE,  # keys: repocket:repocket_bench:Person<N>:<id>
        "__qualname__": name,
        "name": attributes.Unicode(),
        "house": attributes.Unicode(),
        "age": attributes.Integer(),
        "joined": attributes.DateTime(),
    }
    return type(ActiveRecord)(name, (ActiveRecord,), namespace)


# ---------------------------------------------------------------------------
# Server (without --url, bench_engine.own_server starts one)
# ---------------------------------------------------------------------------


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def url_db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path else 0


def unlink_matching(client: redis.Redis, pattern: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def clean(repocket_client: redis.Redis, raw_client: redis.Redis, sizes: list[int]) -> None:
    """Delete the benchmark's own keys, and nothing else."""
    for size in sizes:
        collection = person_model_cache(size)._collection
        # record_patterns (any key layout) replaced the older record_pattern
        record_patterns = getattr(collection, "record_patterns", None) or (
            collection.record_pattern,
        )
        for pattern in (*record_patterns, *meta_patterns(collection)):
            unlink_matching(repocket_client, pattern)
    unlink_matching(raw_client, f"{RAW_PREFIX}:*")


_models: dict[int, type[ActiveRecord]] = {}


def person_model_cache(size: int) -> type[ActiveRecord]:
    if size not in _models:
        _models[size] = person_model(size)
    return _models[size]


# ---------------------------------------------------------------------------
# Machine-independent costs: round trips and commands
# ---------------------------------------------------------------------------


def costs(fn: Callable[[int], Any], admin: redis.Redis) -> tuple[int, int]:
    """(round trips, redis commands) of one call, measured after the warm-up."""
    admin.ping()
    before = commands_so_far(admin)
    with count_requests() as trips:
        fn(10**6)
    return trips[0], commands_so_far(admin) - before


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


@dataclass
class Side:
    """One way of doing an operation: a callable taking a call number."""

    fn: Callable[[int], Any]
    calls: int = 0
    position: int = 0
    samples: list[float] = field(default_factory=list)  # seconds per call

    def run(self, calls: int) -> float:
        fn, start = self.fn, self.position
        gc.collect()
        began = time.perf_counter()
        for i in range(start, start + calls):
            fn(i)
        elapsed = time.perf_counter() - began
        self.position = start + calls
        return elapsed

    def calibrate(self, seconds: float, warmup: int) -> None:
        """Warm up (at most ``warmup`` calls, stopping after ``seconds``), then
        choose the calls per sample."""
        deadline = time.perf_counter() + seconds
        for _ in range(warmup):
            self.run(1)
            if time.perf_counter() > deadline:
                break
        single = min(self.run(1), self.run(1))
        self.calls = max(MIN_CALLS, min(MAX_CALLS, int(seconds / max(single, 1e-7))))


@dataclass
class Operation:
    key: str
    label: str
    per_call: int  # records per call (1 for queries)
    repocket: Callable[[int], Any]
    raw: Callable[[int], Any]


@dataclass
class Result:
    key: str
    label: str
    size: int
    per_call: int
    repocket: list[float]  # seconds per call, one per sample
    raw: list[float]
    trips: tuple[int, int]
    commands: tuple[int, int]

    @property
    def repocket_seconds(self) -> float:
        """Median seconds per record (per query for queries)."""
        return statistics.median(self.repocket) / self.per_call

    @property
    def raw_seconds(self) -> float:
        return statistics.median(self.raw) / self.per_call

    @property
    def ratio(self) -> float:
        """How many times longer repocket takes than raw redis-py."""
        return self.repocket_seconds / self.raw_seconds

    @staticmethod
    def spread(samples: list[float]) -> float:
        """Half the interquartile range, relative to the median."""
        median = statistics.median(samples)
        if len(samples) < 4:
            return (max(samples) - min(samples)) / 2 / median
        q1, _, q3 = statistics.quantiles(samples, n=4)
        return (q3 - q1) / 2 / median


def measure(
    key: str,
    operations: dict[int, Operation],
    options: argparse.Namespace,
    admins: tuple[redis.Redis, redis.Redis],
) -> list[Result]:
    """Time one operation at every size, alternating sides and sizes."""
    sides = {size: (Side(op.repocket), Side(op.raw)) for size, op in operations.items()}
    for pair in sides.values():
        for side in pair:
            side.calibrate(options.sample_seconds, options.warmup)
    counted = {
        size: [costs(side.fn, admin) for side, admin in zip(pair, admins, strict=True)]
        for size, pair in sides.items()
    }
    for _ in range(options.repeats):
        for pair in sides.values():
            for side in pair:
                side.samples.append(side.run(side.calls) / side.calls)
    results = []
    for size, (mine, theirs) in sides.items():
        op = operations[size]
        (trips_mine, commands_mine), (trips_theirs, commands_theirs) = counted[size]
        result = Result(
            key,
            op.label,
            size,
            op.per_call,
            mine.samples,
            theirs.samples,
            (trips_mine, trips_theirs),
            (commands_mine, commands_theirs),
        )
        print(
            f"  N={size:<8,} {op.label:<34} repocket {1 / result.repocket_seconds:>9,.0f}/s"
            f"  raw {1 / result.raw_seconds:>9,.0f}/s  ratio {result.ratio:6.2f}",
            file=sys.stderr,
        )
        results.append(result)
    return results


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def person_values(i: int, age: int, houses: int) -> dict[str, Any]:
    return {
        "name": f"Persón {i}",
        "house": f"house-{i % houses}",
        "age": age,
        "joined": EPOCH + datetime.timedelta(seconds=i),
    }


def envelope_mapping(
    model: type[ActiveRecord], record_id: str, values: dict[str, Any]
) -> dict[str, str]:
    """The hash repocket stores for these values: the same bytes, for raw HSETs."""
    fields = model._fields
    mapping = {"id": serialization.dumps(fields["id"], uuid.UUID(record_id))}
    mapping.update(
        (name, serialization.dumps(fields[name], value)) for name, value in values.items()
    )
    return mapping


@dataclass
class Dataset:
    size: int
    model: type[ActiveRecord]
    prefix: str  # raw keys
    repocket_ids: list[uuid.UUID]
    raw_ids: list[str]
    houses: list[str]
    load_seconds: tuple[float, float]

    def raw_key(self, record_id: str | bytes) -> str:
        if isinstance(record_id, bytes):
            record_id = record_id.decode()
        return f"{self.prefix}:rec:{record_id}"

    def raw_house_key(self, house: str) -> str:
        return f"{self.prefix}:idx:house:{house}"

    @property
    def raw_age_key(self) -> str:
        return f"{self.prefix}:idx:age"


def load(size: int, raw_client: redis.Redis, seed: int) -> Dataset:
    model = person_model_cache(size)
    rng = random.Random(seed + size)
    ages = list(range(size))
    rng.shuffle(ages)
    houses = max(1, size // PER_HOUSE)
    values = [person_values(i, ages[i], houses) for i in range(size)]

    began = time.perf_counter()
    repocket_ids: list[uuid.UUID] = []
    for start in range(0, size, LOAD_CHUNK):
        people = [model(**v) for v in values[start : start + LOAD_CHUNK]]
        model.objects.bulk_create(people, batch_size=BULK_BATCH)
        repocket_ids.extend(p.id for p in people)
    repocket_load = time.perf_counter() - began

    data = Dataset(
        size,
        model,
        f"{RAW_PREFIX}:{size}",
        repocket_ids,
        [],
        [f"house-{h}" for h in range(houses)],
        (repocket_load, 0.0),
    )
    data.raw_ids = [str(uuid.uuid1()) for _ in range(size)]
    mappings = [envelope_mapping(model, data.raw_ids[i], values[i]) for i in range(size)]
    began = time.perf_counter()
    for start in range(0, size, BULK_BATCH):
        pipe = raw_client.pipeline(transaction=False)
        for i in range(start, min(size, start + BULK_BATCH)):
            record_id = data.raw_ids[i]
            pipe.hset(data.raw_key(record_id), mapping=mappings[i])
            pipe.sadd(data.raw_house_key(values[i]["house"]), record_id)
            pipe.zadd(data.raw_age_key, {record_id: values[i]["age"]})
        pipe.execute()
    data.load_seconds = (repocket_load, time.perf_counter() - began)
    return data


# ---------------------------------------------------------------------------
# The operations
# ---------------------------------------------------------------------------


def operations(data: Dataset, raw_client: redis.Redis, seed: int) -> dict[str, Operation]:
    """Both sides of every operation on one data set, checked once."""
    size, model = data.size, data.model
    objects = model.objects
    rng = random.Random(seed * 7 + size)
    picks = 512
    positions = [rng.randrange(size) for _ in range(picks)]
    get_ids = [data.repocket_ids[p] for p in positions]
    raw_get_keys = [data.raw_key(data.raw_ids[p]) for p in positions]
    batches = [rng.sample(range(size), min(GET_MANY_BATCH, size)) for _ in range(64)]
    many_ids = [[data.repocket_ids[p] for p in batch] for batch in batches]
    many_keys = [[data.raw_key(data.raw_ids[p]) for p in batch] for batch in batches]
    houses = [rng.choice(data.houses) for _ in range(picks)]
    raw_house_keys = [data.raw_house_key(h) for h in houses]
    lows = [rng.randrange(max(1, size - RANGE_WIDTH + 1)) for _ in range(picks)]
    raw_age_key = data.raw_age_key

    def pick(items: list[Any], i: int) -> Any:
        return items[i % len(items)]

    def raw_load(keys: list[str]) -> list[dict[bytes, bytes]]:
        pipe = raw_client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return pipe.execute()

    # -- reads -------------------------------------------------------------------
    def r_get(i: int) -> Any:
        return objects.get(id=pick(get_ids, i))

    def w_get(i: int) -> Any:
        return raw_client.hgetall(pick(raw_get_keys, i))

    def r_get_many(i: int) -> Any:
        return objects.get_many(pick(many_ids, i))

    def w_get_many(i: int) -> Any:
        return raw_load(pick(many_keys, i))

    def r_filter_eq(i: int) -> Any:
        return list(objects.filter(house=pick(houses, i)))

    def w_filter_eq(i: int) -> Any:
        return raw_load([data.raw_key(m) for m in raw_client.smembers(pick(raw_house_keys, i))])

    def r_filter_range(i: int) -> Any:
        low = pick(lows, i)
        return list(objects.filter(age__gte=low, age__lt=low + RANGE_WIDTH))

    def w_filter_range(i: int) -> Any:
        low = pick(lows, i)
        ids = raw_client.zrangebyscore(raw_age_key, low, f"({low + RANGE_WIDTH}")
        return raw_load([data.raw_key(m) for m in ids])

    def r_order_first(i: int) -> Any:
        return objects.order_by("-age")[:TOP]

    def w_order_first(i: int) -> Any:
        return raw_load([data.raw_key(m) for m in raw_client.zrevrange(raw_age_key, 0, TOP - 1)])

    def r_count(i: int) -> Any:
        return objects.filter(house=pick(houses, i)).count()

    def w_count(i: int) -> Any:
        return raw_client.scard(pick(raw_house_keys, i))

    # Check once that both sides do the work they are credited with.
    matches = min(PER_HOUSE, size)
    assert r_get(0).id == get_ids[0] and w_get(0)
    assert all(r_get_many(0)) and all(w_get_many(0))
    assert len(r_get_many(0)) == len(w_get_many(0)) == len(batches[0])
    found = r_filter_eq(0)
    assert len(found) == len(w_filter_eq(0)) == matches and {p.house for p in found} == {houses[0]}
    found = r_filter_range(0)
    assert len(found) == len(w_filter_range(0)) == min(RANGE_WIDTH, size)
    assert all(lows[0] <= p.age < lows[0] + RANGE_WIDTH for p in found)
    assert [p.age for p in r_order_first(0)] == list(range(size - 1, size - 1 - TOP, -1))
    assert len(w_order_first(0)) == TOP
    assert r_count(0) == w_count(0) == matches

    # -- writes, on top of the N records -------------------------------------------
    # Written records have their own house and negative ages, so they never
    # match the queries above (which have run by then anyway).
    template = envelope_mapping(
        model, str(uuid.uuid1()), person_values(0, -1, 1) | {"house": "written"}
    )
    written_house = data.raw_house_key("written")

    def new_values(i: int) -> dict[str, Any]:
        return {
            "name": f"Persón {size + i}",
            "house": "written",
            "age": -1 - i,
            "joined": EPOCH - datetime.timedelta(seconds=i),
        }

    def r_save(i: int) -> Any:
        return model(**new_values(i)).save()

    def w_save(i: int) -> Any:
        return raw_client.hset(data.raw_key(str(uuid.uuid1())), mapping=template)

    def w_save_indexed(i: int) -> Any:
        record_id = str(uuid.uuid1())
        pipe = raw_client.pipeline(transaction=True)
        pipe.hset(data.raw_key(record_id), mapping=template)
        pipe.sadd(written_house, record_id)
        pipe.zadd(raw_age_key, {record_id: -1 - i})
        return pipe.execute()

    def r_bulk(i: int) -> Any:
        base = i * BULK_RECORDS
        people = [model(**new_values(base + k)) for k in range(BULK_RECORDS)]
        return objects.bulk_create(people, batch_size=BULK_BATCH)

    def w_bulk(i: int) -> Any:
        for _ in range(BULK_RECORDS // BULK_BATCH):
            pipe = raw_client.pipeline(transaction=False)
            for _ in range(BULK_BATCH):
                pipe.hset(data.raw_key(str(uuid.uuid1())), mapping=template)
            pipe.execute()

    found_label = f"-> {matches}"
    return {
        op.key: op
        for op in (
            Operation("get", "get(id=...)", 1, r_get, w_get),
            Operation(
                "get_many",
                f"get_many({GET_MANY_BATCH} ids)",
                GET_MANY_BATCH,
                r_get_many,
                w_get_many,
            ),
            Operation("filter_eq", f"filter(house=...) {found_label}", 1, r_filter_eq, w_filter_eq),
            Operation(
                "filter_range",
                f"filter(age range) -> {min(RANGE_WIDTH, size)}",
                1,
                r_filter_range,
                w_filter_range,
            ),
            Operation("order_first", f'order_by("-age")[:{TOP}]', 1, r_order_first, w_order_first),
            Operation("count", "filter(house=...).count()", 1, r_count, w_count),
            Operation("save", "Model(...).save()", 1, r_save, w_save),
            Operation(
                "bulk_create",
                f"bulk_create({BULK_RECORDS:,}), batches of {BULK_BATCH}",
                BULK_RECORDS,
                r_bulk,
                w_bulk,
            ),
            Operation("save_indexed", "save() vs HSET+SADD+ZADD MULTI", 1, r_save, w_save_indexed),
        )
    }


def profile(size: int, ops: dict[str, Operation]) -> None:
    for key in ("get", "filter_eq", "filter_range", "order_first", "save"):
        calls = 300 if key in ("get", "save", "filter_eq") else 10
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(calls):
            ops[key].repocket(i)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
        print(
            f"\n--- cProfile of repocket's {ops[key].label} at N={size:,}, "
            f"{calls} calls ---\n{out.getvalue()}",
            file=sys.stderr,
        )


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def report(
    results: list[Result],
    datasets: list[Dataset],
    options: argparse.Namespace,
    env: list[tuple[str, str]],
    loads: tuple[str, str],
    elapsed: float,
) -> str:
    out = [f"{name + ':':<14}{value}" for name, value in env]
    out.append(
        f"{'load average:':<14}{loads[0]} at the start, {loads[1]} at the end (1, 5, 15 min)"
    )
    out += [
        "",
        f"Median of {options.repeats} samples of about {options.sample_seconds} s; "
        f"ratio = repocket's time / raw redis-py's time (1.00 = as fast).",
        "",
    ]
    order = {key: i for i, key in enumerate(READS + WRITES)}
    results = sorted(results, key=lambda r: (order[r.key], r.size))
    rows = []
    for r in results:
        spread = max(Result.spread(r.repocket), Result.spread(r.raw)) * 100
        rows.append(
            [
                r.label,
                f"{r.size:,}",
                f"{1 / r.repocket_seconds:,.0f}",
                f"{1 / r.raw_seconds:,.0f}",
                f"{r.ratio:.2f}",
                f"{spread:.0f}",
                f"{r.trips[0]} / {r.trips[1]}",
                f"{r.commands[0]:,} / {r.commands[1]:,}",
            ]
        )
    out.append(
        table(
            ["operation", "N", "repocket/s", "raw/s", "ratio", "+-%", "trips", "commands"],
            rows,
            "lrrrrrrr",
        )
    )
    out += [
        "",
        "'/s': records per second for get, get_many, save and bulk_create, queries per "
        "second otherwise.  '+-%': half the interquartile range of the samples, relative "
        "to the median (the larger of the two sides).  'trips', 'commands': round trips "
        "and redis commands (MULTI/EXEC included) of one call, repocket / raw redis-py.",
        "",
    ]
    out.append("Loading the N records (once, not repeated):")
    out.append("")
    out.append(
        table(
            ["N", "repocket s", "raw s", "repocket/s", "raw/s"],
            [
                [
                    f"{d.size:,}",
                    f"{d.load_seconds[0]:.1f}",
                    f"{d.load_seconds[1]:.1f}",
                    f"{d.size / d.load_seconds[0]:,.0f}",
                    f"{d.size / d.load_seconds[1]:,.0f}",
                ]
                for d in datasets
            ],
            "rrrrr",
        )
    )

    sizes = sorted({r.size for r in results})
    by = {(r.key, r.size): r for r in results}
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        out += [
            "",
            f"Query time at N={large:,} / time at N={small:,} (same number of matches):",
            "",
        ]
        rows = []
        for key in SCALING:
            a, b = by[(key, small)], by[(key, large)]
            rows.append(
                [
                    a.label.split(" ->")[0],
                    f"{a.repocket_seconds * 1e3:.2f}",
                    f"{b.repocket_seconds * 1e3:.2f}",
                    f"{b.repocket_seconds / a.repocket_seconds:.2f}",
                    f"{a.raw_seconds * 1e3:.2f}",
                    f"{b.raw_seconds * 1e3:.2f}",
                    f"{b.raw_seconds / a.raw_seconds:.2f}",
                ]
            )
        out.append(
            table(
                [
                    "query",
                    f"repocket ms N={small:,}",
                    f"N={large:,}",
                    "growth",
                    f"raw ms N={small:,}",
                    f"N={large:,}",
                    "growth",
                ],
                rows,
                "lrrrrrr",
            )
        )

    out += ["", "Targets:"]
    for key, limit in TARGET_RATIO.items():
        for size in sizes:
            r = by.get((key, size))
            if r is not None:
                verdict = "met" if r.ratio <= limit else "MISSED"
                out.append(
                    f"  {r.label:<30} N={size:<8,} {r.ratio:7.2f} x raw redis-py "
                    f"(target <= {limit}): {verdict}"
                )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        for key in ("filter_eq", "filter_range"):
            a, b = by[(key, small)], by[(key, large)]
            growth = b.repocket_seconds / a.repocket_seconds
            verdict = "met" if growth <= TARGET_GROWTH else "MISSED"
            out.append(
                f"  {a.label.split(' ->')[0]:<30} time at N={large:,} / N={small:,}: "
                f"{growth:.2f} (target <= {TARGET_GROWTH}): {verdict}"
            )
    out += ["", f"Total run time {elapsed:.0f} s."]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time repocket against raw redis-py on a redis-server."
    )
    parser.add_argument(
        "--url",
        help="use this server (redis://host:port/db) instead of "
        "starting one; only the benchmark's own keys are written and deleted",
    )
    parser.add_argument(
        "--raw-db",
        type=int,
        default=None,
        help="db for the raw redis-py data (default: 1 on the script's own "
        "server, the --url db otherwise; raw keys are prefixed either way)",
    )
    parser.add_argument(
        "--redis-server",
        help="redis-server binary to start "
        "(default: $REPOCKET_REDIS_SERVER, or redis-server on PATH)",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help="numbers of records (default: 1000 100000)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="samples per operation, side and size; the median is reported (default 11, --quick 3)",
    )
    parser.add_argument(
        "--sample-seconds",
        type=float,
        default=None,
        help="approximate length of one sample (default 0.2, --quick 0.05)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed calls before timing (default 20, --quick 5)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="N = 1,000 only, fewer and shorter samples: a smoke run",
    )
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print cProfile summaries of repocket's side at the largest N (to stderr)",
    )
    options = parser.parse_args(argv)
    if options.sizes is None:
        options.sizes = [1_000] if options.quick else [1_000, 100_000]
    options.sizes = sorted(set(options.sizes))
    if options.repeats is None:
        options.repeats = 3 if options.quick else 11
    if options.sample_seconds is None:
        options.sample_seconds = 0.05 if options.quick else 0.2
    if options.warmup is None:
        options.warmup = 5 if options.quick else 20
    if options.sizes[0] < PER_HOUSE + RANGE_WIDTH:
        parser.error(f"every size must be at least {PER_HOUSE + RANGE_WIDTH}")
    if options.repeats < 1 or options.sample_seconds <= 0 or options.warmup < 0:
        parser.error("--repeats and --sample-seconds must be positive, --warmup not negative")
    return options


def run(options: argparse.Namespace, url: str, raw_db: int) -> None:
    began = time.perf_counter()
    start_load = load_average()
    configure.from_url(url)
    repocket_client = configure.get_connection()
    raw_client = redis.Redis.from_url(with_db(url, raw_db), decode_responses=False)
    admins = (repocket_client, raw_client)
    try:
        env = environment(raw_client, repocket_client, raw_client, own_server=not options.url)
        for name, value in env:
            print(f"{name}: {value}", file=sys.stderr)
        clean(repocket_client, raw_client, options.sizes)
        datasets = []
        results: list[Result] = []
        try:
            for size in options.sizes:
                print(f"loading N={size:,} ...", file=sys.stderr)
                datasets.append(load(size, raw_client, options.seed))
                print(
                    f"  {datasets[-1].load_seconds[0]:.1f} s (repocket), "
                    f"{datasets[-1].load_seconds[1]:.1f} s (raw)",
                    file=sys.stderr,
                )
            ops = {d.size: operations(d, raw_client, options.seed) for d in datasets}
            for key in READS + WRITES:
                results += measure(key, {size: ops[size][key] for size in ops}, options, admins)
            if options.profile:
                profile(options.sizes[-1], ops[options.sizes[-1]])
        finally:
            if options.url:  # a server of our own is thrown away with its data
                clean(repocket_client, raw_client, options.sizes)
        print(
            report(
                results,
                datasets,
                options,
                env,
                (start_load, load_average()),
                time.perf_counter() - began,
            )
        )
    finally:
        raw_client.close()
        configure.reset()


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    if options.url:
        raw_db = options.raw_db if options.raw_db is not None else url_db(options.url)
        run(options, options.url, raw_db)
        return
    with own_server(options.redis_server) as url:
        run(options, url, options.raw_db if options.raw_db is not None else 1)


if __name__ == "__main__":
    main()
