"""Timeouts and retries against a redis-server that stops answering (SIGSTOP).

docs/reliability.rst, "Timeouts and retries": every call fails with
StorageConnectionError within a bound computed from the timeouts and the
retries; reads are resent, writes never (a write that timed out may have
been applied); the same storage works again once the server is resumed
(SIGCONT), without being configured again.

Each test freezes a redis-server of its own (never the session's), which is
always resumed and stopped afterwards.  The timeouts are short so that the
file runs in seconds; the elapsed-time assertions are generous bounds on a
failure, never performance measurements.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from repocket.backends import redis as redis_backend
from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.errors import StorageConnectionError
from repocket.testing.models import Everything, User

from .servers import STARTUP_TIMEOUT, RedisServer

TIMEOUT = 0.5  # seconds: both the connect and the socket timeout of the tests' client
WAIT = 10.0  # seconds: a bound on waiting for a resumed server, never an assertion
DOCS = Path(__file__).resolve().parent.parent / "docs" / "reliability.rst"


def worst_case(connect: float, socket: float, resends: int) -> float:
    """The documented bound on a call against a server that does not answer:
    each attempt waits at most for a connection and a reply, and the backoff
    before the n-th resend is at most min(cap, base * 2**n)."""
    backoff = sum(
        min(redis_backend.RETRY_BACKOFF_CAP_S, redis_backend.RETRY_BACKOFF_BASE_S * float(2**n))
        for n in range(1, resends + 1)
    )
    return (resends + 1) * (connect + socket) + backoff


READ_BOUND = 3 * worst_case(TIMEOUT, TIMEOUT, redis_backend.READ_RETRIES)
WRITE_BOUND = 3 * worst_case(TIMEOUT, TIMEOUT, 0)


def configured(server: RedisServer, **options: Any) -> RedisStorage:
    """The global storage: repocket's retry policy, the tests' short timeouts."""
    options.setdefault("socket_timeout", TIMEOUT)
    options.setdefault("socket_connect_timeout", TIMEOUT)
    storage = RedisStorage.from_url(server.url, **options)
    configure.use(storage)
    return storage


@pytest.fixture
def storage(server: RedisServer) -> Iterator[RedisStorage]:
    try:
        yield configured(server)
    finally:
        configure.reset()


@contextlib.contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """The server process stopped (SIGSTOP) inside the block, resumed after it."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def resumed_during(server: RedisServer, call: Callable[[], Any], after: float) -> Any:
    """Run ``call`` in a thread while the server is stopped, resuming it
    ``after`` seconds in (after the client's first timeout, before a resent
    command's): the result, or the exception raised."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    with frozen(server):
        worker.start()
        time.sleep(after)
    worker.join(WAIT + READ_BOUND)
    assert outcome, "the call never returned"
    return outcome[0]


def settled_number(record: Everything, before: int) -> int:
    """The stored counter once the resumed server ran what it had received:
    read (bounded) until it moved from ``before``, then once more a little
    later, when anything resent would have arrived."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if Everything.objects.get(id=record.id).number != before:
            break
        time.sleep(0.01)
    time.sleep(0.2)
    return Everything.objects.get(id=record.id).number  # type: ignore[no-any-return]


# -- the defaults --------------------------------------------------------------------


def test_the_defaults_are_the_documented_ones(server: RedisServer) -> None:
    assert redis_backend.CONNECT_TIMEOUT_S == 2.0
    assert redis_backend.SOCKET_TIMEOUT_S == 5.0
    assert redis_backend.HEALTH_CHECK_INTERVAL_S == 30
    assert redis_backend.READ_RETRIES == 2
    docs = DOCS.read_text(encoding="utf-8")
    section = docs[docs.index("Timeouts and retries\n---") :]
    for row in (
        "``socket_connect_timeout``    2 s",
        "``socket_timeout``            5 s",
        "``health_check_interval``     30 s",
        "reads: resent up to 2 times",
    ):
        assert row in section
    # the documented worst cases: 7 s for a write, about 22 s for a read
    assert worst_case(2.0, 5.0, 0) == 7.0
    assert round(worst_case(2.0, 5.0, 2)) == 22

    built = [
        RedisStorage.from_url(server.url),
        RedisStorage(host="127.0.0.1", port=server.port),
        configure.connection_pool(hostname="127.0.0.1", port=server.port),
    ]
    try:
        for storage in built:
            kwargs = storage.native_client.connection_pool.connection_kwargs
            assert kwargs["socket_connect_timeout"] == 2.0
            assert kwargs["socket_timeout"] == 5.0
            assert kwargs["health_check_interval"] == 30
            retry = kwargs["retry"]
            assert isinstance(retry, Retry)
            assert retry.get_retries() == 2
            assert isinstance(retry._backoff, ExponentialWithJitterBackoff)
            storage.ping()
    finally:
        configure.reset()
        for storage in built:
            storage.close()


def test_options_given_replace_the_defaults(server: RedisServer) -> None:
    mine = Retry(NoBackoff(), 0)
    built = [
        RedisStorage.from_url(
            server.url, socket_timeout=1.5, socket_connect_timeout=0.25, health_check_interval=0
        ),
        RedisStorage.from_url(server.url + "?socket_timeout=3", socket_timeout=1.5),
        RedisStorage(host="127.0.0.1", port=server.port, socket_timeout=None, retry=mine),
        configure.connection_pool(
            hostname="127.0.0.1", port=server.port, socket_timeout=1.5, retry=mine
        ),
    ]
    try:
        kwargs = [storage.native_client.connection_pool.connection_kwargs for storage in built]
        assert kwargs[0]["socket_timeout"] == 1.5
        assert kwargs[0]["socket_connect_timeout"] == 0.25
        assert kwargs[0]["health_check_interval"] == 0
        assert kwargs[1]["socket_timeout"] == 3  # the URL's query wins
        assert kwargs[2]["socket_timeout"] is None  # None: wait for ever
        assert kwargs[2]["socket_connect_timeout"] == 2.0
        assert kwargs[2]["retry"] == mine
        assert kwargs[3]["socket_timeout"] == 1.5
        assert kwargs[3]["retry"] == mine
        for storage in built:
            storage.ping()
    finally:
        configure.reset()
        for storage in built:
            storage.close()


# -- a stopped server ------------------------------------------------------------------


def test_get_fails_within_the_bound_and_works_after_sigcont(
    server: RedisServer, storage: RedisStorage
) -> None:
    harry = User.create(name="Harry Potter")
    with frozen(server):
        started = time.monotonic()
        with pytest.raises(StorageConnectionError, match="cannot reach"):
            User.objects.get(id=harry.id)
        elapsed = time.monotonic() - started
    assert elapsed < READ_BOUND
    # the same storage, not configured again
    assert configure.storage() is storage
    assert User.objects.get(id=harry.id) == harry
    assert User.objects.filter(name="Harry Potter").count() == 1


def test_a_write_fails_within_the_bound_and_works_after_sigcont(
    server: RedisServer, storage: RedisStorage
) -> None:
    record = Everything.create(number=1)
    with frozen(server):
        started = time.monotonic()
        with pytest.raises(StorageConnectionError, match="cannot reach"):
            User.create(name="Ron Weasley")
        elapsed = time.monotonic() - started
    assert elapsed < WRITE_BOUND
    assert configure.storage() is storage
    assert record.increment("number") == 2
    User.create(name="Hermione Granger")
    assert User.objects.filter(name="Hermione Granger").count() == 1
    # the resumed server may have run the save that timed out: once at most
    assert User.objects.filter(name="Ron Weasley").count() in (0, 1)


def test_a_read_in_flight_when_the_server_resumes_is_resent(
    server: RedisServer, storage: RedisStorage
) -> None:
    harry = User.create(name="Harry Potter")
    # resumed after the first timeout: a resend gets the answer
    outcome = resumed_during(server, lambda: User.objects.get(id=harry.id), after=1.5 * TIMEOUT)
    assert outcome == harry


def test_an_increment_that_timed_out_is_not_resent(
    server: RedisServer, storage: RedisStorage
) -> None:
    record = Everything.create(number=10)
    record.increment("number")  # the connection is open and the scripts are loaded
    outcome = resumed_during(server, lambda: record.increment("number"), after=1.5 * TIMEOUT)
    assert isinstance(outcome, StorageConnectionError)
    # the server ran the increment it had received when resumed: once
    assert settled_number(record, 11) in (11, 12)


def test_an_append_that_timed_out_is_not_resent(server: RedisServer, storage: RedisStorage) -> None:
    record = Everything.create(number=0, log=b"start;")
    record.append_log(b"warm-up;")
    outcome = resumed_during(
        server,
        lambda: record.append_log(b"once;"),
        after=1.5 * TIMEOUT,
    )
    assert isinstance(outcome, StorageConnectionError)
    deadline = time.monotonic() + 2.0
    log = b""
    while time.monotonic() < deadline:
        log = Everything.objects.get(id=record.id).log
        if log != b"start;warm-up;":
            break
        time.sleep(0.01)
    time.sleep(0.2)
    log = Everything.objects.get(id=record.id).log
    assert log in (b"start;warm-up;", b"start;warm-up;once;")


def test_redis_py_resending_would_apply_an_increment_twice(server: RedisServer) -> None:
    # The control: with a policy that resends writes (redis-py's default
    # kind), the same scenario runs the increment twice.  It shows that the
    # test above can tell.
    resending = Retry(ExponentialWithJitterBackoff(cap=0.01, base=0.001), 10)
    try:
        configured(server, retry=resending)
        record = Everything.create(number=10)
        record.increment("number")
        outcome = resumed_during(server, lambda: record.increment("number"), after=1.5 * TIMEOUT)
        assert outcome == 13
        assert settled_number(record, 11) == 13
    finally:
        configure.reset()


# -- dropped connections ---------------------------------------------------------------


def kill_clients(server: RedisServer) -> None:
    """Close every connection of the tests' client, from the server's side."""
    admin = redis.Redis.from_url(server.url, socket_timeout=STARTUP_TIMEOUT)
    try:
        admin.client_kill_filter(_type="normal", skipme=True)
    finally:
        admin.close()


def test_a_connection_the_server_closed_is_replaced(server: RedisServer) -> None:
    # redis-py notices a closed pooled connection when taking it from the
    # pool, before sending anything: nothing is resent, nothing fails.
    try:
        configured(server)
        record = Everything.create(number=1)
        kill_clients(server)
        assert Everything.objects.get(id=record.id) == record
        kill_clients(server)
        assert record.increment("number") == 2
        assert Everything.objects.get(id=record.id).number == 2
    finally:
        configure.reset()


def test_only_reads_are_resent() -> None:
    # Every operation the redis backend wraps says whether it may be resent;
    # the reads do, the writes (and the snapshot page read, which removes the
    # page) do not, as docs/reliability.rst states.  (A query's removal of
    # expired records' index entries may be resent: doing it twice is doing
    # it once.)
    source = Path(redis_backend.__file__).read_text(encoding="utf-8")
    calls = re.findall(r'self\._errors\((f?"[^"]*")(, resend=True)?\)', source)
    writes = ("save ", "update ", "delete ", "append to ", "drop the index ", "clear ")
    writes += ("read the results of a query ", "load repocket's scripts")
    writes += ("set the expiry of ", "remove the expired records of ")
    for action, resend in calls:
        text = action.lstrip("f").strip('"')
        if text.startswith(writes):
            assert not resend, text
        else:
            assert resend, f"{text!r} is a read: pass resend=True"
