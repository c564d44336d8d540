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

from .redis import RedisStorage

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

    def __init__(self, name: str | None = None, **options: Any) -> None:
        if name:
            with _named_lock:
                server = _named_servers.setdefault(name, fakeredis.FakeServer())
        else:
            server = fakeredis.FakeServer()
        self.name = name
        options.setdefault("decode_responses", False)
        super().__init__(fakeredis.FakeRedis(server=server, **options))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryStorage:
        """``memory://`` (a new private store) or ``memory://NAME`` (a shared one)."""
        parts = urlsplit(url)
        name = (parts.netloc + parts.path).strip("/") or None
        return cls(name, **options)

    def describe(self) -> str:
        return f"memory store {self.name!r}" if self.name else "private memory store"
