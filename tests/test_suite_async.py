"""The model-level conformance suite run through the async API, on memory,
redis (the session's real redis-server) and the SQLite plugin.

The suite is written against the sync API.  Here every public sync entry
point that touches storage (each operation of a record, a manager or a
result set that has an async twin -- ``save()``, ``delete()``,
``increment()``, ``get()``, ``count()``, ``update()``... -- and
``create()``, ``append_<stream>()``, iteration, ``len()`` and indexing) is
replaced, while a test runs, by a call of its async twin (``asave()``,
``aget()``, ``async for``...) on one event loop running in a background
thread for the session, and waits for its result.
Inside the async twin the model layer calls the same entry points again;
those run as they are (they are inside the bridge, see
:func:`repocket.asyncbridge.in_bridge`).  So each test exercises the async
API end to end: the greenlet bridge, the :class:`AwaitingStorage`, and the
backend's :class:`AsyncStorage` (native over ``redis.asyncio`` / fakeredis's
async client, or a worker thread for SQLite).

Each test asserts that it went through that path: an async twin was called
and storage was reached through the awaiting storage, of the kind the
backend should give.  The tests that replace storage methods to simulate
lost replies are given the storage object the loop's async API calls
(:data:`LOOP_STORAGE`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import FunctionType
from typing import Any, TypeVar

import pytest

import repocket.async_storage
from repocket.async_storage import (
    ASYNC_CALLS,
    ASYNC_ITERATORS,
    AsyncStorage,
    AwaitingStorage,
    BridgedAsyncStorage,
    ThreadedAsyncStorage,
)
from repocket.asyncbridge import await_only, in_bridge, run_sync
from repocket.backends.memory import MemoryStorage
from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.manager import Manager
from repocket.model import ActiveRecord
from repocket.resultset import ResultSet
from repocket.storage import Storage
from repocket.testing.suite import ConformanceSuite, ProtocolConformance

from .servers import RedisServer
from .test_suite_sqlite import sqlite_backend

T = TypeVar("T")

# a bound on any one wait for the loop, never a timing assertion
WAIT = 60.0

#: Tests of the suite that simulate a lost reply by replacing ``save_record``
#: / ``save_records`` on the storage they are given.  On redis and memory the
#: async API calls a copy of the configured storage made for the event loop
#: (over the async client), so these tests are given that copy; on SQLite
#: (calls run in a worker thread on the object itself) nothing changes.
LOOP_STORAGE = {
    "test_a_create_that_failed_after_sending_keeps_its_id_and_stamps",
    "test_a_create_retried_after_a_lost_reply_is_stored_once",
    "test_a_bulk_create_retried_after_a_lost_reply_stores_each_record_once",
    "test_a_create_retried_after_a_lost_request_is_stored_once",
}


async def _loop_storage() -> Storage:
    """The storage object the running loop's async API calls."""
    async_storage = configure.async_storage()
    assert isinstance(async_storage, BridgedAsyncStorage)
    return async_storage.storage


class EventLoopThread:
    """One event loop, run by a background thread, for the whole session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="async-api", daemon=True)
        self.thread.start()

    def run(self, awaitable: Awaitable[T]) -> T:
        """Wait for ``awaitable`` run on the loop; its error is raised here."""

        async def wrapped() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(WAIT)

    def called_from_plain_code(self) -> bool:
        """Whether the caller is test code, not the model layer run for the
        async API (inside the bridge, or by the async API's own code on the
        loop, as aiterator() making its sync iterator)."""
        return not in_bridge() and threading.current_thread() is not self.thread

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


@pytest.fixture(scope="session")
def event_loop_thread() -> Iterator[EventLoopThread]:
    runner = EventLoopThread()
    yield runner
    runner.stop()


class Routing:
    """Counts of what a test sent through the async API."""

    def __init__(self) -> None:
        #: async twins called from the test's code
        self.async_calls = 0
        #: storage calls awaited through the AwaitingStorage
        self.awaited = 0
        #: storage taken by the model layer for plain sync code (the suite's
        #: helpers that plant data, lazy pointer reads, check())
        self.plain_storage = 0
        #: storage taken by the model layer run for the async API
        self.bridged_storage = 0


def _route(
    routing: Routing,
    runner: EventLoopThread,
    original: Callable[..., Any],
    twin: Callable[..., Awaitable[Any]],
) -> Callable[..., Any]:
    """``original``, made to run ``twin`` on the loop when called from plain
    code, and itself when called by the model layer inside the bridge."""

    @functools.wraps(original)
    def routed(*args: Any, **kwargs: Any) -> Any:
        if not runner.called_from_plain_code():
            return original(*args, **kwargs)
        routing.async_calls += 1
        return runner.run(twin(*args, **kwargs))

    return routed


def _sync_iteration(
    routing: Routing, runner: EventLoopThread, make: Callable[[], AsyncIterator[T]]
) -> Iterator[T]:
    """A lazy sync iterator over an async one, advanced on the loop one item
    at a time (so laziness is that of the async iterator)."""
    routing.async_calls += 1
    iterator = make()
    try:
        while True:
            try:
                item = runner.run(iterator.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            runner.run(aclose())


def _routed_iteration(
    routing: Routing,
    runner: EventLoopThread,
    original: Callable[..., Iterator[Any]],
    make: Callable[..., AsyncIterator[Any]],
) -> Callable[..., Iterator[Any]]:
    @functools.wraps(original)
    def routed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        if not runner.called_from_plain_code():
            return original(*args, **kwargs)
        return _sync_iteration(routing, runner, lambda: make(*args, **kwargs))

    return routed


async def _bridged(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` through the bridge: the async path of an entry
    point that has no named async twin (``len()``, indexing by position)."""
    return await run_sync(function, *args)


def _getitem_twin(original: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    def twin(results: ResultSet[Any], index: Any) -> Awaitable[Any]:
        if isinstance(index, slice) and index.step is None:
            return results.aslice(index.start, index.stop)
        return _bridged(original, results, index)

    return twin


def twinned(cls: type) -> list[str]:
    """The public methods of ``cls`` that have an async twin ``a<name>``."""
    return [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_")
        and callable(value)
        and asyncio.iscoroutinefunction(getattr(cls, f"a{name}", None))
    ]


def _twin(name: str) -> Callable[..., Awaitable[Any]]:
    """The call of ``obj.a<name>(...)`` for ``obj.<name>(...)``."""

    def twin(obj: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        awaitable: Awaitable[Any] = getattr(obj, f"a{name}")(*args, **kwargs)
        return awaitable

    return twin


def expected_async_storage(storage: Storage) -> type[AsyncStorage]:
    """The kind of AsyncStorage the backend should give async code."""
    if isinstance(storage, RedisStorage):  # MemoryStorage included
        return BridgedAsyncStorage
    return ThreadedAsyncStorage


def test_the_async_twins_cover_the_record_manager_and_result_set_operations() -> None:
    # (a twin renamed or dropped would leave its operation sync in the suite)
    assert {"save", "delete", "increment"} <= set(twinned(ActiveRecord))
    assert {"get", "get_many", "create", "bulk_create", "count", "exists", "first"} <= set(
        twinned(Manager)
    )
    assert {"count", "exists", "first", "delete"} <= set(twinned(ResultSet))


#: Storage members that are not I/O: the async side keeps them plain.
NOT_IO = {"from_url", "native_client", "close", "record_key", "stream_key", "describe"}


def test_the_async_storage_mirrors_every_storage_method_and_flag() -> None:
    # a method added to the Storage protocol and not to the async side
    # would be missing (AttributeError) when the model layer runs for async code
    methods = {
        name
        for name, value in vars(Storage).items()
        if not name.startswith("_") and isinstance(value, (FunctionType, classmethod, property))
    }
    flags = {name for name, value in vars(Storage).items() if isinstance(value, bool)}
    assert methods - NOT_IO == set(ASYNC_CALLS) | set(ASYNC_ITERATORS)
    for flag in flags:
        assert hasattr(AsyncStorage, flag)
        assert hasattr(
            AwaitingStorage(ThreadedAsyncStorage(MemoryStorage()), MemoryStorage()), flag
        )


#: Every part of the conformance suite but the Storage protocol's (which
#: calls storage methods directly, with no model layer to route).
MODEL_LEVEL_PARTS = tuple(
    part for part in ConformanceSuite.__bases__ if part is not ProtocolConformance
)


class AsyncAPISuite(*MODEL_LEVEL_PARTS):  # type: ignore[misc]
    """The model-level conformance tests, through the async API."""

    @pytest.fixture(autouse=True)
    def through_the_async_api(
        self,
        request: pytest.FixtureRequest,
        storage: Storage,
        event_loop_thread: EventLoopThread,
    ) -> Iterator[Routing]:
        name = request.node.originalname
        if name in LOOP_STORAGE and expected_async_storage(storage) is BridgedAsyncStorage:
            # the test replaces storage methods: it is given the storage
            # object the async API calls on the loop (the backend's copy
            # over the async client), so that it replaces those
            request.node.funcargs["storage"] = event_loop_thread.run(_loop_storage())
        routing = Routing()
        runner = event_loop_thread
        # not the test's monkeypatch: a test calling its undo() must keep these
        with pytest.MonkeyPatch.context() as monkeypatch:
            yield from self._routed(request, storage, runner, routing, monkeypatch)

    def _routed(
        self,
        request: pytest.FixtureRequest,
        storage: Storage,
        runner: EventLoopThread,
        routing: Routing,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[Routing]:
        name = request.node.originalname

        def patch(owner: type, attribute: str, twin: Callable[..., Awaitable[Any]]) -> None:
            original = getattr(owner, attribute)
            monkeypatch.setattr(owner, attribute, _route(routing, runner, original, twin))

        # records, managers and result sets: each operation with an async
        # twin (save -> asave, get -> aget, count -> acount, ...)
        for owner in (ActiveRecord, Manager, ResultSet):
            for attribute in twinned(owner):
                patch(owner, attribute, _twin(attribute))
        create = ActiveRecord.__dict__["create"].__func__
        monkeypatch.setattr(
            ActiveRecord,
            "create",
            classmethod(_route(routing, runner, create, lambda cls, **k: cls.acreate(**k))),
        )
        # append_<name>() of every model (those a test defines too) calls
        # _append_to_stream(); from plain code it is sent to aappend_<name>()
        patch(
            ActiveRecord,
            "_append_to_stream",
            lambda record, name, data: getattr(record, f"aappend_{name}")(data),
        )
        patch(ResultSet, "__len__", functools.partial(_bridged, ResultSet.__len__))
        patch(ResultSet, "__getitem__", _getitem_twin(ResultSet.__getitem__))
        monkeypatch.setattr(
            ResultSet,
            "__iter__",
            _routed_iteration(routing, runner, ResultSet.__iter__, lambda rs: rs.__aiter__()),
        )
        monkeypatch.setattr(
            ResultSet,
            "iterator",
            _routed_iteration(
                routing, runner, ResultSet.iterator, lambda rs, *a, **k: rs.aiterator(*a, **k)
            ),
        )

        # every storage call the model layer makes for async code is awaited here
        def counted(awaitable: Awaitable[T]) -> T:
            routing.awaited += 1
            return await_only(awaitable)

        monkeypatch.setattr(repocket.async_storage, "await_only", counted)
        configured = configure.storage

        def storage_in_use() -> Storage:
            if runner.called_from_plain_code():
                routing.plain_storage += 1
            elif in_bridge():
                routing.bridged_storage += 1
            return configured()

        monkeypatch.setattr(configure, "storage", storage_in_use)

        yield routing

        # the async storage the loop used serves the test's storage, and is
        # the kind the backend should give
        found = configure._async.get(runner.loop)
        if routing.awaited:
            assert found is not None and found[0] is storage
            assert isinstance(found[1].async_storage, expected_async_storage(storage))
        # a test reaching storage through the model layer used the async API
        # (tests of a model's definition alone reach none) ...
        assert routing.async_calls or not routing.plain_storage, f"{name} ran sync only"
        # ... and the model layer run for it awaited its storage calls (a
        # call refused before any I/O, such as get() without lookups, has none)
        assert routing.awaited or not routing.bridged_storage, f"{name} awaited no storage"
        # release the loop's connections before the storage is closed
        runner.run(configure.aclose())


class TestAsyncAPIOnMemory(AsyncAPISuite):
    def make_storage(self) -> Storage:
        return MemoryStorage()


class TestAsyncAPIOnRedis(AsyncAPISuite):
    def make_storage(self) -> Storage:
        server: RedisServer = self.request.getfixturevalue("redis_server")
        return RedisStorage.from_url(server.url)


class TestAsyncAPIOnSQLite(AsyncAPISuite):
    def make_storage(self) -> Storage:
        path = self.request.getfixturevalue("tmp_path") / "conformance.db"
        return sqlite_backend().from_url(f"sqlite:///{path}")
