"""Running repocket's one model layer from async code.

repocket's model and query code is written once, as plain functions that
call storage.  The async API (``await record.asave()``, ``async for r in
qs``...) runs that same code in a greenlet (:func:`run_sync`); where the
code calls storage, the storage it is given awaits instead of blocking
(:func:`await_only` hands the awaitable to the event loop's side and resumes
with its result).  So sync and async differ only in how a storage call is
made: the same round trips, the same checks, no second copy of the logic.
SQLAlchemy's asyncio support runs its ORM the same way.

Exceptions cross the bridge both ways: a failed await is raised inside the
sync code at the storage call (where the sync code handles it as it would a
blocking call's), and what the sync code raises is raised to the awaiting
caller.  A task cancelled while waiting has ``CancelledError`` raised at the
storage call it was waiting on.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet  # type: ignore[import-untyped]  # (no stubs)

from .errors import RepocketError

__all__ = ["await_only", "close_async_iterator", "in_bridge", "run_sync"]

T = TypeVar("T")


class _Bridge(greenlet.greenlet):  # type: ignore[misc]  # greenlet is untyped
    """A greenlet running repocket's sync code on behalf of an awaiting caller."""

    __slots__ = ()


async def run_sync(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)``, run so that the storage calls it makes
    are awaited on the running event loop instead of blocking it."""
    parent = greenlet.getcurrent()
    bridge = _Bridge(function, parent)
    # The same contextvars as the caller: what the sync code sets (and what
    # the storage's own awaits read, such as redis's resend policy) is seen
    # on both sides of the bridge.
    bridge.gr_context = parent.gr_context
    request = bridge.switch(*args, **kwargs)
    while not bridge.dead:
        try:
            value = await request
        except BaseException:  # every error goes back to the sync code
            request = bridge.throw(*sys.exc_info())
        else:
            request = bridge.switch(value)
    result: T = request
    return result


def await_only(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from sync code run by :func:`run_sync`.

    :raises RepocketError: not called from such code (a sync call made
        while repocket is configured for async use only).
    """
    current = greenlet.getcurrent()
    if not isinstance(current, _Bridge):
        if hasattr(awaitable, "close"):
            awaitable.close()  # never awaited: no "coroutine was never awaited" warning
        raise RepocketError(
            "an async storage call was made from plain sync code; call repocket's "
            "async API (asave(), aget(), ...) from async code instead"
        )
    result: T = current.parent.switch(awaitable)
    return result


def in_bridge() -> bool:
    """Whether the running code was started by :func:`run_sync`."""
    return isinstance(greenlet.getcurrent(), _Bridge)


def close_async_iterator(iterator: Any) -> None:
    """Close ``iterator``, an async iterator that sync code stopped using
    early, so that it releases what it holds (a connection, a query's
    snapshot) now.

    Called outside :func:`run_sync` (the sync code collected as garbage),
    nothing can be awaited: the event loop's async-generator finalizer
    closes it instead.
    """
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None and in_bridge():
        await_only(aclose())
