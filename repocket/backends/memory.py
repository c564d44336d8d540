"""The in-memory backend: repocket without a server.

It runs the redis backend's code against `fakeredis
<https://github.com/cunla/fakeredis-py>`_, an in-process implementation of the
redis server, so the memory backend stores exactly what the redis backend
stores, with the same atomicity, and tests written against it hold on redis.
Data lives as long as the process (or the :class:`MemoryStorage`).

``memory://`` gives a new, empty store each time; ``memory://NAME`` gives the
store called NAME, shared by every storage opened with that name in this
process.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import fakeredis

from ..async_storage import AsyncStorage
from .redis import RedisStorage, _pop_shards

__all__ = ["MemoryStorage"]

_named_servers: dict[str, fakeredis.FakeServer] = {}
_named_lock = threading.Lock()


class MemoryStorage(RedisStorage):
    """Stores records in this process's memory (through ``fakeredis.FakeRedis``).

    :param name: share the store with every ``MemoryStorage`` of that name;
        ``None`` (the default) makes a private, empty store.
    """

    scheme = "memory"
    persistent = False

    def __init__(self, name: str | None = None, *, shards: int = 1, **options: Any) -> None:
        if name:
            with _named_lock:
                server = _named_servers.setdefault(name, fakeredis.FakeServer())
        else:
            server = fakeredis.FakeServer()
        self.name = name
        options.setdefault("decode_responses", False)
        super().__init__(fakeredis.FakeRedis(server=server, **options), shards=shards)
        # an in-process server starts with repocket's scripts loaded, so that
        # its first writes cost what later ones do
        self.load_scripts()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryStorage:
        """``memory://`` (a new private store) or ``memory://NAME`` (a shared
        one); ``?shards=S`` splits each model's index data into S shards."""
        url, shards = _pop_shards(url, options.pop("shards", None))
        parts = urlsplit(url)
        name = (parts.netloc + parts.path).strip("/") or None
        return cls(name, shards=shards, **options)

    def open_async(self) -> AsyncStorage:
        """This store for async code: fakeredis's async client over the same
        in-process server, so what sync code saves, async code sees."""
        from .redis_async import open_async_storage

        server = self._client.connection_pool.connection_kwargs["server"]
        # no limit on its in-process connections: redis.asyncio's default of
        # 100 fails the 101st concurrent task at once ("Too many connections")
        client = fakeredis.FakeAsyncRedis(server=server, max_connections=2**31)
        return open_async_storage(self, client)

    def describe(self) -> str:
        where = f"memory store {self.name!r}" if self.name else "private memory store"
        return f"{where}, {self.shards} shards" if self.shards > 1 else where
