"""Issue 9, item 8: no message, repr or log record contains a password.

Every URL form is tried with a secret in it -- in the user info, in the
query, in the wrong place (a password with an unescaped ``/``, ``?``, ``#``
or ``@``), where the port goes -- and the secret must not appear in the
error (with its whole chain of causes, as a logged traceback shows it), in
``repr(storage)`` or ``storage.describe()``, in the command line's output,
or in any log record.
"""

from __future__ import annotations

import logging
import os
import tempfile
import traceback
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from repocket.backend_registry import backend_for_url
from repocket.cli import main
from repocket.connections import configure
from repocket.errors import RepocketError, StorageConnectionError
from repocket.storage import Storage, redact_url

from .servers import RedisServer
from .test_safety_configuration import passworded_server_fixture

SECRET = "S3CRET-hunter2"
PASSWORD = f"right-{uuid.uuid4().hex}"  # the server's; the URLs below use SECRET


@pytest.fixture(scope="module")
def auth_server() -> Iterator[RedisServer]:
    yield from passworded_server_fixture(PASSWORD)


@pytest.fixture(autouse=True)
def _reset_configuration() -> Iterator[None]:
    yield
    configure.reset()


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: nothing logged (at any level, by anyone) names the secret."""
    with caplog.at_level(logging.DEBUG):
        yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(record.exc_info[1]))
        assert SECRET not in text, f"log record leaks the password: {text!r}"


def everything_about(exc: BaseException) -> str:
    """All an exception shows: str, repr, and the traceback of its whole chain."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


def assert_no_secret_in_storage(storage: Storage) -> None:
    for text in (repr(storage), str(storage), storage.describe()):
        assert SECRET not in text


def ping(url: str) -> Result:
    return CliRunner().invoke(main, ["ping", "--url", url], prog_name="repocket")


# URLs that cannot be used, whatever the reason.
BAD_URLS = [
    # no scheme: the shape the tracker quoted
    f"//app:{SECRET}@host:6416/0",
    f"//:{SECRET}@host:6416/0",
    f":{SECRET}@host:6416/0",
    f"/var/run/redis.sock?password={SECRET}",
    # unknown scheme
    f"nosuch://app:{SECRET}@host:6416/0",
    f"NoSuch://app:{SECRET}@host/0?password={SECRET}",
    # malformed port, with the password in the user info...
    f"redis://app:{SECRET}@host:notaport/0",
    f"redis://:{SECRET}@host:99999/0",
    f"rediss://app:{SECRET}@host:6380x/0",
    # ...or where the port goes (host:password)
    f"redis://host:{SECRET}/0",
    f"redis://host:{SECRET}",
    # a password with a character that ends the user info: it spills into
    # the host, port, path or query
    f"redis://app:{SECRET}/x@host:6379/0",
    f"redis://:{SECRET}/x@host:6379/0",
    f"redis://app:{SECRET}?x@host:6379/0",
    f"redis://app:{SECRET}#x@host:6379/0",
    f"redis://app:a/{SECRET}@host:6379/0",
    f"unix://app:{SECRET}/x@/tmp/redis.sock",
    # bad database, shards, query values, with a password present
    f"redis://app:{SECRET}@host:6379/abc",
    f"redis://app:{SECRET}@host:6379/0?shards=x",
    f"redis://app:{SECRET}@host:6379/0?db=x",
    f"redis://app:{SECRET}@host:6379/0?socket_timeout=x",
    f"unix://app:{SECRET}@/tmp/redis.sock?db=x",
    f"unix:///tmp/redis.sock?password={SECRET}&db=x",
    f"unix:///tmp/redis.sock?db=x&password={SECRET}",
    f"redis://app:{SECRET}@[::1:6379/0",
    # memory:// takes no credentials
    f"memory://app:{SECRET}@store",
    f"memory://:{SECRET}@",
    f"memory://app:{SECRET}@store?shards=x",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_bad_url_error_never_contains_the_password(url: str) -> None:
    with pytest.raises(RepocketError) as caught:
        backend_for_url(url)
    assert SECRET not in everything_about(caught.value)


@pytest.mark.parametrize("url", BAD_URLS)
def test_configure_from_url_never_shows_the_password(url: str) -> None:
    with pytest.raises(RepocketError) as caught:
        configure.from_url(url)
    assert SECRET not in everything_about(caught.value)


@pytest.mark.parametrize("url", BAD_URLS)
def test_the_cli_never_prints_the_password(url: str) -> None:
    result = ping(url)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a clean Error: line, no traceback
    assert result.output.startswith("Error: ")
    assert SECRET not in result.output


def test_the_cli_never_prints_a_password_from_the_environment() -> None:
    url = f"//app:{SECRET}@host:6416/0"
    result = CliRunner(env={"REPOCKET_URL": url}).invoke(main, ["ping"], prog_name="repocket")
    assert result.exit_code == 1
    assert SECRET not in result.output


def test_the_no_scheme_message_still_says_what_is_wrong() -> None:
    with pytest.raises(RepocketError) as caught:
        configure.from_url(f"//app:{SECRET}@host:6416/0")
    assert "has no scheme" in str(caught.value)
    assert "'//app:***@host:6416/0'" in str(caught.value)


# URLs that build a storage: what it says about itself must not name the password.
GOOD_URLS = [
    f"redis://app:{SECRET}@host:6379/0",
    f"redis://:{SECRET}@host",
    f"rediss://app:{SECRET}@host:6380/1?shards=2",
    f"unix://app:{SECRET}@/tmp/redis.sock",
    f"unix:///tmp/redis.sock?password={SECRET}&db=2",
    f"redis://app:{SECRET.replace('-', '%2F')}@host:6379/0",  # percent-encoded is fine
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_a_storage_never_describes_itself_with_the_password(url: str) -> None:
    storage = backend_for_url(url)
    try:
        assert_no_secret_in_storage(storage)
    finally:
        storage.close()


def test_a_storage_built_from_arguments_never_describes_itself_with_the_password() -> None:
    storage = configure.connection_pool(hostname="host", username="app", password=SECRET)
    assert_no_secret_in_storage(storage)
    # a URL's user info passed as the host name
    storage = configure.connection_pool(hostname=f"app:{SECRET}@host")
    assert_no_secret_in_storage(storage)
    assert "host:6379" in storage.describe()


@pytest.mark.parametrize("url", [f"//app:{SECRET}@host:6416/0", f"redis://app:{SECRET}@h:x/0"])
def test_the_cli_demo_never_prints_the_password(url: str) -> None:
    result = CliRunner().invoke(main, ["demo", "--url", url], prog_name="repocket")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert SECRET not in result.output


def test_a_wrong_password_error_never_contains_it(auth_server: RedisServer) -> None:
    for url in (
        f"redis://app:{SECRET}@127.0.0.1:{auth_server.port}/0",
        f"redis://:{SECRET}@127.0.0.1:{auth_server.port}/0",
        f"unix://:{SECRET}@{auth_server.socket_path}",
        f"unix://{auth_server.socket_path}?password={SECRET}",
    ):
        storage = backend_for_url(url)
        try:
            assert_no_secret_in_storage(storage)
            with pytest.raises(StorageConnectionError) as caught:
                storage.ping()
        finally:
            storage.close()
        assert "authentication failed" in str(caught.value)
        assert SECRET not in everything_about(caught.value)


def test_the_cli_never_prints_a_wrong_password(auth_server: RedisServer) -> None:
    result = ping(f"redis://app:{SECRET}@127.0.0.1:{auth_server.port}/0")
    assert result.exit_code == 1
    assert "authentication failed" in result.output
    assert SECRET not in result.output


def test_an_unreachable_server_error_never_contains_the_password() -> None:
    # a socket path in a fresh empty directory: nothing listens there, and
    # the test depends on no port being closed
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "nothing.sock")
        for url in (f"unix://app:{SECRET}@{path}", f"unix://{path}?password={SECRET}"):
            storage = backend_for_url(url)
            with pytest.raises(StorageConnectionError) as caught:
                storage.ping()
            storage.close()
            assert "cannot reach" in str(caught.value)
            assert SECRET not in everything_about(caught.value)
            result = ping(url)
            assert result.exit_code == 1 and "cannot reach" in result.output
            assert SECRET not in result.output


# ---------------------------------------------------------------------------
# redact_url, the helper every message uses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://app:pw@host:6379/0", "redis://app:***@host:6379/0"),
        ("redis://:pw@host", "redis://***@host"),
        ("redis://pw@host", "redis://***@host"),  # a lone user info may be a password
        ("//app:pw@host:6416/0", "//app:***@host:6416/0"),
        ("redis://app:p/w?x#y@host:1/0", "redis://app:***@host:1/0"),
        ("unix:///s.sock?db=1&password=pw&x=1", "unix:///s.sock?db=1&password=***"),
        ("unix:///s.sock?Password=pw", "unix:///s.sock?Password=***"),
        ("redis://host:6379/0?shards=2", "redis://host:6379/0?shards=2"),
        ("memory://", "memory://"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
