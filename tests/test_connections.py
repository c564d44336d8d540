"""Choosing storage: configure.connection_pool / from_url, and the errors around it."""

from __future__ import annotations

import socket

import fakeredis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from repocket.backends.memory import MemoryStorage
from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.errors import (
    NotConfiguredError,
    RepocketError,
    StorageConnectionError,
    StorageError,
    UnknownBackendError,
)

from .models import User
from .servers import RedisServer


@pytest.fixture(autouse=True)
def _reset_configuration():
    configure.reset()
    yield
    configure.reset()


def no_retry() -> Retry:
    # redis-py retries refused connections with backoff; the tests want the error now.
    return Retry(NoBackoff(), 0)


def test_using_a_model_before_configuring_says_how_to_configure() -> None:
    with pytest.raises(NotConfiguredError) as info:
        User(name="Harry").save()
    assert "configure.connection_pool(" in str(info.value)
    assert "from_url('memory://')" in str(info.value)
    with pytest.raises(NotConfiguredError):
        User.objects.get(id="970773fa-4de1-11e5-86f4-6c4008a70392")
    with pytest.raises(NotConfiguredError):
        configure.get_connection()


def test_connection_pool_connects_to_redis_and_get_connection_is_native(
    redis_server: RedisServer,
) -> None:
    storage = configure.connection_pool(hostname="127.0.0.1", port=redis_server.port, db=3)
    assert isinstance(storage, RedisStorage)
    connection = configure.get_connection()
    assert type(connection) is redis.Redis
    user = User.create(name="Harry")
    assert connection.exists(user.save()["hash"]) == 1
    assert connection.connection_pool.connection_kwargs["db"] == 3
    storage.clear()


def test_connection_pool_with_username_and_password(redis_server: RedisServer) -> None:
    admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
    admin.acl_setuser(
        "harry", enabled=True, passwords=["+hermione42"], keys=["repocket:*"], commands=["+@all"]
    )
    try:
        configure.connection_pool(
            hostname="127.0.0.1", port=redis_server.port, username="harry", password="hermione42"
        )
        user = User.create(name="Harry")
        assert User.objects.get(id=user.id) == user
        configure.connection_pool(
            hostname="127.0.0.1",
            port=redis_server.port,
            username="harry",
            password="wrong",
            retry=no_retry(),
        )
        with pytest.raises(StorageError) as info:
            User.create(name="Ron")
        assert isinstance(info.value.__cause__, redis.exceptions.RedisError)
    finally:
        configure.reset()
        admin.acl_deluser("harry")
        RedisStorage(admin).clear()
        admin.close()


def test_connection_pool_with_the_memory_backend() -> None:
    storage = configure.connection_pool(backend="memory")
    assert isinstance(storage, MemoryStorage)
    assert isinstance(configure.get_connection(), fakeredis.FakeRedis)
    assert User.objects.get(id=User.create(name="Harry").id).name == "Harry"


def test_from_url_redis(redis_server: RedisServer) -> None:
    storage = configure.from_url(redis_server.url)
    assert isinstance(storage, RedisStorage)
    storage.ping()


def test_from_url_unix_socket(redis_server: RedisServer) -> None:
    storage = configure.from_url(f"unix://{redis_server.socket_path}?db=1")
    assert isinstance(storage, RedisStorage)
    user = User.create(name="Harry")
    assert User.objects.get(id=user.id) == user
    assert "unix socket" in storage.describe()
    storage.clear()


def test_from_url_rediss_uses_tls() -> None:
    storage = configure.from_url("rediss://127.0.0.1:6380/0")
    pool = storage.native_client.connection_pool
    assert pool.connection_class is redis.SSLConnection


def test_from_url_memory_gives_a_fresh_store_each_time() -> None:
    first = configure.from_url("memory://")
    User.create(name="Harry")
    configure.from_url("memory://")
    assert User.objects.count() == 0
    assert isinstance(first, MemoryStorage)


def test_from_url_memory_with_a_name_shares_the_store() -> None:
    configure.from_url("memory://shared-test-store")
    harry = User.create(name="Harry")
    configure.from_url("memory://shared-test-store")
    assert User.objects.get(id=harry.id) == harry
    configure.storage().clear()


def test_from_url_with_an_unknown_scheme_lists_the_available_ones() -> None:
    with pytest.raises(UnknownBackendError) as info:
        configure.from_url("nosuch://somewhere")
    message = str(info.value)
    assert "'nosuch'" in message
    for scheme in ("memory", "redis", "rediss", "unix"):
        assert scheme in message
    assert isinstance(info.value, LookupError)


def test_a_refused_connection_names_host_and_port_and_keeps_the_cause() -> None:
    # a port this test holds bound without listening: connections to it are
    # refused, and nothing else can take it meanwhile
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        configure.connection_pool(hostname="127.0.0.1", port=port, retry=no_retry())
        with pytest.raises(StorageConnectionError) as info:
            User.create(name="Harry")
    assert f"127.0.0.1:{port}" in str(info.value)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, RepocketError)
    assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)


def test_configuring_again_replaces_the_storage() -> None:
    first = configure.from_url("memory://")
    second = configure.from_url("memory://")
    assert configure.storage() is second and first is not second
