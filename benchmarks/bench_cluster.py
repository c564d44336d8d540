#!/usr/bin/env python
"""What scatter-gather costs: repocket on a 3-master Redis Cluster against
repocket on one redis-server, operation by operation.

Usage::

    python benchmarks/bench_cluster.py              # N = 5,000 records, 3 rounds
    python benchmarks/bench_cluster.py --quick      # N = 500, 1 round: a smoke run
    python benchmarks/bench_cluster.py --records 20000 --repeats 5 --shards 64

The script starts its own servers on free loopback ports (one redis-server,
and three cluster-enabled ones joined with ``redis-cli --cluster create``;
the same helpers as the tests, ``tests/servers.py`` and ``tests/cluster.py``)
and stops them at the end.  Both run on this machine, so a round trip costs
what loopback costs: on a real network the cluster's extra round trips (a
unique claim, a node per query) weigh more, its spread over machines helps.

Data: N ``Person`` records (``name``, ``house`` indexed for equality, ``age``
for ranges and order).  Houses hold 200 people each, so ``filter(house=h)``
returns 200 rows.  Each figure is the median over ``--repeats`` rounds of
operations per second; the ratio is cluster over single server (1.00 = as
fast).  Memory per record is ``used_memory`` after the load minus before,
over N (summed over the masters for the cluster).  Nothing asserts on
timings.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import redis  # noqa: E402

from repocket import ActiveRecord, attributes  # noqa: E402
from repocket.connections import configure  # noqa: E402
from tests.cluster import start_redis_cluster  # noqa: E402
from tests.servers import start_redis_server  # noqa: E402

HOUSE_SIZE = 200


class Person(ActiveRecord):
    """The benchmark's model."""

    name = attributes.Unicode()
    house = attributes.Unicode()
    age = attributes.Integer()


def used_memory(ports: list[int]) -> int:
    total = 0
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port)
        total += int(client.info("memory")["used_memory"])
        client.close()
    return total


def rate(operation: Callable[[], Any], seconds: float) -> float:
    """Operations per second of ``operation``, run for about ``seconds``."""
    count, start = 0, time.perf_counter()
    while True:
        operation()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def measure(
    url: str, ports: list[int], records: int, repeats: int, seconds: float
) -> dict[str, float]:
    storage = configure.from_url(url)
    storage.clear()
    houses = max(1, records // HOUSE_SIZE)
    before = used_memory(ports)
    people = [
        Person(name=f"person {n}", house=f"house {n % houses}", age=n % 90) for n in range(records)
    ]
    Person.objects.bulk_create(people)
    figures: dict[str, list[float]] = {}
    figures["memory per record (bytes)"] = [(used_memory(ports) - before) / records]
    ids = [person.id for person in people]
    pick = random.Random(7)
    for _ in range(repeats):
        for name, operation in {
            "save": lambda: Person(name="new", house="house 0", age=1).save(),
            "get": lambda: Person.objects.get(id=pick.choice(ids)),
            "filter (200 rows)": lambda: list(
                Person.objects.filter(house=f"house {pick.randrange(houses)}")
            ),
            "order_by('-age')[:10]": lambda: list(Person.objects.all().order_by("-age")[:10]),
            "count": lambda: Person.objects.filter(house="house 1").count(),
        }.items():
            figures.setdefault(name, []).append(rate(operation, seconds))
    storage.clear()
    configure.reset()
    return {name: statistics.median(values) for name, values in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="per sample")
    parser.add_argument("--shards", type=int, default=64, help="on the cluster")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.records, args.repeats, args.seconds = 500, 1, 0.2
    server = start_redis_server()
    cluster = start_redis_cluster()
    try:
        single = measure(server.url, [server.port], args.records, args.repeats, args.seconds)
        url = f"{cluster.url}?shards={args.shards}"
        spread = measure(url, cluster.ports, args.records, args.repeats, args.seconds)
    finally:
        cluster.stop()
        server.stop()
    print(f"N = {args.records} records; cluster: 3 masters, {args.shards} shards per model")
    print(f"{'operation':<28}{'one server':>14}{'cluster':>14}{'ratio':>8}")
    for name, value in single.items():
        other = spread[name]
        print(f"{name:<28}{value:>14.1f}{other:>14.1f}{other / value:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
