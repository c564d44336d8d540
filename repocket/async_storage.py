"""Storage for async code: the :class:`AsyncStorage` protocol and its adapters.

repocket's async API (``await Model.objects.aget(...)``, ``await
record.asave()``, ``async for record in qs``...) runs the one model layer
through :mod:`repocket.asyncbridge`; its storage calls go to an
:class:`AsyncStorage`, which mirrors :class:`~repocket.storage.Storage`
method for method, each I/O method a coroutine and each iterator an async
iterator.

Where an :class:`AsyncStorage` comes from (:func:`async_storage_for`):

* a backend may provide one natively: a ``Storage`` with an
  ``open_async()`` method returns it (called once per event loop).  The
  redis and memory backends do (``redis.asyncio``, and fakeredis's async
  client over the same data as the sync one);
* any other backend -- a sync-only plugin such as repocket-sqlite -- gets
  :class:`ThreadedAsyncStorage`, which runs its calls in a worker thread so
  that the event loop never blocks.  So every backend serves the async API.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .asyncbridge import await_only, close_async_iterator, run_sync

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .keys import Collection
    from .storage import (
        FieldSwap,
        IndexEntry,
        LoadRequest,
        Order,
        Plan,
        RecordWrite,
        Storage,
        StoredRecord,
        UniqueClaim,
    )

__all__ = [
    "ASYNC_CALLS",
    "ASYNC_ITERATORS",
    "AsyncStorage",
    "AwaitingStorage",
    "BridgedAsyncStorage",
    "ThreadedAsyncStorage",
    "async_storage_for",
]

#: The :class:`~repocket.storage.Storage` methods that do I/O, as coroutines
#: in :class:`AsyncStorage`.
ASYNC_CALLS: tuple[str, ...] = (
    "save_record",
    "save_records",
    "swap_field",
    "load_records",
    "load_record",
    "delete_record",
    "append_to_stream",
    "query_ids",
    "query_ids_unless",
    "query_records",
    "count_ids",
    "count_ids_unless",
    "count_records",
    "read_index_entries",
    "missing_entries",
    "drop_index",
    "clear",
    "ping",
    "set_expiry",
    "get_expiry",
    "expire_due",
)
#: The :class:`~repocket.storage.Storage` iterators, as async iterators in
#: :class:`AsyncStorage`.
ASYNC_ITERATORS: tuple[str, ...] = (
    "iter_stored_ids",
    "iter_query_ids",
    "iter_query_records",
    "iter_index_members",
    "iter_stray_keys",
    "iter_claims",
    "iter_ids",
)
#: How many items an iterator run in a thread or a bridge hands over at once.
_ITERATOR_BATCH = 500
#: ... except for iterators whose items are batches already: one at a time.
_BATCH_ITERATORS = frozenset({"iter_query_records"})


class AsyncStorage(abc.ABC):
    """What async code stores through: :class:`~repocket.storage.Storage`
    with coroutines for its I/O methods and async iterators for its
    iterators (same arguments, same results, same errors).

    Key names and descriptions are not I/O: :meth:`record_key`,
    :meth:`stream_key`, :meth:`describe` and the capability flags stay plain.
    """

    #: as :attr:`repocket.storage.Storage.atomic_saves`
    atomic_saves: bool = False
    #: as :attr:`repocket.storage.Storage.persistent`
    persistent: bool = True
    #: as :attr:`repocket.storage.Storage.supports_ttl`
    supports_ttl: bool = False

    # -- I/O (see Storage for what each does) ------------------------------------

    @abc.abstractmethod
    async def save_record(self, write: RecordWrite) -> None:
        """:meth:`Storage.save_record <repocket.storage.Storage.save_record>`, awaited."""

    @abc.abstractmethod
    async def save_records(self, writes: Sequence[RecordWrite]) -> None:
        """:meth:`Storage.save_records <repocket.storage.Storage.save_records>`, awaited."""

    @abc.abstractmethod
    async def swap_field(self, swap: FieldSwap) -> str | bytes | None:
        """:meth:`Storage.swap_field <repocket.storage.Storage.swap_field>`, awaited."""

    @abc.abstractmethod
    async def load_records(self, requests: Sequence[LoadRequest]) -> list[StoredRecord | None]:
        """:meth:`Storage.load_records <repocket.storage.Storage.load_records>`, awaited."""

    @abc.abstractmethod
    async def load_record(
        self, collection: Collection, record_id: str, streams: Sequence[str] = ()
    ) -> StoredRecord | None:
        """:meth:`Storage.load_record <repocket.storage.Storage.load_record>`, awaited."""

    @abc.abstractmethod
    async def delete_record(
        self, collection: Collection, record_id: str, streams: Sequence[str]
    ) -> int:
        """:meth:`Storage.delete_record <repocket.storage.Storage.delete_record>`, awaited."""

    @abc.abstractmethod
    async def append_to_stream(
        self, collection: Collection, record_id: str, field: str, data: bytes
    ) -> int:
        """:meth:`Storage.append_to_stream <repocket.storage.Storage.append_to_stream>`,
        awaited."""

    @abc.abstractmethod
    async def query_ids(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[str]:
        """:meth:`Storage.query_ids <repocket.storage.Storage.query_ids>`, awaited."""

    @abc.abstractmethod
    async def query_ids_unless(
        self,
        collection: Collection,
        guard: Plan,
        plan: Plan,
        order: Order | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[str] | None:
        """:meth:`Storage.query_ids_unless <repocket.storage.Storage.query_ids_unless>`,
        awaited."""

    @abc.abstractmethod
    async def query_records(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None = None,
        offset: int = 0,
        limit: int | None = None,
        streams: Sequence[str] = (),
        guard: Plan | None = None,
    ) -> list[StoredRecord] | None:
        """:meth:`Storage.query_records <repocket.storage.Storage.query_records>`,
        awaited."""

    @abc.abstractmethod
    async def count_ids(self, collection: Collection, plan: Plan) -> int:
        """:meth:`Storage.count_ids <repocket.storage.Storage.count_ids>`, awaited."""

    @abc.abstractmethod
    async def count_ids_unless(self, collection: Collection, guard: Plan, plan: Plan) -> int | None:
        """:meth:`Storage.count_ids_unless <repocket.storage.Storage.count_ids_unless>`,
        awaited."""

    @abc.abstractmethod
    async def count_records(self, collection: Collection) -> int:
        """:meth:`Storage.count_records <repocket.storage.Storage.count_records>`, awaited."""

    @abc.abstractmethod
    async def read_index_entries(
        self, collection: Collection, record_ids: Sequence[str]
    ) -> list[tuple[frozenset[IndexEntry], frozenset[UniqueClaim]] | None]:
        """:meth:`Storage.read_index_entries
        <repocket.storage.Storage.read_index_entries>`, awaited."""

    @abc.abstractmethod
    async def missing_entries(
        self, collection: Collection, expected: Sequence[tuple[str, frozenset[IndexEntry]]]
    ) -> list[str]:
        """:meth:`Storage.missing_entries <repocket.storage.Storage.missing_entries>`,
        awaited."""

    @abc.abstractmethod
    async def drop_index(self, collection: Collection) -> None:
        """:meth:`Storage.drop_index <repocket.storage.Storage.drop_index>`, awaited."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """:meth:`Storage.clear <repocket.storage.Storage.clear>`, awaited."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """:meth:`Storage.ping <repocket.storage.Storage.ping>`, awaited."""

    @abc.abstractmethod
    async def set_expiry(
        self, collection: Collection, record_id: str, streams: Sequence[str], ttl: float | None
    ) -> bool:
        """:meth:`Storage.set_expiry <repocket.storage.Storage.set_expiry>`, awaited."""

    @abc.abstractmethod
    async def get_expiry(self, collection: Collection, record_id: str) -> float | None:
        """:meth:`Storage.get_expiry <repocket.storage.Storage.get_expiry>`, awaited."""

    @abc.abstractmethod
    async def expire_due(self, collection: Collection) -> int:
        """:meth:`Storage.expire_due <repocket.storage.Storage.expire_due>`, awaited."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Release what this storage holds (its async connections)."""

    # -- iterators ---------------------------------------------------------------

    @abc.abstractmethod
    def iter_stored_ids(self, collection: Collection, batch_size: int = 500) -> AsyncIterator[str]:
        """:meth:`Storage.iter_stored_ids <repocket.storage.Storage.iter_stored_ids>`, async."""

    @abc.abstractmethod
    def iter_query_ids(
        self, collection: Collection, plan: Plan, order: Order | None = None, batch_size: int = 500
    ) -> AsyncIterator[str]:
        """:meth:`Storage.iter_query_ids <repocket.storage.Storage.iter_query_ids>`, async."""

    @abc.abstractmethod
    def iter_query_records(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None = None,
        batch_size: int = 500,
        streams: Sequence[str] = (),
    ) -> AsyncIterator[list[StoredRecord]]:
        """:meth:`Storage.iter_query_records
        <repocket.storage.Storage.iter_query_records>`, async."""

    @abc.abstractmethod
    def iter_index_members(
        self, collection: Collection, batch_size: int = 500
    ) -> AsyncIterator[tuple[str, IndexEntry]]:
        """:meth:`Storage.iter_index_members
        <repocket.storage.Storage.iter_index_members>`, async."""

    @abc.abstractmethod
    def iter_stray_keys(self, collection: Collection, batch_size: int = 500) -> AsyncIterator[str]:
        """:meth:`Storage.iter_stray_keys <repocket.storage.Storage.iter_stray_keys>`, async."""

    @abc.abstractmethod
    def iter_claims(
        self, collection: Collection, batch_size: int = 500
    ) -> AsyncIterator[tuple[UniqueClaim, str]]:
        """:meth:`Storage.iter_claims <repocket.storage.Storage.iter_claims>`, async."""

    @abc.abstractmethod
    def iter_ids(self, collection: Collection, batch_size: int = 500) -> AsyncIterator[str]:
        """:meth:`Storage.iter_ids <repocket.storage.Storage.iter_ids>`, async."""

    # -- not I/O -------------------------------------------------------------------

    @abc.abstractmethod
    def record_key(self, collection: Collection, record_id: str) -> str:
        """:meth:`Storage.record_key <repocket.storage.Storage.record_key>`."""

    @abc.abstractmethod
    def stream_key(self, collection: Collection, record_id: str, field: str) -> str:
        """:meth:`Storage.stream_key <repocket.storage.Storage.stream_key>`."""

    @abc.abstractmethod
    def describe(self) -> str:
        """:meth:`Storage.describe <repocket.storage.Storage.describe>`."""


class _Wrapping(AsyncStorage):
    """An :class:`AsyncStorage` made from a sync :class:`Storage`: the
    non-I/O members are the storage's own; subclasses say how a call runs."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.atomic_saves = storage.atomic_saves
        self.persistent = storage.persistent
        self.supports_ttl = storage.supports_ttl

    def record_key(self, collection: Collection, record_id: str) -> str:
        return self.storage.record_key(collection, record_id)

    def stream_key(self, collection: Collection, record_id: str, field: str) -> str:
        return self.storage.stream_key(collection, record_id, field)

    def describe(self) -> str:
        return self.storage.describe()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.storage!r}>"


def _complete(cls: type[Any], call: Callable[[str], Any], iterate: Callable[[str], Any]) -> None:
    """Give ``cls`` every I/O method and iterator, each made by ``call`` /
    ``iterate`` from the method's name (one rule for all, no copy per method)."""
    for name in ASYNC_CALLS:
        setattr(cls, name, call(name))
    for name in ASYNC_ITERATORS:
        setattr(cls, name, iterate(name))
    abc.update_abstractmethods(cls)


class ThreadedAsyncStorage(_Wrapping):
    """Any sync :class:`~repocket.storage.Storage` as an :class:`AsyncStorage`:
    each call runs in a worker thread (``asyncio.to_thread``), so the event
    loop never waits on it.  Iterators hand over up to 500 items per thread
    hop.  The backend must accept calls from several threads (repocket's
    backends do)."""


def _threaded_call(name: str) -> Callable[..., Awaitable[Any]]:
    async def call(self: ThreadedAsyncStorage, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.storage, name), *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``Storage.{name}``, run in a worker thread."
    return call


def _threaded_iterator(name: str) -> Callable[..., AsyncIterator[Any]]:
    size = _handover(name)

    async def iterate(self: ThreadedAsyncStorage, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        iterator = await asyncio.to_thread(
            lambda: iter(getattr(self.storage, name)(*args, **kwargs))
        )
        try:
            while batch := await asyncio.to_thread(_take, iterator, size):
                for item in batch:
                    yield item
        finally:
            # stopped early (a break, a first()): the backend's iterator
            # releases what it holds (a cursor, a snapshot) in its own thread
            close = getattr(iterator, "close", None)
            if close is not None:
                await asyncio.to_thread(close)

    iterate.__name__ = iterate.__qualname__ = name
    iterate.__doc__ = f"``Storage.{name}``, advanced in a worker thread."
    return iterate


def _take(iterator: Iterator[Any], size: int) -> list[Any]:
    return list(itertools.islice(iterator, size))


def _handover(name: str) -> int:
    """How many items the iterator ``name`` hands over at once."""
    return 1 if name in _BATCH_ITERATORS else _ITERATOR_BATCH


_complete(ThreadedAsyncStorage, _threaded_call, _threaded_iterator)


class BridgedAsyncStorage(_Wrapping):
    """A sync :class:`~repocket.storage.Storage` whose client awaits (see
    :mod:`repocket.backends.redis_async`) as an :class:`AsyncStorage`: each
    call runs the storage's own code through :func:`~repocket.asyncbridge.run_sync`.

    :param close: awaited by :meth:`aclose` (the async client's close).
    """

    def __init__(self, storage: Storage, close: Callable[[], Awaitable[Any]] | None = None) -> None:
        super().__init__(storage)
        self._close = close

    async def aclose(self) -> None:
        if self._close is not None:
            await self._close()


def _bridged_call(name: str) -> Callable[..., Awaitable[Any]]:
    async def call(self: BridgedAsyncStorage, *args: Any, **kwargs: Any) -> Any:
        return await run_sync(getattr(self.storage, name), *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``Storage.{name}``, over the async client."
    return call


def _bridged_iterator(name: str) -> Callable[..., AsyncIterator[Any]]:
    size = _handover(name)

    async def iterate(self: BridgedAsyncStorage, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        iterator = iter(getattr(self.storage, name)(*args, **kwargs))  # a generator: no I/O yet
        try:
            while batch := await run_sync(_take, iterator, size):
                for item in batch:
                    yield item
        finally:
            # stopped early: the backend's generator cleans up (releases its
            # connection, removes a query's snapshot) through the bridge,
            # where its I/O can wait
            close = getattr(iterator, "close", None)
            if close is not None:
                await run_sync(close)

    iterate.__name__ = iterate.__qualname__ = name
    iterate.__doc__ = f"``Storage.{name}``, over the async client."
    return iterate


_complete(BridgedAsyncStorage, _bridged_call, _bridged_iterator)


class AwaitingStorage:
    """The model layer's view of an :class:`AsyncStorage` while it runs for
    async code: the :class:`~repocket.storage.Storage` methods, each waiting
    for the async one through :func:`~repocket.asyncbridge.await_only`."""

    def __init__(self, storage: AsyncStorage, native: Storage) -> None:
        self.async_storage = storage
        self.native = native
        self.atomic_saves = storage.atomic_saves
        self.persistent = storage.persistent
        self.supports_ttl = storage.supports_ttl

    @property
    def native_client(self) -> Any:
        """The sync storage's native client (for looking at raw data)."""
        return self.native.native_client

    def record_key(self, collection: Collection, record_id: str) -> str:
        """See :meth:`repocket.storage.Storage.record_key`."""
        return self.async_storage.record_key(collection, record_id)

    def stream_key(self, collection: Collection, record_id: str, field: str) -> str:
        """See :meth:`repocket.storage.Storage.stream_key`."""
        return self.async_storage.stream_key(collection, record_id, field)

    def describe(self) -> str:
        """See :meth:`repocket.storage.Storage.describe`."""
        return self.async_storage.describe()

    def __repr__(self) -> str:
        return f"<AwaitingStorage of {self.async_storage!r}>"


def _awaiting_call(name: str) -> Callable[..., Any]:
    def call(self: AwaitingStorage, *args: Any, **kwargs: Any) -> Any:
        return await_only(getattr(self.async_storage, name)(*args, **kwargs))

    call.__name__ = call.__qualname__ = name
    return call


def _awaiting_iterator(name: str) -> Callable[..., Iterator[Any]]:
    def iterate(self: AwaitingStorage, *args: Any, **kwargs: Any) -> Iterator[Any]:
        iterator = getattr(self.async_storage, name)(*args, **kwargs)
        try:
            while True:
                try:
                    item = await_only(iterator.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            close_async_iterator(iterator)

    iterate.__name__ = iterate.__qualname__ = name
    return iterate


for _name in ASYNC_CALLS:
    setattr(AwaitingStorage, _name, _awaiting_call(_name))
for _name in ASYNC_ITERATORS:
    setattr(AwaitingStorage, _name, _awaiting_iterator(_name))


def async_storage_for(storage: Storage) -> AsyncStorage:
    """The :class:`AsyncStorage` serving ``storage``'s data to async code:
    the backend's own (``storage.open_async()``) when it has one, else
    :class:`ThreadedAsyncStorage`.  Call it once per event loop."""
    opener = getattr(storage, "open_async", None)
    if opener is not None:
        opened: AsyncStorage = opener()
        return opened
    return ThreadedAsyncStorage(storage)  # type: ignore[abstract]  # completed by _complete()
