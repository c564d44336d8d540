"""The async API against a real redis-server: round trips, concurrency,
cancellation, and sharing data with sync code.

* Each operation sends as many requests (and the same commands) from async
  code as from sync code: the async path runs the same model and backend
  code over ``redis.asyncio``.  Requests are counted as
  ``tests/roundtrips.py`` counts them, on ``redis.asyncio``'s connections.
* 200 tasks on one event loop, mixing creates, increments of shared
  counters, conditional saves retried on conflicts, deletes and queries,
  lose nothing.
* A task cancelled in the middle of ``asave()`` leaves the record whole or
  absent, and the instance can be saved again.
* Sync and async code see each other's writes (memory and redis), and the
  async API works from one event loop after another (``asyncio.run`` twice).

Everything is counted or compared, never timed; waits are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from unittest import mock

import pytest
import redis.asyncio.connection as async_connection

from repocket.async_storage import BridgedAsyncStorage
from repocket.asyncbridge import run_sync
from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.errors import ConflictError
from repocket.resultset import ResultSet
from repocket.storage import Storage
from repocket.testing.query_models import Counter, Wizard

from .models import Build, Project
from .roundtrips import RoundTrips, command_names, count_round_trips, passing
from .servers import RedisServer

T = TypeVar("T")

WAIT = 10.0  # seconds: a bound on waiting for a resumed server, never an assertion


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)``, releasing the loop's connections at the end
    (as an application's shutdown hook does)."""

    async def main() -> T:
        try:
            return await coroutine
        finally:
            await configure.aclose()

    return asyncio.run(main())


@pytest.fixture
def redis_storage(redis_server: RedisServer) -> Iterator[RedisStorage]:
    """The session's redis-server, empty, configured for every model."""
    storage = RedisStorage.from_url(redis_server.url)
    storage.clear()
    configure.use(storage)
    yield storage
    configure.reset()


# -- round trips -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def count_async_round_trips() -> Any:
    """Count the requests ``redis.asyncio`` connections send inside the block
    (the async twin of :func:`tests.roundtrips.count_round_trips`)."""
    storage = configure.async_storage()
    assert isinstance(storage, BridgedAsyncStorage)  # redis.asyncio, not a worker thread
    await storage.ping()  # connect (and handshake) first, so it is not counted
    counter = RoundTrips()
    connection = async_connection.AbstractConnection
    original = connection.send_packed_command

    async def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        counter.count += 1
        sent: list[bytes] = []
        try:
            return await original(self, passing(command, sent), check_health)
        finally:
            counter.names.extend(command_names(sent))

    with mock.patch.object(connection, "send_packed_command", counting):
        yield counter


@dataclass
class Operation:
    """One operation, done by sync and by async code on the same data."""

    #: makes the data the operation works on; returns what it needs
    setup: Callable[[], Any]
    sync: Callable[[Any], Any]
    run_async: Callable[[Any], Awaitable[Any]]


def _new_build() -> Build:
    return Build(project=Project.create(name="p"), stdout=b"x", stderr=b"y")


def _changed_wizard() -> Wizard:
    wizard = Wizard.create(name="Harry", house="Gryffindor", age=17, wand="holly")
    wizard.age = 18
    return wizard


def _build_with_pointer() -> str:
    return str(Build.create(project=Project.create(name="p"), stdout=b"out", stderr=b"err").id)


def _house_of_200() -> str:
    house = "Hufflepuff"
    Wizard.objects.bulk_create([Wizard(name=f"w{i}", house=house, age=i) for i in range(200)])
    return house


def _builds_of_5_projects() -> None:
    projects = [Project.create(name=f"p{i}") for i in range(5)]
    Build.objects.bulk_create([Build(project=projects[i % 5], stdout=b"x") for i in range(120)])


def _ids_of_30() -> list[str]:
    wizards = Wizard.objects.bulk_create([Wizard(name=f"w{i}", age=i) for i in range(30)])
    return [str(w.id) for w in wizards] + ["0190f6b2-7d3e-7a41-8b2c-5d6e7f8091a2"]  # one missing


async def _async_list(results: ResultSet[Any]) -> list[Any]:
    return [record async for record in results]


OPERATIONS = {
    "save of a new record": Operation(_new_build, lambda b: b.save(), lambda b: b.asave()),
    "save of a changed record": Operation(_changed_wizard, lambda w: w.save(), lambda w: w.asave()),
    "conditional save": Operation(
        _changed_wizard,
        lambda w: w.save(if_unchanged=True),
        lambda w: w.asave(if_unchanged=True),
    ),
    "get with streams and a pointer": Operation(
        _build_with_pointer,
        lambda i: Build.objects.get(id=i),  # (its pointer loaded with it)
        lambda i: Build.objects.aget(id=i),
    ),
    "filter of 200 records, iterated": Operation(
        _house_of_200,
        lambda h: list(Wizard.objects.filter(house=h).iterator()),
        lambda h: _async_list(Wizard.objects.filter(house=h)),
    ),
    "filter ordered by a range field, iterated": Operation(
        _house_of_200,
        lambda h: list(Wizard.objects.filter(house=h).order_by("-age").iterator()),
        lambda h: _async_list(Wizard.objects.filter(house=h).order_by("-age")),
    ),
    "records with pointers, iterated": Operation(
        _builds_of_5_projects,
        lambda _: [build.project for build in Build.objects.all().iterator()],
        lambda _: _async_list(Build.objects.all()),
    ),
    "count of a filter": Operation(
        _house_of_200,
        lambda h: Wizard.objects.filter(house=h).count(),
        lambda h: Wizard.objects.filter(house=h).acount(),
    ),
    "count of a model": Operation(
        lambda: None, lambda _: Wizard.objects.count(), lambda _: Wizard.objects.acount()
    ),
    "exists": Operation(
        _house_of_200,
        lambda h: Wizard.objects.filter(house=h).exists(),
        lambda h: Wizard.objects.filter(house=h).aexists(),
    ),
    "first": Operation(
        _house_of_200,
        lambda h: Wizard.objects.filter(house=h).order_by("age").first(),
        lambda h: Wizard.objects.filter(house=h).order_by("age").afirst(),
    ),
    "slice": Operation(
        _house_of_200,
        lambda h: Wizard.objects.filter(house=h).order_by("age")[20:40],
        lambda h: Wizard.objects.filter(house=h).order_by("age").aslice(20, 40),
    ),
    "get_many": Operation(
        _ids_of_30,
        lambda ids: Wizard.objects.get_many(ids),
        lambda ids: Wizard.objects.aget_many(ids),
    ),
    "bulk_create": Operation(
        lambda: [Wizard(name=f"w{i}", age=i, wand=f"wand {i}") for i in range(25)],
        lambda ws: Wizard.objects.bulk_create(ws),
        lambda ws: Wizard.objects.abulk_create(ws),
    ),
    "delete": Operation(
        lambda: Build.create(stdout=b"x"), lambda b: b.delete(), lambda b: b.adelete()
    ),
    "delete of a query": Operation(
        _house_of_200,
        lambda h: Wizard.objects.filter(house=h, age__lt=20).delete(),
        lambda h: Wizard.objects.filter(house=h, age__lt=20).adelete(),
    ),
    "increment": Operation(
        lambda: Counter.create(name="visits"),
        lambda c: c.increment("hits", 2),
        lambda c: c.aincrement("hits", 2),
    ),
    "append": Operation(
        lambda: Build.create(stdout=b"x"),
        lambda b: b.append_stdout(b"y"),
        lambda b: b.aappend_stdout(b"y"),
    ),
}


@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_async_operations_send_the_requests_sync_ones_do(
    redis_storage: RedisStorage, operation: Operation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # several batches where a query iterates
    monkeypatch.setattr(ResultSet, "batch_size", 50)
    state = operation.setup()
    with count_round_trips(redis_storage) as sync_trips:
        sync_result = operation.sync(state)

    async def measure() -> tuple[RoundTrips, Any]:
        async with count_async_round_trips() as trips:
            result = await operation.run_async(async_state)
        return trips, result

    redis_storage.clear()
    async_state = operation.setup()
    async_trips, async_result = run(measure())
    assert sync_trips.count > 0
    assert (async_trips.count, async_trips.names) == (sync_trips.count, sync_trips.names)
    if isinstance(sync_result, list):
        assert len(async_result) == len(sync_result)


# -- 200 concurrent tasks ----------------------------------------------------------------

TASKS = 200
HOUSES = ("Gryffindor", "Hufflepuff", "Ravenclaw", "Slytherin")
COUNTERS = 5
MAX_ATTEMPTS = 1000  # a bound on a conditional save's retries, never reached in practice


def test_200_concurrent_tasks_lose_nothing(storage: Storage) -> None:
    # (the conftest's storage fixture: memory, then the session's redis-server)
    async def main() -> dict[str, Any]:
        counters = [await Counter.objects.acreate(name=f"c{i}") for i in range(COUNTERS)]
        ledger = await Wizard.objects.acreate(name="ledger", house="Bank", age=0)
        conflicts = 0
        seen_in_queries: list[Wizard] = []

        async def conditional_add(record_id: Any) -> None:
            nonlocal conflicts
            for _ in range(MAX_ATTEMPTS):
                mine = await Wizard.objects.aget(id=record_id)
                mine.age = (mine.age or 0) + 1
                try:
                    await mine.asave(if_unchanged=True)
                    return
                except ConflictError:
                    conflicts += 1
            raise AssertionError("a conditional save never went through")

        async def task(i: int) -> None:
            house = HOUSES[i % len(HOUSES)]
            wizard = await Wizard.objects.acreate(name=f"w{i}", house=house, age=i, wand=f"wand{i}")
            await counters[i % COUNTERS].aincrement("hits")
            kind = i % 4
            if kind == 0:
                await wizard.adelete()
            elif kind == 1:
                await conditional_add(ledger.id)
            elif kind == 2:
                wizard.house = "Moved"
                await wizard.asave()
            else:
                seen_in_queries.extend([w async for w in Wizard.objects.filter(house=house)])
                assert await Wizard.objects.filter(house=house).aexists()
                await Wizard.objects.filter(house=house).acount()

        await asyncio.gather(*(task(i) for i in range(TASKS)))
        return {"conflicts": conflicts, "seen": seen_in_queries, "ledger": ledger.id}

    result = run(main())
    # every query result was a match when read
    assert all(w.house in HOUSES for w in result["seen"])
    deleted = TASKS // 4
    moved = TASKS // 4
    # created, minus deleted, plus the ledger
    assert Wizard.objects.count() == TASKS - deleted + 1
    assert Wizard.objects.filter(house="Moved").count() == moved
    assert Wizard.objects.get(id=result["ledger"]).age == TASKS // 4
    for i, house in enumerate(HOUSES):
        # houses whose tasks did not move or delete their record
        kept = [n for n in range(TASKS) if n % len(HOUSES) == i and n % 4 in (1, 3)]
        assert sorted(w.name for w in Wizard.objects.filter(house=house)) == sorted(
            f"w{n}" for n in kept
        )
    assert sorted(c.hits for c in Counter.objects.all()) == [TASKS // COUNTERS] * COUNTERS
    assert sum(c.hits for c in Counter.objects.all()) == TASKS
    assert Wizard.objects.check().ok
    assert Counter.objects.check().ok


# -- cancellation ------------------------------------------------------------------------


@contextlib.contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """The server process stopped (SIGSTOP) inside the block, resumed after it."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def wait_for_clients(storage: RedisStorage, at_most: int, what: str) -> None:
    """Wait (bounded) until the server has at most ``at_most`` clients."""
    client = storage.native_client
    deadline = time.monotonic() + WAIT
    while len(client.client_list()) > at_most:
        assert time.monotonic() < deadline, f"{what} stayed open"
        time.sleep(0.01)


def wait_for_one_client(storage: RedisStorage) -> None:
    """Wait (bounded) until the server has served and dropped every client
    but the sync one asking: what a cancelled task sent has then run, or
    never will."""
    wait_for_clients(storage, 1, "the cancelled task's connection")


async def cancel_while_sent(save: Awaitable[Any], server: RedisServer) -> None:
    """Start ``save`` against the frozen server, cancel it once its request
    is sent, and close the loop's connections."""
    sent = asyncio.Event()
    original = async_connection.AbstractConnection.send_packed_command

    async def sending(self: Any, command: Any, check_health: bool = True) -> Any:
        await original(self, command, check_health)
        sent.set()

    await configure.async_storage().ping()  # connected before the server stops
    with (
        mock.patch.object(async_connection.AbstractConnection, "send_packed_command", sending),
        frozen(server),
    ):
        task = asyncio.ensure_future(save)
        await asyncio.wait_for(sent.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await configure.aclose()


@pytest.fixture
def frozen_storage(server: RedisServer) -> Iterator[RedisStorage]:
    """A redis-server of this test's own (it is frozen), configured."""
    storage = RedisStorage.from_url(server.url)
    storage.load_scripts()  # so that the save is one EVALSHA, as in production
    configure.use(storage)
    yield storage
    configure.reset()


def wizard_fields(wizard: Wizard) -> dict[str, Any]:
    return {name: getattr(wizard, name) for name in Wizard._meta.fields}


def test_a_new_record_whose_asave_was_cancelled_is_whole_or_absent(
    frozen_storage: RedisStorage, server: RedisServer
) -> None:
    wizard = Wizard(name="Harry", house="Gryffindor", age=17, height=1.7, wand="holly")
    run(cancel_while_sent(wizard.asave(), server))
    wait_for_one_client(frozen_storage)
    stored = Wizard.objects.all()[:]
    assert len(stored) <= 1
    if stored:
        # the whole write, under the id the instance drew for it
        assert wizard_fields(stored[0]) == wizard_fields(wizard)
    assert Wizard.objects.check().ok
    # the same instance saves again (the retry of a create whose reply was
    # lost, as after a timeout), then saves a change: one record, whole
    run(wizard.asave())
    wizard.age = 18
    run(wizard.asave())
    (saved,) = Wizard.objects.all()[:]
    assert saved == wizard and saved.age == 18
    assert Wizard.objects.filter(wand="holly").count() == 1
    assert Wizard.objects.check().ok


def test_an_update_whose_asave_was_cancelled_is_the_old_or_the_new_version(
    frozen_storage: RedisStorage, server: RedisServer
) -> None:
    wizard = Wizard.create(name="Harry", house="Gryffindor", age=17, wand="holly")
    old = wizard_fields(wizard)
    wizard.house, wizard.age, wizard.wand = "Slytherin", 18, "elder"
    new = wizard_fields(wizard)
    run(cancel_while_sent(wizard.asave(), server))
    wait_for_one_client(frozen_storage)
    stored = wizard_fields(Wizard.objects.get(id=wizard.id))
    assert stored in (old, new)
    assert Wizard.objects.check().ok
    assert Wizard.objects.filter(house=stored["house"]).count() == 1
    assert Wizard.objects.filter(wand=stored["wand"]).count() == 1
    # a later asave of the same instance goes through
    wizard.age = 19
    run(wizard.asave())
    assert wizard_fields(Wizard.objects.get(id=wizard.id)) == new | {"age": 19}
    assert Wizard.objects.filter(wand="holly").count() == 0
    assert Wizard.objects.check().ok


# -- sync and async together ---------------------------------------------------------------


def test_sync_and_async_code_see_each_others_writes(storage: Storage) -> None:
    # (the conftest's storage fixture: memory, then redis)
    made_sync = Wizard.create(name="Harry", house="Gryffindor", age=17)
    build = Build.create(stdout=b"a")

    async def from_async() -> Any:
        loaded = await Wizard.objects.aget(id=made_sync.id)
        assert (loaded.name, loaded.age) == ("Harry", 17)
        assert [w.id async for w in Wizard.objects.filter(house="Gryffindor")] == [made_sync.id]
        await loaded.aincrement("age", 2)
        await build.aappend_stdout(b"b")
        return await Wizard.objects.acreate(name="Ron", house="Gryffindor", age=17)

    made_async = run(from_async())
    assert Wizard.objects.get(id=made_sync.id).age == 19
    assert Wizard.objects.get(id=made_async.id).name == "Ron"
    assert Wizard.objects.filter(house="Gryffindor").count() == 2
    assert Build.objects.get(id=build.id).stdout == b"ab"
    made_sync.delete()

    async def after() -> tuple[int, bool]:
        return await Wizard.objects.acount(), await Wizard.objects.filter(name="Harry").aexists()

    assert run(after()) == (1, False)


def test_the_async_api_works_from_one_event_loop_after_another(storage: Storage) -> None:
    first = run(Wizard.objects.acreate(name="Harry", age=17))
    second = run(Wizard.objects.aget(id=first.id))
    assert second == first
    # a loop that ended without aclose() leaves nothing the next one uses
    # (its connections are dropped with it, which Python reports)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.run(Wizard.objects.acreate(name="Ron", age=17))
        gc.collect()
    assert run(Wizard.objects.filter(age=17).acount()) == 2
    assert Wizard.objects.count() == 2


def test_an_async_bulk_write_is_packed_before_its_write_timeout_starts(
    redis_storage: RedisStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sync code writes a bulk request chunk by chunk as it packs them; a
    # redis.asyncio connection writes what it is given under its socket
    # timeout, so it is given the request packed whole, as a list
    import repocket.backends.redis as redis_backend

    monkeypatch.setattr(redis_backend, "SAVE_BATCH", 4)
    given: list[Any] = []
    connection = async_connection.AbstractConnection
    original = connection.send_packed_command

    async def sending(self: Any, command: Any, check_health: bool = True) -> Any:
        given.append(command)
        return await original(self, command, check_health)

    redis_storage.load_scripts()  # (so that the one request below is the batch)

    async def main() -> None:
        await configure.async_storage().ping()
        given.clear()
        with mock.patch.object(connection, "send_packed_command", sending):
            await Wizard.objects.abulk_create(
                [Wizard(name=f"w{i}", age=i) for i in range(10)], batch_size=500
            )

    run(main())
    assert len(given) == 1 and isinstance(given[0], list)
    assert command_names(given[0]) == ["EVALSHA"] * 3
    assert Wizard.objects.count() == 10


def test_aclose_closes_every_connection_the_loop_opened(redis_storage: RedisStorage) -> None:
    Wizard.objects.create(name="Harry", age=17)
    # (the session's server: other tests' clients may still be connected)
    before = len(redis_storage.native_client.client_list())

    async def main() -> int:
        held = configure.async_storage()  # kept: its connections are not collected
        counts = await asyncio.gather(*(Wizard.objects.filter(age=17).acount() for _ in range(20)))
        opened = len(redis_storage.native_client.client_list()) - before
        await configure.aclose()
        # (blocks the loop: nothing else runs)
        wait_for_clients(redis_storage, before, "a connection of the closed loop")
        assert held is not None and counts == [1] * 20
        return opened

    assert asyncio.run(main()) > 1


def test_a_write_after_the_server_closed_an_idle_connection_succeeds(
    redis_storage: RedisStorage,
) -> None:
    # as in sync code: the pool replaces the closed connection before the
    # write is sent (a write is never resent, so it must not be sent on it)
    wizard = Wizard.objects.create(name="Harry", age=17)
    client = redis_storage.native_client
    sync_clients = {c["id"] for c in client.client_list()}

    async def main() -> None:
        await Wizard.objects.aget(id=wizard.id)  # leaves an idle async connection
        pool = configure.async_storage().storage.native_client._target.connection_pool
        (idle,) = pool._available_connections
        for found in client.client_list():
            if found["id"] not in sync_clients:
                client.client_kill_filter(_id=found["id"])
        deadline = time.monotonic() + WAIT
        while not await idle.can_read():  # the loop has seen the server close it
            assert time.monotonic() < deadline, "the closed connection was never noticed"
            await asyncio.sleep(0.01)
        wizard.age = 18
        await wizard.asave()

    run(main())
    assert Wizard.objects.get(id=wizard.id).age == 18


# -- stopping early --------------------------------------------------------------------------

QUERIES = {
    "by a set index": lambda: Wizard.objects.filter(house="Gryffindor"),
    "ordered by a range index": lambda: Wizard.objects.filter(house="Gryffindor").order_by("-age"),
    "by a range": lambda: Wizard.objects.filter(age__gte=3),
}


@pytest.mark.parametrize("query", QUERIES.values(), ids=QUERIES.keys())
def test_a_query_stopped_early_from_async_code_releases_its_snapshot(
    redis_storage: RedisStorage,
    query: Callable[[], ResultSet[Wizard]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A result larger than a batch is read from a server-side snapshot of its
    # ids; closing the iterator early removes it at once, through the bridge
    # (not outside it, where nothing can be awaited).
    Wizard.objects.bulk_create(
        [Wizard(name=f"w{i}", house="Gryffindor", age=i) for i in range(2 * ResultSet.batch_size)]
    )
    snapshots = redis_storage.native_client.keys
    unraisable: list[Any] = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)

    def first_of(results: ResultSet[Wizard]) -> Wizard:
        records: Any = results.iterator()  # (a generator: it has close())
        try:
            first: Wizard = next(records)
            assert snapshots("*tmp*") != []  # (a blocking read: the test's own check)
            return first
        finally:
            records.close()

    async def main() -> Wizard:
        return await run_sync(first_of, query())

    first = run(main())
    gc.collect()
    assert first.house == "Gryffindor"
    assert snapshots("*tmp*") == []
    assert unraisable == []
