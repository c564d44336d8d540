"""Start a throwaway ``redis-server`` on a free loopback port for the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import redis

STARTUP_TIMEOUT = 10.0  # seconds; a bound on the wait, never a timing assertion


T = TypeVar("T")


class ServerUnavailable(RuntimeError):
    """redis-server is not installed or did not start."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A running redis-server process owned by the test session."""

    process: subprocess.Popen[bytes]
    port: int
    directory: str
    #: remove the directory when stopped (not when the caller gave it, to
    #: start a server again on its files)
    owns_directory: bool = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket_path(self) -> str:
        return os.path.join(self.directory, "redis.sock")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=STARTUP_TIMEOUT)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STARTUP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_redis_server(
    attempts: int = 3,
    options: Sequence[str] = (),
    password: str | None = None,
    *,
    directory: str | None = None,
    port: int | None = None,
    ping: Mapping[str, Any] | None = None,
) -> RedisServer:
    """Start redis-server on 127.0.0.1 (and a unix socket) with persistence
    off and the extra ``options`` (which may turn it on); wait until it
    answers PING (sent with ``password`` when the options require one, or
    through a client built with ``ping``'s options), also while it replays
    its append-only file.  A free port taken between choosing and binding it
    is retried; ``directory`` and ``port`` start it on those of a server
    stopped earlier."""
    binary = os.environ.get("REPOCKET_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable(
            "redis-server is not installed (Debian: apt-get install redis-server); "
            "the redis backend's tests need a real server"
        )
    last_error = ""
    chosen_port, chosen_directory = port, directory
    for _ in range(attempts):
        port = chosen_port or _free_port()
        directory = chosen_directory or tempfile.mkdtemp(prefix="repocket-redis-")
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                directory,
                "--protected-mode",
                "yes",
                "--unixsocket",
                os.path.join(directory, "redis.sock"),
                "--unixsocketperm",
                "700",
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        server = RedisServer(process, port, directory, owns_directory=chosen_directory is None)
        client = redis.Redis(
            **(ping or {"host": "127.0.0.1", "port": port, "password": password}),
            socket_connect_timeout=0.5,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                client.ping()
                client.close()
                return server
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        client.close()
        output = b""
        if process.poll() is not None and process.stdout is not None:
            output = process.stdout.read()
        server.stop()
        last_error = output.decode(errors="replace")[-500:] or "it did not answer PING in time"
    raise ServerUnavailable(f"redis-server did not start: {last_error}")


def started_or_skipped(start: Callable[[], T]) -> T:
    """``start()``; when redis-server is missing, a failure under CI (``CI``
    set) and a skip naming the cause elsewhere."""
    try:
        return start()
    except ServerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs redis-server: {exc}", pytrace=False)
        pytest.skip(str(exc))
