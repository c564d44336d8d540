"""Test fixtures.

The model-level tests run on every backend through the conformance suite
(``repocket.testing.suite``, subclassed in ``test_suite_*.py``).  The
``storage`` fixture here is for the tests of what the redis backend does
itself (its key layout, its round trips): it is parametrized over the memory
backend, which runs the redis backend's code on fakeredis, and the redis
backend.  The redis backend talks to a real ``redis-server`` that this
session starts on a free loopback port (``redis_server``).  When redis-server
is missing, its tests fail if the ``CI`` environment variable is set, and are
skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from repocket.backends.memory import MemoryStorage
from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.storage import Storage

from .cluster import RedisCluster, start_redis_cluster
from .servers import RedisServer, start_redis_server, started_or_skipped

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# For maintainers, never loaded unless asked: at least 10,000 examples per
# property test (``pytest tests/test_fuzz_stored_data.py --hypothesis-profile=long``).
settings.register_profile(
    "long",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

BACKENDS = ["memory", "redis"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole session."""
    server = started_or_skipped(start_redis_server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real 3-master Redis Cluster for the whole session (a failure in CI
    when redis-server or redis-cli is missing, a skip otherwise)."""
    cluster = started_or_skipped(start_redis_cluster)
    yield cluster
    cluster.stop()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server for one test, which may stop it (SIGSTOP): it is
    resumed and stopped whatever happens."""
    started = started_or_skipped(start_redis_server)
    try:
        yield started
    finally:
        # a stopped process would ignore the SIGTERM of stop() until resumed
        with contextlib.suppress(ProcessLookupError):
            os.kill(started.process.pid, signal.SIGCONT)
        started.stop()


def make_storage(backend: str, request: pytest.FixtureRequest) -> Storage:
    """A fresh, empty storage of the named backend."""
    if backend == "memory":
        return MemoryStorage()
    server: RedisServer = request.getfixturevalue("redis_server")
    storage = RedisStorage.from_url(server.url)
    storage.clear()
    return storage


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    """The configured global storage, empty, on each backend in turn."""
    store = make_storage(request.param, request)
    configure.use(store)
    yield store
    configure.reset()


@pytest.fixture
def backend_name(storage: Storage) -> str:
    return "memory" if isinstance(storage, MemoryStorage) else "redis"
