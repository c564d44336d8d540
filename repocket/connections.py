"""Choosing where repocket stores data.

Configure once, at application start-up::

    from repocket.connections import configure

    configure.connection_pool(hostname="localhost", port=6379, db=0)   # redis
    configure.from_url("redis://:secret@cache.internal:6379/2")         # redis, by URL
    configure.connection_pool(backend="memory")                        # no server
    configure.from_url("memory://")                                     # the same

Every model then uses that storage.  :meth:`configure.get_connection`
returns the backend's native client (a ``redis.Redis``, or the ``FakeRedis``
of the memory backend) for looking at raw data.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

from .asyncbridge import await_only, in_bridge
from .backend_registry import backend_for_url, get_backend
from .errors import ConfigurationError, NotConfiguredError
from .keys import Collection
from .storage import Storage

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .async_storage import AsyncStorage

__all__ = ["configure"]

_HOW_TO = (
    "configure it first, e.g. repocket.connections.configure.connection_pool("
    "hostname='localhost', port=6379, db=0) for redis, or "
    "configure.from_url('memory://') for the in-memory backend"
)


def _whole_number(name: str, value: Any, low: int, high: int | None) -> int:
    """``value`` as an int in ``[low, high]``: an int (not a bool), or its
    digits as text (as read from an environment variable)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        number = low - 1
    if number < low or (high is not None and number > high):
        limits = f"from {low} to {high}" if high is not None else f"from {low} up"
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise ConfigurationError(f"the {name} must be a whole number {limits}, not {shown}")
    return number


class configure:  # noqa: N801 - the lower-case name is the documented 0.0.1 API
    """global connection manager. this class is intended to be used as a singleton:

    - :meth:`connection_pool` and :meth:`from_url` choose the storage every
      model uses (the previous one, if any, is closed);
    - :meth:`get_connection` can be used safely at any time after one of them.
    """

    _storage: ClassVar[Storage | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()
    # per event loop: the configured storage and the AsyncStorage serving it
    # there (made on first use; dropped with the loop)
    _async: ClassVar[weakref.WeakKeyDictionary[Any, tuple[Storage, Any]]] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def connection_pool(
        cls,
        hostname: str = "localhost",
        port: int = 6379,
        db: int = 0,
        *,
        username: str | None = None,
        password: str | None = None,
        backend: str = "redis",
        **options: Any,
    ) -> Storage:
        """sets the global connection pool.

        :param hostname: the redis server's host name, defaults to ``localhost``.
        :param port: the port to connect to, defaults to ``6379``.
        :param db: the redis database number, defaults to ``0``.
        :param username: optional ACL user name.
        :param password: optional password.
        :param backend: ``"redis"`` (default) or ``"memory"``, or any
            installed backend's scheme; a backend other than redis is built
            from ``<backend>://`` and ``options``.
        :param options: passed to the backend (for redis, to ``redis.Redis``).
            For redis, ``socket_connect_timeout`` (2 s), ``socket_timeout``
            (5 s), ``health_check_interval`` (30 s) and ``retry`` (reads
            resent twice with backoff, writes never) default to repocket's
            choices, which an option given here replaces; see "Timeouts and
            retries" in the reliability documentation.
        :returns: the :class:`~repocket.storage.Storage` now in use.
        :raises ConfigurationError: ``port`` is not a whole number from 1 to
            65535, or ``db`` not one from 0 up (checked now: redis-py would
            fail only at the first command).
        """
        backend_cls: Any = get_backend(backend)
        if backend in ("redis", "rediss"):
            storage = backend_cls(
                host=hostname,
                port=_whole_number("port", port, 1, 65535),
                db=_whole_number("database number (db)", db, 0, None),
                username=username,
                password=password,
                ssl=backend == "rediss",
                **options,
            )
        else:
            storage = backend_cls.from_url(f"{backend}://", **options)
        return cls.use(storage)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Storage:
        """Choose storage by URL: ``redis://``, ``rediss://``, ``unix://``,
        ``memory://``, or any installed backend's scheme.

        :returns: the :class:`~repocket.storage.Storage` now in use.
        """
        return cls.use(backend_for_url(url, **options))

    @classmethod
    def use(cls, storage: Storage) -> Storage:
        """Make an already built :class:`~repocket.storage.Storage` the global one."""
        with cls._lock:
            previous, cls._storage = cls._storage, storage
        if previous is not None and previous is not storage:
            previous.close()
        return storage

    @classmethod
    def storage(cls) -> Storage:
        """The storage in use.

        :raises NotConfiguredError: nothing has been configured yet.
        """
        storage = cls._storage
        if storage is None:
            raise NotConfiguredError(f"repocket has no storage configured; {_HOW_TO}")
        if in_bridge():
            # the model layer runs for async code: its storage calls await
            awaiting: Storage = cls._awaiting(storage)
            return awaiting
        return storage

    @classmethod
    def async_storage(cls) -> AsyncStorage:
        """The :class:`~repocket.async_storage.AsyncStorage` serving the
        configured storage to the running event loop (made on first use: for
        redis, a ``redis.asyncio`` client with the same settings; for memory,
        fakeredis's async client over the same data; for a sync-only
        backend, its calls run in worker threads).

        :raises NotConfiguredError: nothing has been configured yet.
        :raises RuntimeError: no event loop is running.
        """
        return cls._awaiting(cls.storage()).async_storage  # type: ignore[no-any-return]

    @classmethod
    def _awaiting(cls, storage: Storage) -> Any:
        from .async_storage import AwaitingStorage, async_storage_for

        loop = asyncio.get_running_loop()
        found = cls._async.get(loop)
        if found is None or found[0] is not storage:
            if found is not None and in_bridge():
                # another storage was configured since: release the loop's
                # connections to the old one
                await_only(found[1].async_storage.aclose())
            found = (storage, AwaitingStorage(async_storage_for(storage), storage))
            cls._async[loop] = found
        return found[1]

    @classmethod
    async def aclose(cls) -> None:
        """Close the running event loop's async connections (opened again
        when next needed).  Call it before the loop ends, as a web
        application's shutdown hook, to release them cleanly."""
        found = cls._async.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[1].async_storage.aclose()

    @classmethod
    def record_key(cls, collection: Collection, record_id: str) -> str:
        """A record's key in the storage in use (0.0.1's layout when none is
        configured yet, e.g. when a value is encoded before any storage is
        chosen)."""
        storage = cls._storage
        if storage is None:
            return collection.record_key(record_id)
        return storage.record_key(collection, record_id)

    @classmethod
    def get_connection(cls) -> Any:
        """returns the native client of the configured backend (a ``redis.Redis``
        for redis, a ``fakeredis.FakeRedis`` for memory).  this method should
        **only** be called after you already called :meth:`connection_pool`.
        """
        return cls.storage().native_client

    @classmethod
    def reset(cls) -> None:
        """Forget (and close) the configured storage."""
        with cls._lock:
            previous, cls._storage = cls._storage, None
        if previous is not None:
            previous.close()
