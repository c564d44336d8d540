"""The redis backend for async code: the same backend, over ``redis.asyncio``.

:meth:`RedisStorage.open_async() <repocket.backends.redis.RedisStorage.open_async>`
builds, for the running event loop, a ``redis.asyncio`` client with the sync
client's connection settings (address, database, credentials, TLS,
timeouts, health checks, and repocket's retry policy: reads resent, writes
never), and runs the redis backend's own code over it: the backend is given
a client whose methods wait for the async client's replies through
:func:`repocket.asyncbridge.await_only`.  So the async backend sends exactly
the commands, scripts and pipelines the sync one does, and no backend logic
exists twice.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection as async_connection
import redis.asyncio.retry
import redis.connection

try:
    from redis.maint_notifications import MaintNotificationsConfig
except ImportError:  # pragma: no cover - redis-py before 7 has no maintenance notifications
    MaintNotificationsConfig = None  # type: ignore[assignment,misc]

from ..async_storage import AsyncStorage, BridgedAsyncStorage
from ..asyncbridge import await_only, close_async_iterator, run_sync

__all__ = ["AwaitingClient", "async_client_like", "open_async_storage"]

#: How long a task waits for a free connection of a full pool before
#: failing (redis-py's default for its blocking pools).
_POOL_WAIT_S = 20.0

_CONNECTION_CLASSES: dict[type, type] = {
    redis.connection.Connection: async_connection.Connection,
    redis.connection.SSLConnection: async_connection.SSLConnection,
    redis.connection.UnixDomainSocketConnection: async_connection.UnixDomainSocketConnection,
}


class _AsyncReadRetry(redis.asyncio.retry.Retry):
    """The async twin of the redis backend's retry policy: resend only while
    repocket runs a read (the flag the sync code sets is seen here: the
    bridge runs it in the caller's context)."""

    _once: redis.asyncio.retry.Retry | None = None

    async def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
        from .redis import _RESEND_OK

        if _RESEND_OK.get():
            return await super().call_with_retry(do, fail, *args, **kwargs)
        once = self._once
        if once is None:
            once = self._once = redis.asyncio.retry.Retry(
                redis.backoff.NoBackoff(), 0, self._supported_errors
            )
        return await once.call_with_retry(do, fail, *args, **kwargs)


def _async_retry(retry: Any) -> Any:
    """An async ``Retry`` with the same backoff and count as a sync one."""
    from .redis import _ReadRetry

    if retry is None:
        return None
    kind = _AsyncReadRetry if isinstance(retry, _ReadRetry) else redis.asyncio.retry.Retry
    return kind(retry._backoff, retry._retries, retry._supported_errors)


def async_client_like(client: redis.Redis) -> redis.asyncio.Redis:
    """A ``redis.asyncio.Redis`` connecting as ``client`` does.

    :raises TypeError: the client's connections are of a kind with no async
        counterpart in redis-py.
    """
    pool = client.connection_pool
    connection_class = _CONNECTION_CLASSES.get(pool.connection_class)
    if connection_class is None:
        raise TypeError(
            f"repocket cannot open an async client like {client!r}: its connections are "
            f"{pool.connection_class.__name__}, which has no redis.asyncio counterpart"
        )
    accepted: set[str] = set()
    for cls in connection_class.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            accepted.update(inspect.signature(init).parameters)
    options = {
        k: v
        for k, v in pool.connection_kwargs.items()
        if k in accepted and not k.startswith("maint_notifications")
    }
    # Not the sync pool's maintenance-notification state (its handler belongs
    # to that pool), and off unless asked for: redis.asyncio's pool enables
    # them in "auto" mode by default, and then skips the check that replaces
    # a connection the server closed while it was idle, so that the next
    # write failed on it where a sync one succeeds.
    sync_config = pool.connection_kwargs.get("maint_notifications_config")
    if MaintNotificationsConfig is not None:
        options["maint_notifications_config"] = (
            sync_config
            if sync_config is not None and sync_config.enabled is True
            else MaintNotificationsConfig(enabled=False)
        )
    options["retry"] = _async_retry(pool.connection_kwargs.get("retry"))
    # Blocking: a task finding every connection in use waits for one (up to
    # _POOL_WAIT_S), as a thread does for a blocking call.  redis.asyncio's
    # plain pool fails at once ("Too many connections"), which many tasks on
    # one loop reach at the pool's limit (100 by default) under normal load.
    async_pool = redis.asyncio.BlockingConnectionPool(
        connection_class=connection_class,
        max_connections=pool.max_connections,
        timeout=_POOL_WAIT_S,
        **options,
    )
    return redis.asyncio.Redis(connection_pool=async_pool)


def open_async_storage(storage: Any, client: Any) -> AsyncStorage:
    """An :class:`AsyncStorage` running ``storage``'s code over the async
    ``client``: a copy of ``storage`` (same class, same shards and options)
    whose client is ``client``, seen through :class:`AwaitingClient`."""
    inner = copy.copy(storage)
    inner._client = AwaitingClient(client)
    inner._shard_cache = {}
    # The pool too: a client given its pool leaves it open on aclose(), with
    # every connection the loop opened.
    close = functools.partial(client.aclose, close_connection_pool=True)
    # (its methods are added by async_storage._complete())
    return BridgedAsyncStorage(inner, close=close)  # type: ignore[abstract]


class AwaitingClient:
    """A sync-looking view of a ``redis.asyncio`` object (client, pipeline,
    pool, connection) for the redis backend's code run by
    :func:`~repocket.asyncbridge.run_sync`: a method returning an awaitable
    waits for it, an async iterator is iterated, and redis-py objects it
    returns are wrapped the same way."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name == "call_with_retry":
            return _retry_caller(value)
        if callable(value) and not isinstance(value, type):
            return _AwaitingCall(value)
        return _wrapped(value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_target":
            object.__setattr__(self, name, value)
        else:
            setattr(self._target, name, value)

    def __bool__(self) -> bool:
        return bool(self._target)


class _AwaitingCall:
    __slots__ = ("_function",)

    def __init__(self, function: Callable[..., Any]) -> None:
        self._function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # objects handed back (a connection released to its pool) are the
        # async ones, not their views
        args = tuple(a._target if isinstance(a, AwaitingClient) else a for a in args)
        return _wrapped(self._function(*args, **kwargs))


# redis.asyncio's pipeline is awaitable (awaiting it gives itself): queueing a
# command must not cost a trip through the event loop.
_WRAPPED_AS_IS = (
    redis.asyncio.client.Pipeline,
    redis.asyncio.ConnectionPool,
    async_connection.AbstractConnection,
    redis.asyncio.retry.Retry,
)


def _wrapped(value: Any) -> Any:
    if isinstance(value, _WRAPPED_AS_IS):
        return AwaitingClient(value)
    if inspect.isawaitable(value):
        return _wrapped(await_only(value))
    if hasattr(value, "__anext__"):
        return _iterate(value)
    return value


def _iterate(iterator: Any) -> Iterator[Any]:
    try:
        while True:
            try:
                item = await_only(iterator.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        close_async_iterator(iterator)  # stopped early: release what it holds now


def _retry_caller(call_with_retry: Callable[..., Any]) -> Callable[..., Any]:
    """``retry.call_with_retry(do, fail)`` for sync ``do``/``fail`` (which
    wait through the bridge themselves): each attempt runs in its own bridge."""

    def call(do: Callable[[], Any], fail: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await_only(
            call_with_retry(lambda: run_sync(do), lambda *a: run_sync(fail, *a), *args, **kwargs)
        )

    return call
