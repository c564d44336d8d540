"""Concurrent writers in separate (forked) processes against a real redis-server.

Each child process forgets the connection it inherited (``configure.reset()``)
and opens its own (``configure.from_url(url)``), as a worker of a pre-forking
server would; all children wait on one event so that they write at the same
time.  The totals must be exact: an increment or a conditional save that was
lost, applied twice, or that left the index behind would show.

Every wait is bounded (:data:`WAIT`); a child that fails sends its traceback
back, and children still running when the test gives up are killed.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from repocket.backends.layout import record_patterns
from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.errors import ConflictError
from repocket.keys import STREAM_INFIX
from repocket.testing.query_models import Counter

from .servers import RedisServer

PROCESSES = 8
INCREMENTS = 300  # per process
CONDITIONAL_SAVES = 100  # per process
CREATES = 2_000  # per process
# A conditional save retried this often without succeeding is a livelock, not contention.
MAX_CONFLICTS_PER_SAVE = 10_000
WAIT = 120.0  # seconds: a bound on every wait, never a timing assertion

FORK = multiprocessing.get_context("fork")

Work = Callable[[int], Any]


@pytest.fixture(params=[1, 4], ids=["1 shard", "4 shards"])
def shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def url(redis_server: RedisServer) -> Iterator[str]:
    """The URL of the session's redis-server, emptied and configured here too."""
    yield from _configured(redis_server.url)


@pytest.fixture
def any_url(redis_server: RedisServer, shards: int) -> Iterator[str]:
    """Like ``url``, with 1 or 4 shards."""
    yield from _configured(
        redis_server.url if shards == 1 else f"{redis_server.url}?shards={shards}"
    )


def _configured(url: str) -> Iterator[str]:
    storage = RedisStorage.from_url(url)
    storage.clear()
    configure.use(storage)
    try:
        yield url
    finally:
        configure.reset()


def _child(url: str, work: Work, number: int, go: Any, results: Any) -> None:
    """Body of a child process: its own connection, wait for the start, work, report."""
    try:
        # the inherited client belongs to the parent; redis-py does not
        # close a parent's sockets from a child, it only forgets them
        configure.reset()
        configure.from_url(url)
        if not go.wait(WAIT):
            raise TimeoutError(f"child {number} was never told to start")
        results.put((number, None, work(number)))
    except BaseException:
        results.put((number, traceback.format_exc(), None))
    finally:
        configure.reset()


def run_processes(url: str, work: Work) -> list[Any]:
    """Run ``work(n)`` in :data:`PROCESSES` forked processes at once; return
    their results in process order, or fail with the first child's traceback."""
    results = FORK.Queue()
    go = FORK.Event()
    processes = [
        FORK.Process(target=_child, args=(url, work, number, go, results), daemon=True)
        for number in range(PROCESSES)
    ]
    try:
        for process in processes:
            process.start()
        go.set()
        deadline = time.monotonic() + WAIT
        reports: dict[int, Any] = {}
        while len(reports) < PROCESSES:
            try:
                number, error, result = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"only {len(reports)} of {PROCESSES} processes finished in {WAIT} s")
            if error is not None:
                pytest.fail(f"process {number} failed:\n{error}")
            reports[number] = result
        for process in processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            assert process.exitcode == 0, f"a child exited with {process.exitcode}"
        return [reports[number] for number in range(PROCESSES)]
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(timeout=WAIT)
        results.close()


def record_keys(client: redis.Redis) -> set[str]:
    """The record keys of ``Counter`` found by a raw SCAN (not through the index)."""
    found: set[str] = set()
    for pattern in record_patterns(Counter._collection):
        for key in client.scan_iter(match=pattern, count=1000):
            text = key.decode()
            if STREAM_INFIX not in text:
                found.add(text)
    return found


# -- increment() ---------------------------------------------------------------------


def test_concurrent_increments_are_all_counted(any_url: str) -> None:
    counter = Counter.create(name="visits")

    def work(number: int) -> None:
        mine = Counter.objects.get(id=counter.id)
        for _ in range(INCREMENTS):
            mine.increment("hits")

    run_processes(any_url, work)
    total = PROCESSES * INCREMENTS
    assert Counter.objects.get(id=counter.id).hits == total


def test_concurrent_increments_leave_the_index_right(any_url: str) -> None:
    counter = Counter.create(name="visits")
    other = Counter.create(name="untouched")

    def work(number: int) -> None:
        mine = Counter.objects.get(id=counter.id)
        for _ in range(INCREMENTS):
            mine.increment("hits")

    run_processes(any_url, work)
    total = PROCESSES * INCREMENTS
    assert [c.id for c in Counter.objects.filter(hits=total)] == [counter.id]
    assert [c.id for c in Counter.objects.filter(hits=0)] == [other.id]
    assert [c.id for c in Counter.objects.filter(hits__gt=1)] == [counter.id]
    assert Counter.objects.check().ok


# -- save(if_unchanged=True) -----------------------------------------------------------


def test_concurrent_conditional_saves_lose_no_update(url: str) -> None:
    counter = Counter.create(name="visits")

    def work(number: int) -> int:
        conflicts = 0
        for _ in range(CONDITIONAL_SAVES):
            for _attempt in range(MAX_CONFLICTS_PER_SAVE):
                mine = Counter.objects.get(id=counter.id)
                mine.hits += 1
                try:
                    mine.save(if_unchanged=True)
                except ConflictError:
                    conflicts += 1  # another process saved in between: reload, redo
                    continue
                break
            else:
                raise AssertionError(f"{MAX_CONFLICTS_PER_SAVE} conflicts in a row")
        return conflicts

    # (each process typically meets a few hundred conflicts on 2 cores)
    run_processes(url, work)
    stored = Counter.objects.get(id=counter.id)
    assert stored.hits == PROCESSES * CONDITIONAL_SAVES
    assert [c.id for c in Counter.objects.filter(hits=stored.hits)] == [counter.id]
    assert Counter.objects.check().ok


# -- create() --------------------------------------------------------------------------


def test_concurrent_creates_store_every_record_once(url: str) -> None:
    def work(number: int) -> list[str]:
        return [str(Counter.create(name=f"{number}-{i}").id) for i in range(CREATES)]

    created = [record_id for ids in run_processes(url, work) for record_id in ids]
    total = PROCESSES * CREATES
    assert len(set(created)) == total
    assert Counter.objects.count() == total
    storage = configure.storage()
    keys = record_keys(storage.native_client)
    assert len(keys) == total
    assert keys == {storage.record_key(Counter._collection, record_id) for record_id in created}
