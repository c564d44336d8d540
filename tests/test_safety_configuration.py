"""Issue 9, item 9: configuration mistakes get clear repocket errors.

A bad port, a database that is not a number, a bad ``?shards=`` value and a
wrong password each raise a repocket error that says what is wrong (and the
command line prints it as one ``Error:`` line, without a traceback).  The
wrong-password tests run against a real redis-server started here with
``--requirepass``, on a free loopback port.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner, Result

from repocket.backend_registry import backend_for_url
from repocket.backends.memory import MemoryStorage
from repocket.backends.redis import RedisStorage
from repocket.cli import main
from repocket.connections import configure
from repocket.errors import (
    ConfigurationError,
    RepocketError,
    StorageConnectionError,
)

from .servers import RedisServer, start_redis_server, started_or_skipped

# ---------------------------------------------------------------------------
# A redis-server that requires a password
# ---------------------------------------------------------------------------


def passworded_server_fixture(password: str) -> Iterator[RedisServer]:
    """Body of a module-scoped fixture: the server, skipped (or failed on CI)
    when redis-server is missing, as in tests/conftest.py."""
    server = started_or_skipped(
        lambda: start_redis_server(options=["--requirepass", password], password=password)
    )
    yield server
    server.stop()


PASSWORD = f"right-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def auth_server() -> Iterator[RedisServer]:
    yield from passworded_server_fixture(PASSWORD)


@pytest.fixture(autouse=True)
def _reset_configuration() -> Iterator[None]:
    yield
    configure.reset()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="repocket")


def assert_clean_cli_error(result: Result, *fragments: str) -> None:
    """Exit status 1, one ``Error:`` message, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.output.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:notaport",
        "redis://h:notaport/0",
        "rediss://user:pw@h:12ab/0",
        "redis://h:99999/0",
        "redis://h:-1/0",
    ],
)
def test_a_bad_port_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="port") as caught:
        backend_for_url(url)
    assert isinstance(caught.value, RepocketError)
    assert isinstance(caught.value, ValueError)  # what generic code expects
    assert "1 to 65535" in str(caught.value)
    assert "'h'" in str(caught.value)  # names the host


def test_a_bad_port_is_a_configuration_error_through_configure() -> None:
    with pytest.raises(ConfigurationError, match="port"):
        configure.from_url("redis://h:notaport")


def test_the_cli_reports_a_bad_port_without_a_traceback() -> None:
    result = invoke("ping", "--url", "redis://h:notaport")
    assert_clean_cli_error(result, "port")


def test_the_cli_reports_a_bad_port_for_commands_that_configure_storage() -> None:
    result = invoke("models", "--url", "redis://h:notaport", "--import", "repocket.testing.models")
    assert_clean_cli_error(result, "port")


def test_the_cli_demo_reports_a_bad_url_without_a_traceback() -> None:
    for url, fragment in (("redis://h:notaport", "port"), ("nosuch://h", "nosuch")):
        assert_clean_cli_error(invoke("demo", "--url", url), fragment)


# ---------------------------------------------------------------------------
# configure.connection_pool's arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {"port": "notaport"},
        {"port": 0},
        {"port": 70000},
        {"port": True},
        {"port": 6379.0},
        {"db": -1},
        {"db": "abc"},
        {"db": None},
    ],
)
def test_connection_pool_refuses_a_bad_port_or_database(arguments: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match=r"port|database"):
        configure.connection_pool(hostname="h", **arguments)  # type: ignore[arg-type]


def test_connection_pool_takes_numbers_given_as_text() -> None:
    storage = configure.connection_pool(hostname="h", port="6380", db="2")  # type: ignore[arg-type]
    kwargs = storage.native_client.connection_pool.connection_kwargs
    assert (kwargs["port"], kwargs["db"]) == (6380, 2)


# ---------------------------------------------------------------------------
# Database numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:6379/abc",
        "redis://h:6379/-1",
        "redis://h:6379/0/1",
        "redis://h:6379/1.5",
        "rediss://h:6379/abc",
    ],
)
def test_a_database_path_that_is_not_a_number_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="database"):
        backend_for_url(url)


@pytest.mark.parametrize(
    "url", ["redis://h:6379/0?db=abc", "unix:///tmp/repocket-nowhere.sock?db=abc"]
)
def test_a_db_query_value_that_is_not_a_number_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="db"):
        backend_for_url(url)


def test_the_cli_reports_a_bad_database() -> None:
    result = invoke("ping", "--url", "redis://h:6379/abc")
    assert_clean_cli_error(result, "database")


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("redis://h", 0),
        ("redis://h:6379", 0),
        ("redis://h:6379/", 0),
        ("redis://h:6379/3", 3),
        ("redis://h:6379/15/", 15),
        ("redis://h:6379/2?db=4", 4),
        ("unix:///tmp/repocket-nowhere.sock?db=5", 5),
    ],
)
def test_valid_database_numbers_are_used(url: str, db: int) -> None:
    storage = backend_for_url(url)
    assert isinstance(storage, RedisStorage)
    assert storage.native_client.connection_pool.connection_kwargs.get("db", 0) == db
    assert f"(db {db}" in storage.describe()


# ---------------------------------------------------------------------------
# Shards
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["x", "0", "-1", "1.5", "", " 2", "²"])
@pytest.mark.parametrize("base", ["redis://h:6379/0", "memory://shards-test"])
def test_a_bad_shards_value_is_a_configuration_error(base: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match="shards"):
        backend_for_url(f"{base}?shards={value}")


@pytest.mark.parametrize("value", [0, -3, "x", "2.0", 1.5, True])
def test_a_bad_shards_option_is_a_configuration_error(value: object) -> None:
    with pytest.raises(ConfigurationError, match="shards"):
        backend_for_url("redis://h:6379/0", shards=value)


def test_the_cli_reports_a_bad_shards_value() -> None:
    result = invoke("ping", "--url", "memory://?shards=zero")
    assert_clean_cli_error(result, "shards")


@pytest.mark.parametrize(
    ("url", "shards"),
    [("redis://h:6379/0?shards=4", 4), ("memory://?shards=3", 3), ("redis://h:6379/0", 1)],
)
def test_valid_shards_values_are_used(url: str, shards: int) -> None:
    storage = backend_for_url(url)
    assert isinstance(storage, RedisStorage)
    assert storage.shards == shards


def test_shards_is_not_passed_on_to_redis() -> None:
    storage = backend_for_url("redis://h:6379/0?shards=2&socket_timeout=3")
    kwargs = storage.native_client.connection_pool.connection_kwargs
    assert "shards" not in kwargs
    assert kwargs["socket_timeout"] == 3


# ---------------------------------------------------------------------------
# Other malformed URLs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:6379/0?socket_timeout=soon",
        "redis://[::1:6379/0",
        "memory://user:pw@store",
    ],
)
def test_other_malformed_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        backend_for_url(url)


def test_a_memory_url_without_credentials_still_names_a_store() -> None:
    storage = backend_for_url("memory://a-store")
    assert isinstance(storage, MemoryStorage)
    assert storage.name == "a-store"


# ---------------------------------------------------------------------------
# Passwords
# ---------------------------------------------------------------------------


def test_the_right_password_works(auth_server: RedisServer) -> None:
    for url in (
        f"redis://:{PASSWORD}@127.0.0.1:{auth_server.port}/0",
        f"unix://:{PASSWORD}@{auth_server.socket_path}",
        f"unix://{auth_server.socket_path}?password={PASSWORD}",
    ):
        storage = backend_for_url(url)
        try:
            storage.ping()
        finally:
            storage.close()


@pytest.mark.parametrize(
    "userinfo", [":wrong-password@", "default:wrong-password@", "app:wrong-password@", ""]
)
def test_a_wrong_or_missing_password_says_authentication_failed(
    auth_server: RedisServer, userinfo: str
) -> None:
    storage = backend_for_url(f"redis://{userinfo}127.0.0.1:{auth_server.port}/0")
    try:
        with pytest.raises(StorageConnectionError) as caught:
            storage.ping()
    finally:
        storage.close()
    message = str(caught.value)
    assert message.startswith(f"authentication failed for redis at 127.0.0.1:{auth_server.port}")
    assert "cannot reach" not in message
    assert isinstance(caught.value.__cause__, redis.exceptions.AuthenticationError)


def test_a_wrong_password_over_a_unix_socket_says_authentication_failed(
    auth_server: RedisServer,
) -> None:
    storage = backend_for_url(f"unix://{auth_server.socket_path}?password=wrong")
    try:
        with pytest.raises(
            StorageConnectionError, match=r"^authentication failed for redis at unix"
        ):
            storage.ping()
    finally:
        storage.close()


def test_a_wrong_password_fails_every_operation_the_same_way(auth_server: RedisServer) -> None:
    from repocket.testing.models import User

    configure.from_url(f"redis://:wrong@127.0.0.1:{auth_server.port}/0")
    with pytest.raises(StorageConnectionError, match=r"^authentication failed for .* count"):
        User.objects.count()


def test_the_cli_says_authentication_failed(auth_server: RedisServer) -> None:
    result = invoke("ping", "--url", f"redis://:wrong@127.0.0.1:{auth_server.port}/0")
    assert_clean_cli_error(
        result, f"Error: authentication failed for redis at 127.0.0.1:{auth_server.port}"
    )
    assert "cannot reach" not in result.output
