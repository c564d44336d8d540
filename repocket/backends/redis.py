"""The redis backend (redis-py): repocket's primary storage.

Layout (see :mod:`repocket.keys`): each record is a hash of envelope texts,
each ByteStream a string grown with ``APPEND``, and each model has an id index,
a sorted set of its record ids (all scores 0, so ids are in lexical order),
read page by page with ``ZRANGEBYLEX``: that never returns an id twice, unlike
``SSCAN``, and never blocks the server, unlike ``KEYS``.

Every operation is one round trip: writes are one ``MULTI``/``EXEC``
transaction (hash, streams and index together, all or nothing), reads one
pipeline.  Every redis-py error is wrapped here, once, in a repocket error
naming the server, with the original kept as ``__cause__``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import redis
import redis.exceptions

from ..errors import StorageConnectionError, StorageError
from ..keys import PREFIX, Collection
from ..storage import LoadRequest, RecordWrite, Storage, StoredRecord

__all__ = ["RedisStorage"]

_IDS = "ids"


class RedisStorage(Storage):
    """Stores records in a redis server (or anything speaking its protocol).

    :param client: an existing ``redis.Redis``; it must not decode responses.
    :param options: when no client is given, passed to ``redis.Redis``
        (``host``, ``port``, ``db``, ``username``, ``password``, ``ssl``...).
    """

    scheme = "redis"
    atomic_saves = True
    persistent = True

    def __init__(self, client: redis.Redis | None = None, **options: Any) -> None:
        if client is None:
            options = {k: v for k, v in options.items() if v is not None}
            options.setdefault("decode_responses", False)
            client = redis.Redis(**options)
        self._client = client

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStorage:
        """``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS),
        or ``unix:///path/to/redis.sock[?db=N]``; ``options`` go to redis-py."""
        options.setdefault("decode_responses", False)
        return cls(redis.Redis.from_url(url, **options))

    @property
    def native_client(self) -> redis.Redis:
        """The ``redis.Redis`` client in use."""
        return self._client

    def describe(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        if kwargs.get("path"):
            where = f"unix socket {kwargs['path']}"
        else:
            where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        return f"redis at {where} (db {kwargs.get('db', 0)})"

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Wrap redis-py errors once, naming the server and what was being done."""
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StorageConnectionError(
                f"cannot reach {self.describe()} while trying to {action}: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise StorageError(f"{self.describe()} failed to {action}: {exc}") from exc

    # -- Storage protocol ---------------------------------------------------------

    def save_record(self, write: RecordWrite) -> None:
        collection, record_id = write.collection, write.record_id
        key = collection.record_key(record_id)
        with self._errors(f"save {key}"):
            pipe = self._client.pipeline(transaction=True)
            if write.fields:
                pipe.hset(key, mapping=dict(write.fields))
            for name, content in write.streams.items():
                stream_key = collection.stream_key(record_id, name)
                if content:
                    pipe.set(stream_key, content)
                else:
                    pipe.delete(stream_key)
            pipe.zadd(collection.meta_key(_IDS), {record_id: 0})
            pipe.execute()

    def load_records(self, requests: Sequence[LoadRequest]) -> list[StoredRecord | None]:
        if not requests:
            return []
        with self._errors(f"load {len(requests)} record(s)"):
            pipe = self._client.pipeline(transaction=False)
            for request in requests:
                pipe.hgetall(request.collection.record_key(request.record_id))
                for name in request.streams:
                    pipe.get(request.collection.stream_key(request.record_id, name))
            replies = iter(pipe.execute())
        results: list[StoredRecord | None] = []
        for request in requests:
            fields = next(replies)
            streams = {name: next(replies) or b"" for name in request.streams}
            if not fields:
                results.append(None)
                continue
            results.append(StoredRecord(
                request.record_id,
                {_text(name): value for name, value in fields.items()},
                streams))
        return results

    def delete_record(self, collection: Collection, record_id: str,
                      streams: Sequence[str]) -> int:
        key = collection.record_key(record_id)
        with self._errors(f"delete {key}"):
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(key, *(collection.stream_key(record_id, name) for name in streams))
            pipe.zrem(collection.meta_key(_IDS), record_id)
            removed, _ = pipe.execute()
        return int(removed)

    def append_to_stream(self, collection: Collection, record_id: str,
                         field: str, data: bytes) -> int:
        key = collection.stream_key(record_id, field)
        with self._errors(f"append to {key}"):
            return int(self._client.append(key, data))

    def iter_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        index = collection.meta_key(_IDS)
        start = b"-"
        while True:
            with self._errors(f"read the ids of {collection.label}"):
                page = self._client.zrangebylex(index, start, b"+", start=0, num=batch_size)
            for record_id in page:
                yield _text(record_id)
            if len(page) < batch_size:
                return
            start = b"(" + page[-1]

    def count_records(self, collection: Collection) -> int:
        with self._errors(f"count {collection.label}"):
            return int(self._client.zcard(collection.meta_key(_IDS)))

    def clear(self) -> None:
        with self._errors("clear repocket data"):
            # Record keys and meta keys ("repocket::...") both match.
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=f"{PREFIX}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)

    def ping(self) -> None:
        with self._errors("ping"):
            self._client.ping()

    def close(self) -> None:
        self._client.close()


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value

