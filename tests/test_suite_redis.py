"""The conformance suite on the redis backend, against the session's real
redis-server (a failure in CI when it is missing, a skip otherwise)."""

from __future__ import annotations

from repocket.backends.redis import RedisStorage
from repocket.testing.suite import ConformanceSuite

from .servers import RedisServer


class TestRedisConformance(ConformanceSuite):
    def make_storage(self) -> RedisStorage:
        server: RedisServer = self.request.getfixturevalue("redis_server")
        return RedisStorage.from_url(server.url)
