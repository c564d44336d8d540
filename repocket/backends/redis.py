"""The redis backend (redis-py): repocket's primary storage.

Layout (all names from :mod:`repocket.keys`):

* each record is a hash of envelope texts; each ByteStream a string grown
  with ``APPEND``;
* ``repocket::ids:<module>:<Model>``: a sorted set of every record id (all
  scores 0, so ids are in lexical order), paged with ``ZRANGEBYLEX``, which
  never returns an id twice (unlike ``SSCAN``) and never blocks the server
  (unlike ``KEYS``);
* ``repocket::index:<module>:<Model>:<entry name>``: a set of ids for each
  membership entry, a sorted set of ids for each sorted entry;
* ``repocket::terms:<module>:<Model>:<id>``: the entries and claims the
  record was last saved with, so that an update removes exactly the entries
  it no longer has;
* ``repocket::unique:<module>:<Model>``: a hash ``<field>:<term>`` -> id.

Writes are atomic.  A save that may replace an earlier version reads the
record's remembered entries under ``WATCH`` (one round trip) and applies
everything in one ``MULTI``/``EXEC`` (a second); a brand-new record with no
unique fields needs only the ``MULTI``/``EXEC``.  If another client changes the
record in between, ``EXEC`` aborts and the save starts again.

Queries run in one ``MULTI``/``EXEC``: the plan becomes ``ZINTERSTORE``,
``ZUNIONSTORE``, ``ZDIFFSTORE`` and ``ZRANGESTORE`` steps over temporary keys
that the same transaction deletes, so the server's work is proportional to
the index data the query touches, never to the number of records.

Every redis-py error is wrapped here, once, in a repocket error naming the
server, with the original kept as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import redis
import redis.exceptions

from ..errors import ConflictError, StorageConnectionError, StorageError, UniqueViolation
from ..keys import PREFIX, STREAM_INFIX, Collection
from ..storage import (
    AllIds,
    Difference,
    IndexEntry,
    Intersection,
    LoadRequest,
    Members,
    Order,
    Plan,
    RecordWrite,
    ScoreRange,
    Storage,
    StoredRecord,
    Union,
    UniqueClaim,
)

__all__ = ["RedisStorage"]

#: How often a write is retried when concurrent writers keep changing the record.
MAX_WRITE_ATTEMPTS = 50
#: How long (ms) a query snapshot being iterated stays alive between pages.
SNAPSHOT_TTL_MS = 10 * 60 * 1000


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
                f"cannot reach {self.describe()} while trying to {action}: {exc}"
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise StorageError(f"{self.describe()} failed to {action}: {exc}") from exc

    # -- writing -------------------------------------------------------------------

    def save_record(self, write: RecordWrite) -> None:
        key = write.collection.record_key(write.record_id)
        with self._errors(f"save {key}"):
            if write.new and not write.unique:
                pipe = self._client.pipeline(transaction=True)
                self._queue_write(pipe, write, frozenset(), frozenset())
                pipe.execute()
                return
            self._watched_write(
                write.collection,
                write.record_id,
                write.unique,
                lambda pipe, entries, claims: self._queue_write(pipe, write, entries, claims),
            )

    def save_records(self, writes: Sequence[RecordWrite]) -> None:
        """New records without unique claims go in one transaction; others one by one."""
        batch = [w for w in writes if w.new and not w.unique]
        if batch:
            with self._errors(f"save {len(batch)} records"):
                pipe = self._client.pipeline(transaction=True)
                for write in batch:
                    self._queue_write(pipe, write, frozenset(), frozenset())
                pipe.execute()
        for write in writes:
            if not (write.new and not write.unique):
                self.save_record(write)

    def delete_record(self, collection: Collection, record_id: str, streams: Sequence[str]) -> int:
        key = collection.record_key(record_id)
        keys = [key, *(collection.stream_key(record_id, name) for name in streams)]
        with self._errors(f"delete {key}"):
            replies = self._watched_write(
                collection,
                record_id,
                frozenset(),
                lambda pipe, entries, claims: self._queue_delete(
                    pipe, collection, record_id, keys, entries, claims
                ),
            )
        return int(replies[0])

    def append_to_stream(
        self, collection: Collection, record_id: str, field: str, data: bytes
    ) -> int:
        key = collection.stream_key(record_id, field)
        with self._errors(f"append to {key}"):
            if not data:
                # APPEND would create an empty key, which delete() would then
                # count as a stream holding data.
                return int(self._client.strlen(key))
            return int(self._client.append(key, data))

    def _queue_write(
        self,
        pipe: Any,
        write: RecordWrite,
        old_entries: frozenset[IndexEntry],
        old_claims: frozenset[UniqueClaim],
    ) -> None:
        collection, record_id = write.collection, write.record_id
        if write.fields:
            pipe.hset(collection.record_key(record_id), mapping=dict(write.fields))
        for name, content in write.streams.items():
            stream_key = collection.stream_key(record_id, name)
            if content:
                pipe.set(stream_key, content)
            else:
                pipe.delete(stream_key)
        pipe.zadd(collection.ids_key, {record_id: 0})
        new_entries = write.entries
        for entry in old_entries - new_entries:
            _queue_remove_entry(pipe, collection, record_id, entry)
        for entry in new_entries - old_entries:
            index_key = collection.index_key(entry.name)
            if entry.score is None:
                pipe.sadd(index_key, record_id)
            else:
                pipe.zadd(index_key, {record_id: entry.score})
        stale = [_claim_field(c) for c in old_claims - write.unique]
        if stale:
            pipe.hdel(collection.unique_key, *stale)
        if write.unique:
            pipe.hset(
                collection.unique_key, mapping={_claim_field(c): record_id for c in write.unique}
            )
        pipe.set(collection.terms_key(record_id), _dump_terms(new_entries, write.unique))

    def _queue_delete(
        self,
        pipe: Any,
        collection: Collection,
        record_id: str,
        keys: list[str],
        entries: frozenset[IndexEntry],
        claims: frozenset[UniqueClaim],
    ) -> None:
        pipe.delete(*keys)
        for entry in entries:
            _queue_remove_entry(pipe, collection, record_id, entry)
        if claims:
            pipe.hdel(collection.unique_key, *(_claim_field(c) for c in claims))
        pipe.delete(collection.terms_key(record_id))
        pipe.zrem(collection.ids_key, record_id)

    def _watched_write(
        self, collection: Collection, record_id: str, claims: frozenset[UniqueClaim], queue: Any
    ) -> list[Any]:
        """Read the record's remembered entries under WATCH, then queue and EXEC.

        Two round trips: WATCH + reads pipelined on one connection, then
        MULTI ... EXEC.  Retried when a concurrent write aborts the EXEC.
        """
        terms_key = collection.terms_key(record_id)
        claim_fields = [_claim_field(c) for c in sorted(claims)]
        watched = [terms_key] + ([collection.unique_key] if claims else [])
        for _ in range(MAX_WRITE_ATTEMPTS):
            with self._client.pipeline(transaction=True) as pipe:
                # redis-py runs commands at once after watch(); we want WATCH
                # and the reads in one round trip, so send them together on the
                # pipeline's connection.
                replies = _send_on_watched_connection(
                    pipe,
                    [
                        ("WATCH", *watched),
                        ("GET", terms_key),
                        *([("HMGET", collection.unique_key, *claim_fields)] if claims else []),
                    ],
                )
                old_entries, old_claims = _load_terms(replies[1])
                if claims:
                    for claim, owner in zip(sorted(claims), replies[2], strict=True):
                        if owner is not None and owner.decode() != record_id:
                            pipe.reset()  # sends UNWATCH
                            raise UniqueViolation(
                                f"{collection.label}.{claim.field} must be unique; "
                                f"record {owner.decode()} already holds that value",
                                claim=claim,
                                other_id=owner.decode(),
                                field=claim.field,
                            )
                pipe.multi()
                queue(pipe, old_entries, old_claims)
                try:
                    return list(pipe.execute())
                except redis.exceptions.WatchError:
                    continue
        raise ConflictError(
            f"gave up writing {collection.record_key(record_id)} after "
            f"{MAX_WRITE_ATTEMPTS} attempts: other clients kept changing it"
        )

    # -- reading -------------------------------------------------------------------

    def load_records(self, requests: Sequence[LoadRequest]) -> list[StoredRecord | None]:
        if not requests:
            return []
        if len(requests) == 1 and not requests[0].streams:
            # one command needs no pipeline (which costs a little per use)
            request = requests[0]
            with self._errors(f"load {request.collection.record_key(request.record_id)}"):
                fields = self._client.hgetall(request.collection.record_key(request.record_id))
            if not fields:
                return [None]
            return [
                StoredRecord(
                    request.record_id, {_text(name): value for name, value in fields.items()}, {}
                )
            ]
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
            results.append(
                StoredRecord(
                    request.record_id,
                    {_text(name): value for name, value in fields.items()},
                    streams,
                )
            )
        return results

    def iter_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        index = collection.ids_key
        start = b"-"
        while True:
            with self._errors(f"read the ids of {collection.label}"):
                page = self._client.zrangebylex(index, start, b"+", start=0, num=batch_size)
            for record_id in page:
                yield _text(record_id)
            if len(page) < batch_size:
                return
            start = b"(" + _bytes(page[-1])

    def count_records(self, collection: Collection) -> int:
        with self._errors(f"count {collection.label}"):
            return int(self._client.zcard(collection.ids_key))

    def query_ids(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[str]:
        stop = -1 if limit is None else offset + limit - 1
        if limit == 0:
            return []
        with self._errors(f"query {collection.label}"):
            direct = _direct_order(collection, plan, order)
            if direct is not None:
                # read the page straight from the order index: no copies
                key, low, high = direct
                assert order is not None
                if order.descending:
                    low, high = high, low
                page: Any = self._client.zrange(
                    key,
                    low,
                    high,
                    desc=order.descending,
                    byscore=True,
                    offset=offset,
                    num=-1 if limit is None else limit,
                )
                return [_text(member) for member in page]
            pipe = self._client.pipeline(transaction=True)
            temps: list[str] = []
            ordered, reverse = self._ordered(pipe, collection, plan, order, temps)
            pipe.zrange(ordered, offset, stop, desc=reverse)
            if temps:
                pipe.unlink(*temps)
            replies = pipe.execute()
        return [_text(member) for member in replies[-2 if temps else -1]]

    def count_ids(self, collection: Collection, plan: Plan) -> int:
        with self._errors(f"count {collection.label}"):
            if isinstance(plan, AllIds):
                return int(self._client.zcard(collection.ids_key))
            if isinstance(plan, Members):
                return int(self._client.scard(collection.index_key(plan.name)))
            pipe = self._client.pipeline(transaction=True)
            temps: list[str] = []
            result = self._evaluate(pipe, collection, plan, temps)
            pipe.zcard(result)
            pipe.unlink(*temps)
            return int(pipe.execute()[-2])

    def iter_query_ids(
        self, collection: Collection, plan: Plan, order: Order | None = None, batch_size: int = 500
    ) -> Iterator[str]:
        """Iterate a snapshot of the result, taken when iteration starts.

        The ordered result is left in a temporary key that each round trip
        reads the next ``batch_size`` ids from and removes them; redis drops
        the key when it is empty, so a result of one batch costs one round
        trip and leaves nothing behind.  The key's lifetime is renewed with
        every batch, and an abandoned iteration's key is deleted (or expires).
        """
        if isinstance(plan, AllIds) and order is None:
            yield from self.iter_ids(collection, batch_size)
            return
        snapshot = collection.temp_key(uuid.uuid4().hex)
        with self._errors(f"query {collection.label}"):
            pipe = self._client.pipeline(transaction=True)
            temps: list[str] = []
            direct = _direct_order(collection, plan, order)
            if direct is not None:
                key, low, high = direct
                pipe.zrangestore(snapshot, key, low, high, byscore=True)
                reverse = order is not None and order.descending
            else:
                # the snapshot takes the order index's scores (or 0 for id order)
                source = self._evaluate(pipe, collection, plan, temps)
                weights = {source: 0}
                if order is not None:
                    weights[collection.index_key(order.name)] = 1
                pipe.zinterstore(snapshot, weights)
                reverse = order is not None and order.descending
            if temps:
                pipe.unlink(*temps)
            self._queue_take(pipe, snapshot, batch_size, reverse)
            replies = pipe.execute()
        total, page = int(replies[-4]), replies[-3]
        taken = len(page)
        try:
            yield from (_text(member) for member in page)
            while taken < total:
                with self._errors(f"read the results of a query on {collection.label}"):
                    pipe = self._client.pipeline(transaction=True)
                    self._queue_take(pipe, snapshot, batch_size, reverse)
                    _, page, _, _ = pipe.execute()
                if not page:
                    raise StorageError(
                        f"the results of a query on {collection.label} expired while being "
                        f"iterated (more than {SNAPSHOT_TTL_MS // 1000} s between batches)"
                    )
                taken += len(page)
                yield from (_text(member) for member in page)
        finally:
            if taken < total:  # abandoned early: drop what is left
                with contextlib.suppress(redis.exceptions.RedisError):
                    self._client.delete(snapshot)

    @staticmethod
    def _queue_take(pipe: Any, snapshot: str, batch_size: int, reverse: bool) -> None:
        """Queue: size, next page (from the top when ``reverse``), remove that
        page, renew the lifetime."""
        pipe.zcard(snapshot)
        pipe.zrange(snapshot, 0, batch_size - 1, desc=reverse)
        if reverse:
            pipe.zremrangebyrank(snapshot, -batch_size, -1)
        else:
            pipe.zremrangebyrank(snapshot, 0, batch_size - 1)
        pipe.pexpire(snapshot, SNAPSHOT_TTL_MS)

    def _ordered(
        self, pipe: Any, collection: Collection, plan: Plan, order: Order | None, temps: list[str]
    ) -> tuple[str, bool]:
        """Queue steps leaving the plan's ids in a sorted set; return it and
        whether to read it from the top (descending order)."""
        source = self._evaluate(pipe, collection, plan, temps)
        if order is None and isinstance(plan, AllIds):
            return source, False  # already all scores 0
        target = collection.temp_key(uuid.uuid4().hex)
        temps.append(target)
        if order is None:
            # weight 0: every score 0, so ids come in lexical order
            pipe.zinterstore(target, {source: 0})
            return target, False
        # the order index's score on every id of the result; redis visits the
        # smaller input, so this costs the size of the result, not the model
        pipe.zinterstore(target, {source: 0, collection.index_key(order.name): 1})
        return target, order.descending

    def _evaluate(self, pipe: Any, collection: Collection, plan: Plan, temps: list[str]) -> str:
        """Queue the steps computing a plan; return the key holding its ids."""
        if isinstance(plan, AllIds):
            return collection.ids_key
        if isinstance(plan, Members):
            return collection.index_key(plan.name)
        target = collection.temp_key(uuid.uuid4().hex)
        if isinstance(plan, ScoreRange):
            low = _bound(plan.low, plan.low_open)
            high = _bound(plan.high, plan.high_open)
            pipe.zrangestore(target, collection.index_key(plan.name), low, high, byscore=True)
        elif isinstance(plan, (Union, Intersection)):
            parts = [self._evaluate(pipe, collection, part, temps) for part in plan.parts]
            if not parts:
                pipe.delete(target)
            elif isinstance(plan, Union):
                pipe.zunionstore(target, parts, aggregate="MIN")
            else:
                pipe.zinterstore(target, parts, aggregate="MIN")
        elif isinstance(plan, Difference):
            base = self._evaluate(pipe, collection, plan.base, temps)
            minus = self._evaluate(pipe, collection, plan.minus, temps)
            pipe.zdiffstore(target, [base, minus])
        else:
            raise TypeError(f"unknown query plan node {plan!r}")
        temps.append(target)
        return target

    # -- index maintenance -----------------------------------------------------------

    def iter_stored_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        with self._errors(f"scan the records of {collection.label}"):
            for key in self._client.scan_iter(match=collection.record_pattern, count=batch_size):
                text = _text(key)
                if STREAM_INFIX not in text:
                    yield text[len(collection.prefix) + 1 :]

    def read_index_entries(
        self, collection: Collection, record_ids: Sequence[str]
    ) -> list[tuple[frozenset[IndexEntry], frozenset[UniqueClaim]] | None]:
        if not record_ids:
            return []
        with self._errors(f"read index entries of {collection.label}"):
            raw = self._client.mget([collection.terms_key(i) for i in record_ids])
        return [_load_terms(_bytes(item)) if item is not None else None for item in raw]

    def drop_index(self, collection: Collection) -> None:
        with self._errors(f"drop the index of {collection.label}"):
            for pattern in collection.meta_patterns:
                self._unlink_matching(pattern)

    def clear(self) -> None:
        with self._errors("clear repocket data"):
            # Record keys and meta keys ("repocket::...") both match.
            self._unlink_matching(f"{PREFIX}:*")

    def _unlink_matching(self, pattern: str) -> None:
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=pattern, count=1000):
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


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _send_on_watched_connection(pipe: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send commands in one round trip on the pipeline's own connection.

    The pipeline keeps the connection (and so the WATCH) until it is reset,
    and is then in "watching" state, ready for ``multi()``.
    """
    pipe.watching = True  # keep the connection pinned, as pipe.watch() would
    if pipe.connection is None:
        pipe.connection = pipe.connection_pool.get_connection()
    connection = pipe.connection
    try:
        connection.send_packed_command(connection.pack_commands(commands))
        replies = []
        error: Exception | None = None
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis.exceptions.ResponseError as exc:
                error = error or exc
                replies.append(None)
    except BaseException:
        connection.disconnect()
        raise
    if error is not None:
        raise error
    return replies


def _direct_order(
    collection: Collection, plan: Plan, order: Order | None
) -> tuple[str, str, str] | None:
    """``(key, low, high)`` when an ordered plan can be read straight from
    the order index: every record, or a score range of that same index."""
    if order is None:
        return None
    key = collection.index_key(order.name)
    if isinstance(plan, AllIds):
        return key, "-inf", "+inf"
    if isinstance(plan, ScoreRange) and plan.name == order.name:
        return key, _bound(plan.low, plan.low_open), _bound(plan.high, plan.high_open)
    return None


def _queue_remove_entry(
    pipe: Any, collection: Collection, record_id: str, entry: IndexEntry
) -> None:
    if entry.score is None:
        pipe.srem(collection.index_key(entry.name), record_id)
    else:
        pipe.zrem(collection.index_key(entry.name), record_id)


def _claim_field(claim: UniqueClaim) -> str:
    return f"{claim.field}:{claim.term}"


def _dump_terms(entries: frozenset[IndexEntry], claims: frozenset[UniqueClaim]) -> str:
    return json.dumps(
        {
            "entries": [[e.name, e.score] for e in sorted(entries, key=lambda e: e.name)],
            "unique": [[c.field, c.term] for c in sorted(claims)],
        }
    )


def _load_terms(raw: bytes | None) -> tuple[frozenset[IndexEntry], frozenset[UniqueClaim]]:
    if raw is None:
        return frozenset(), frozenset()
    data = json.loads(raw)
    return (
        frozenset(IndexEntry(name, score) for name, score in data["entries"]),
        frozenset(UniqueClaim(name, term) for name, term in data["unique"]),
    )


def _bound(value: float, open_: bool) -> str:
    if value == float("inf"):
        text = "+inf"
    elif value == float("-inf"):
        text = "-inf"
    else:
        text = repr(float(value))
    return f"({text}" if open_ else text


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
