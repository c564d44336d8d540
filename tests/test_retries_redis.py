"""Saving again after a timeout, against a real redis-server that stops answering.

The server is frozen with ``SIGSTOP`` while a new record is saved: the request
reaches the server's socket, the client gives up after its ``socket_timeout``
and ``save()`` raises :class:`~repocket.errors.StorageConnectionError`, but the
server runs the write as soon as it is resumed (``SIGCONT``).  The instance
keeps its generated id (and ``auto_now`` stamps), so calling ``save()`` again
sends the same create-only write: it succeeds whether the first attempt was
applied or not, and the record is stored once.

Each test freezes a redis-server of its own (never the session's), which is
always resumed and stopped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.errors import StorageConnectionError
from repocket.testing.models import BlogPost, User

from .servers import STARTUP_TIMEOUT, RedisServer

SOCKET_TIMEOUT = 0.5  # seconds: how long the client waits for a frozen server
WAIT = 10.0  # seconds: a bound on waiting for the resumed server, never an assertion


@pytest.fixture
def storage(server: RedisServer) -> Iterator[RedisStorage]:
    # redis-py's own retries are turned off (retries=0) so that the first
    # timeout reaches repocket: the retry under test is the caller's save().
    store = RedisStorage.from_url(
        server.url, socket_timeout=SOCKET_TIMEOUT, retry=Retry(NoBackoff(), 0)
    )
    configure.use(store)
    try:
        yield store
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


def wait_for_key(server: RedisServer, key: str) -> bool:
    """Wait (bounded) until the resumed server holds ``key``; a separate
    client without a short timeout, so that the test's own client is untouched."""
    client = redis.Redis.from_url(server.url, socket_timeout=STARTUP_TIMEOUT)
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if client.exists(key):
                return True
            time.sleep(0.01)
        return False
    finally:
        client.close()


def test_a_save_that_timed_out_is_stored_once_by_saving_again(
    server: RedisServer, storage: RedisStorage
) -> None:
    User.create(name="warm-up")  # the connection is open and the scripts are loaded
    harry = User(name="Harry Potter")
    with frozen(server), pytest.raises(StorageConnectionError):
        harry.save()
    first_id = harry.id
    assert first_id is not None
    harry.save()
    assert harry.id == first_id
    assert User.objects.count() == 2
    assert [user.id for user in User.objects.filter(name="Harry Potter")] == [first_id]
    assert User.objects.get(id=first_id) == harry


def test_saving_again_recognises_a_timed_out_create_the_server_applied(
    server: RedisServer, storage: RedisStorage
) -> None:
    # BlogPost.created_at is stamped by each save: saving again must send the
    # stamp of the attempt the server applied, or it would be refused as a
    # different record holding the id.
    BlogPost.create(title="warm-up")
    post = BlogPost(title="timed out")
    with frozen(server), pytest.raises(StorageConnectionError):
        post.save()
    key = storage.record_key(BlogPost._collection, str(post.id))
    assert wait_for_key(server, key), "the resumed server never ran the first attempt"
    stamp = post.created_at
    post.save()
    assert post.created_at == stamp
    assert BlogPost.objects.count() == 2
    assert [p.id for p in BlogPost.objects.filter(title="timed out")] == [post.id]
    assert BlogPost.objects.get(id=post.id) == post
