"""repocket's storage protocol on one SQLite file, through :mod:`sqlite3`.

Tables (created when missing)::

    records(collection, id, fields, indexed, expires_at)
                                                one row per record
    streams(collection, id, field, content)     one row per ByteStream holding data
    entries(collection, id, name, score)        the records' index entries
    claims(collection, field, term, id)         unique claims
    repocket_schema(key, value)                 the layout version

``collection`` is ``<model module>:<ModelName>``.  ``fields`` is a JSON object
of field name -> envelope text, stored exactly as the model layer encoded it.
``indexed`` says whether the record's entries and claims are in place (they
are after every save; :meth:`SQLiteStorage.drop_index` clears it).
``expires_at`` is when the record expires, in milliseconds since the epoch
(NULL: never).

The records table is the id index: every saved record is a row, so the ids of
a collection are read from it directly and it cannot go stale.  The *index
data* of a collection is its rows in ``entries`` and ``claims`` (and the
``indexed`` marks); ``Model.objects.reindex()`` rebuilds them from the records.

Every write is one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction, so a save
(fields, streams, entries and claims) is all or nothing, and writers from
several processes queue on SQLite's write lock (the database is put in WAL
journal mode, so readers never wait for them, and a busy timeout makes a
writer wait for the lock rather than fail).  Each write reads and checks what
it depends on (a create-only write's id, a conditional save's expected fields,
a field swap's expected text, unique claims, an appended stream's record)
inside its transaction, before writing anything: the write lock keeps what
was checked unchanged until ``COMMIT``, and a refused write leaves nothing
to undo.  Queries are translated into one SQL statement over the ``entries``
table and its indexes.

Expired records are gone at once, with their index data: every write
transaction first deletes the rows of its collections' records due by now
(the record, its streams, entries and claims), and every query reads in a
transaction that has first checked, through a partial index on
``expires_at``, that none of the collection's records is due -- and when
some are, deletes them in a write transaction first.  So what a query
counts or returns is exact at a moment during the call, and an expired
record never leaves index data behind for ``check()`` to find.  Loads read
the records table itself and skip rows whose time has passed.

Every :mod:`sqlite3` error is wrapped here, once, in a repocket error naming
the database file, with the original kept as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote

from repocket.errors import (
    BackendError,
    ConflictError,
    DoesNotExist,
    EnvelopeError,
    StorageConnectionError,
    StorageError,
    UniqueViolation,
)
from repocket.keys import Collection
from repocket.storage import (
    AllIds,
    Difference,
    FieldSwap,
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

__all__ = ["SQLiteStorage", "SQLiteURLError", "SCHEMA_VERSION", "MEMORY"]

#: The layout version written to ``repocket_schema``: 2 added
#: ``records.expires_at`` (a file of version 1 is upgraded when opened).
SCHEMA_VERSION = 2
#: The path that names a private in-memory database.
MEMORY = ":memory:"
#: Default seconds a statement waits for another connection's lock.
DEFAULT_TIMEOUT = 30.0
#: The oldest SQLite with everything used here (``INSERT ... ON CONFLICT DO UPDATE``).
MIN_SQLITE = (3, 24, 0)
#: How many values go in one ``IN (...)`` list (SQLite allows at least 999).
CHUNK = 400

_SCHEMA = """
CREATE TABLE IF NOT EXISTS repocket_schema (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    fields TEXT NOT NULL,
    indexed INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    PRIMARY KEY (collection, id)
);
CREATE TABLE IF NOT EXISTS streams (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    field TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (collection, id, field)
);
CREATE TABLE IF NOT EXISTS entries (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    score REAL,
    PRIMARY KEY (collection, name, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_score ON entries (collection, name, score, id);
CREATE INDEX IF NOT EXISTS entries_by_record ON entries (collection, id, name, score);
CREATE TABLE IF NOT EXISTS claims (
    collection TEXT NOT NULL,
    field TEXT NOT NULL,
    term TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (collection, field, term)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_by_record ON claims (collection, id);
"""

# Created after a version 1 file got its ``expires_at`` column.  Partial: it
# holds the expiring records only, so that finding the records due by now
# reads nothing in a collection where none expire.
_EXPIRY_INDEX = """
CREATE INDEX IF NOT EXISTS records_by_expiry ON records (collection, expires_at)
WHERE expires_at IS NOT NULL
"""

# Connections a forked child inherited from its parent.  They must never be
# used or closed in the child (closing one could checkpoint and remove the
# parent's WAL files), so they are kept referenced here for the child's life.
_inherited: list[sqlite3.Connection] = []


class _Handle:
    """One open connection, owned by the process (and thread) that opened it.

    A thread's handle lives in the storage's thread-local data: when the
    thread ends, the handle is collected and closes its connection, so
    short-lived threads do not leak connections.  A handle collected in a
    forked child leaves the parent's connection open (and referenced).
    """

    __slots__ = ("__weakref__", "conn", "generation", "pid")

    def __init__(self, conn: sqlite3.Connection, generation: int) -> None:
        self.conn: sqlite3.Connection | None = conn
        self.pid = os.getpid()
        self.generation = generation

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.pid == os.getpid():
            with contextlib.suppress(Exception):
                conn.close()
        else:
            _inherited.append(conn)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # e.g. at interpreter shutdown
            self.release()


class SQLiteURLError(BackendError, ValueError):
    """A ``sqlite://`` URL that does not name a database."""


def _collection_key(collection: Collection) -> str:
    return f"{collection.module}:{collection.name}"


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split a ``sqlite://`` URL into a database path and its query options.

    ``sqlite:///relative/path.db`` (three slashes: relative to the working
    directory), ``sqlite:////absolute/path.db`` (four), ``sqlite://:memory:``,
    ``sqlite:///:memory:`` or ``sqlite://`` (a private in-memory database).
    Percent-escapes in the path are decoded.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise SQLiteURLError(f"{url!r} is not a sqlite URL; use e.g. 'sqlite:///app.db'")
    rest, _, query = rest.partition("?")
    rest, _, _fragment = rest.partition("#")
    options = dict(parse_qsl(query, keep_blank_values=True))
    if rest in ("", MEMORY, "/", "/" + MEMORY):
        return MEMORY, options
    if not rest.startswith("/"):
        raise SQLiteURLError(
            f"{url!r} names a host ({rest.split('/')[0]!r}); a sqlite URL names a file: "
            f"'sqlite:///relative/path.db' or 'sqlite:////absolute/path.db'"
        )
    return unquote(rest[1:]), options


def _close_before_fork() -> None:
    for storage in list(_storages):
        with contextlib.suppress(Exception):
            storage._before_fork()


_storages: weakref.WeakSet[SQLiteStorage] = weakref.WeakSet()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_close_before_fork)


class SQLiteStorage(Storage):
    """Stores records in one SQLite database file.

    :param path: the database file (created when missing), or ``":memory:"``
        for a private in-memory database.
    :param timeout: seconds a statement waits for a lock held by another
        connection before failing (SQLite's busy timeout); 30 by default.
    :param journal_mode: ``PRAGMA journal_mode`` for a file (``"WAL"`` by
        default, which lets readers and one writer work at the same time).
    :param synchronous: ``PRAGMA synchronous`` (``"FULL"``, ``"NORMAL"``...);
        SQLite's default when not given.
    :param connect_options: passed on to :func:`sqlite3.connect`.

    Each thread gets its own connection (an in-memory database has one,
    shared under a lock); a child process made by ``fork`` opens its own
    instead of using its parent's.
    """

    scheme = "sqlite"
    atomic_saves = True
    persistent = True
    supports_ttl = True

    def __init__(
        self,
        path: str | os.PathLike[str] = MEMORY,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        journal_mode: str | None = "WAL",
        synchronous: str | None = None,
        **connect_options: Any,
    ) -> None:
        self.path = os.fspath(path)
        self.memory = self.path in (MEMORY, "")
        if not self.memory and not connect_options.get("uri"):
            # Every thread opens its own connection, perhaps later: a relative
            # path must keep naming the file it named when configured.
            self.path = os.path.abspath(self.path)
        self.timeout = float(timeout)
        self.journal_mode = journal_mode
        self.synchronous = synchronous
        for forced in ("isolation_level", "check_same_thread"):
            connect_options.pop(forced, None)
        self._connect_options = connect_options
        self._local = threading.local()
        self._shared_lock = threading.RLock()
        self._registry_lock = threading.Lock()
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._generation = 0
        self._shared: _Handle | None = None
        _storages.add(self)

    def _before_fork(self) -> None:
        """Close the forking thread's idle connection, so that the child
        starts with no SQLite state for this file (SQLite must not carry an
        open connection across fork); it reopens on next use."""
        handle: _Handle | None = getattr(self._local, "handle", None)
        if handle is not None and handle.conn is not None and not handle.conn.in_transaction:
            self._local.handle = None
            handle.release()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStorage:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``.

        Query parameters (``?timeout=5&synchronous=NORMAL``) and ``options``
        become constructor arguments; ``options`` win.
        """
        path, query = parse_url(url)
        merged: dict[str, Any] = dict(query)
        if "timeout" in merged:
            try:
                merged["timeout"] = float(merged["timeout"])
            except ValueError as exc:
                raise SQLiteURLError(f"{url!r}: timeout must be a number of seconds") from exc
        merged.update(options)
        return cls(path, **merged)

    # -- connections ---------------------------------------------------------------------

    def describe(self) -> str:
        if self.memory:
            return "SQLite in-memory database"
        return f"SQLite database {self.path!r}"

    @property
    def native_client(self) -> sqlite3.Connection:
        """The calling thread's :class:`sqlite3.Connection` (opened if needed)."""
        conn: sqlite3.Connection
        with self._errors("connect"), self._connection() as conn:
            pass
        return conn

    def _open(self) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StorageError(
                f"repocket-sqlite needs SQLite {'.'.join(map(str, MIN_SQLITE))} or later; "
                f"this Python's sqlite3 module uses SQLite {sqlite3.sqlite_version}"
            )
        conn: sqlite3.Connection = sqlite3.connect(
            self.path if not self.memory else MEMORY,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
            **self._connect_options,
        )
        try:
            if self.journal_mode and not self.memory:
                self._set_journal_mode(conn, _pragma_word(self.journal_mode))
            if self.synchronous:
                conn.execute(f"PRAGMA synchronous = {_pragma_word(self.synchronous)}")
            self._create_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_journal_mode(self, conn: sqlite3.Connection, mode: str) -> None:
        """Switch the file's journal mode, unless it is in that mode already.

        Changing it takes an exclusive lock, and SQLite answers "database is
        locked" at once, without its busy timeout, when another connection
        opening the same new file holds the lock: so wait and retry, for at
        most the busy timeout.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            current = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(current).lower() == mode.lower():
                return
            try:
                conn.execute(f"PRAGMA journal_mode = {mode}")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Create the tables when missing, or upgrade a file of an older layout
        (a read when the file is up to date, one write transaction otherwise).

        Version 1 files lack ``records.expires_at``: the column is added
        (NULL: none of their records expires) with its index.  The upgrade
        is checked again under the write lock, so processes opening an old
        file at once upgrade it once.
        """
        with contextlib.suppress(sqlite3.OperationalError):  # no such table
            row = conn.execute("SELECT value FROM repocket_schema WHERE key = 'version'").fetchone()
            if row is not None and row[0] == str(SCHEMA_VERSION):
                return
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = None
            with contextlib.suppress(sqlite3.OperationalError):  # no such table
                row = conn.execute(
                    "SELECT value FROM repocket_schema WHERE key = 'version'"
                ).fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.describe()} holds repocket-sqlite layout version {row[0]}; this "
                    f"version of repocket-sqlite reads version {SCHEMA_VERSION} only; upgrade it"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {info[1] for info in conn.execute("PRAGMA table_info(records)")}
            if "expires_at" not in columns:  # a version 1 file
                conn.execute("ALTER TABLE records ADD COLUMN expires_at INTEGER")
            conn.execute(_EXPIRY_INDEX)
            conn.execute(
                "INSERT INTO repocket_schema (key, value) VALUES ('version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _usable(self, handle: _Handle | None) -> bool:
        return (
            handle is not None
            and handle.conn is not None
            and handle.pid == os.getpid()
            and handle.generation == self._generation
        )

    def _new_handle(self) -> _Handle:
        handle = _Handle(self._open(), self._generation)
        with self._registry_lock:
            self._handles.add(handle)
        return handle

    @contextlib.contextmanager
    def _handle(self) -> Iterator[_Handle]:
        """The handle to use now: the thread's own, or the shared one under its lock."""
        if self.memory:
            with self._shared_lock:
                shared = self._shared
                if shared is None or not self._usable(shared):
                    if shared is not None:
                        shared.release()
                    shared = self._shared = self._new_handle()
                yield shared
            return
        handle: _Handle | None = getattr(self._local, "handle", None)
        if not self._usable(handle):
            if handle is not None and handle.pid != os.getpid():
                handle.release()  # inherited through fork: set aside, never used
            handle = self._local.handle = self._new_handle()
        assert handle is not None
        yield handle

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._handle() as handle:
            assert handle.conn is not None
            yield handle.conn

    def close(self) -> None:
        """Close every connection this process opened; later use opens new ones."""
        with self._registry_lock:
            handles = list(self._handles)
            self._handles = weakref.WeakSet()
            self._generation += 1
        for handle in handles:
            handle.release()
        with self._shared_lock:
            self._shared = None

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Wrap sqlite3 errors once, naming the file and what was being done."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "unable to open" in text:
                raise StorageConnectionError(
                    f"cannot open {self.describe()} while trying to {action}: {text}"
                ) from exc
            if "locked" in text or "busy" in text:
                raise StorageError(
                    f"{self.describe()} stayed locked by another connection for more than "
                    f"{self.timeout:g} s while trying to {action}: {text}"
                ) from exc
            raise StorageError(f"{self.describe()} failed to {action}: {text}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"{self.describe()} failed to {action}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(
        self, action: str, immediate: bool = True, prune: Iterable[str] = ()
    ) -> Iterator[sqlite3.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` (writes) or ``BEGIN`` (a consistent read).

        :param prune: collections (as stored) whose records due by now are
            deleted first, with their streams, entries and claims, so that
            nothing the transaction reads or checks includes them.
        """
        with self._errors(action), self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                if prune:
                    now = _now_ms()
                    for key in sorted(set(prune)):
                        _prune(conn, key, now)
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    @contextlib.contextmanager
    def _reading(self, action: str, key: str) -> Iterator[sqlite3.Connection]:
        """A read transaction in which no record of collection ``key`` is due
        to expire: its queries see no expired record and no index data one
        left.  Records found due are deleted first, in a write transaction
        (taken only then, so reads do not queue behind writers otherwise)."""
        with self._errors(action), self._connection() as conn:
            _begin_read(conn, key)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    # -- writing -------------------------------------------------------------------------

    def save_record(self, write: RecordWrite) -> None:
        """Save one record in one write transaction, checks first; see
        :meth:`Storage.save_record <repocket.storage.Storage.save_record>`."""
        record_key = self.record_key(write.collection, write.record_id)
        key = _collection_key(write.collection)
        with self._transaction(f"save {record_key}", prune=[key]) as conn:
            _apply_write(conn, write, record_key)

    def save_records(self, writes: Sequence[RecordWrite]) -> None:
        """Save all the records in one transaction: all of them, or none (a
        write refused by its checks rolls the whole batch back)."""
        if not writes:
            return
        keys = [_collection_key(write.collection) for write in writes]
        with self._transaction(f"save {len(writes)} record(s)", prune=keys) as conn:
            for write in writes:
                _apply_write(conn, write, self.record_key(write.collection, write.record_id))

    def swap_field(self, swap: FieldSwap) -> str | bytes | None:
        """Compare-and-set one field, with its entries and claims, in one write
        transaction; see :meth:`Storage.swap_field <repocket.storage.Storage.swap_field>`.

        A record that lacks the field does not hold ``swap.expected``: the
        answer is then ``""`` (no envelope), as there is no text to give back.
        """
        record_key = self.record_key(swap.collection, swap.record_id)
        key = _collection_key(swap.collection)
        action = f"change field {swap.field!r} of {record_key}"
        with self._transaction(action, prune=[key]) as conn:
            return _apply_swap(conn, swap, record_key)

    def delete_record(self, collection: Collection, record_id: str, streams: Sequence[str]) -> int:
        """Delete the record's row, its streams, entries and claims.

        :returns: 1 for the record plus one per stream that held data (like
            the number of keys the redis backend removes); streams of fields
            not in ``streams`` are removed too, but not counted.
        """
        key = _collection_key(collection)
        with self._transaction(f"delete {collection.record_key(record_id)}", prune=[key]) as conn:
            removed = conn.execute(
                "DELETE FROM records WHERE collection = ? AND id = ?", (key, record_id)
            ).rowcount
            if streams:
                names = list(streams)
                removed += conn.execute(
                    f"SELECT count(*) FROM streams WHERE collection = ? AND id = ? "
                    f"AND length(content) > 0 AND field IN ({_marks(len(names))})",
                    (key, record_id, *names),
                ).fetchone()[0]
            conn.execute("DELETE FROM streams WHERE collection = ? AND id = ?", (key, record_id))
            conn.execute("DELETE FROM entries WHERE collection = ? AND id = ?", (key, record_id))
            conn.execute("DELETE FROM claims WHERE collection = ? AND id = ?", (key, record_id))
        return int(removed)

    def append_to_stream(
        self, collection: Collection, record_id: str, field: str, data: bytes
    ) -> int:
        """Append in one write transaction that first checks the record exists
        (a read transaction when ``data`` is empty: nothing to write).

        :raises DoesNotExist: the record does not exist; nothing is written.
        """
        key = _collection_key(collection)
        stream_key = self.stream_key(collection, record_id, field)
        length = "SELECT length(content) FROM streams WHERE collection = ? AND id = ? AND field = ?"
        transaction = (
            self._transaction(f"append to {stream_key}", prune=[key])
            if data
            else self._reading(f"read the length of {stream_key}", key)
        )
        with transaction as conn:
            # Checked under the write lock, so that a record deleted by another
            # process cannot get a stream back between this check and the write.
            if not _record_exists(conn, key, record_id):
                raise DoesNotExist(
                    f"cannot append to {stream_key}: {collection.label} record "
                    f"{record_id!r} does not exist"
                )
            if not data:
                row = conn.execute(length, (key, record_id, field)).fetchone()
                return int(row[0]) if row else 0
            conn.execute(
                "INSERT INTO streams (collection, id, field, content) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (collection, id, field) "
                "DO UPDATE SET content = CAST(content || excluded.content AS BLOB)",
                (key, record_id, field, bytes(data)),
            )
            row = conn.execute(length, (key, record_id, field)).fetchone()
            return int(row[0])

    # -- reading -------------------------------------------------------------------------

    def load_records(self, requests: Sequence[LoadRequest]) -> list[StoredRecord | None]:
        """Load every requested record in one read transaction (a consistent
        snapshot); a record whose time has passed is not found."""
        if not requests:
            return []
        wanted: dict[str, set[str]] = {}
        stream_names: dict[str, set[str]] = {}
        for request in requests:
            key = _collection_key(request.collection)
            wanted.setdefault(key, set()).add(request.record_id)
            stream_names.setdefault(key, set()).update(request.streams)
        fields: dict[tuple[str, str], str] = {}
        contents: dict[tuple[str, str, str], bytes] = {}
        with self._transaction(f"load {len(requests)} record(s)", immediate=False) as conn:
            now = _now_ms()
            for key, ids in wanted.items():
                for chunk in _chunks(sorted(ids)):
                    for record_id, text in conn.execute(
                        f"SELECT id, fields FROM records WHERE collection = ? "
                        f"AND id IN ({_marks(len(chunk))}) AND {_ALIVE}",
                        (key, *chunk, now),
                    ):
                        fields[key, record_id] = text
                    names = sorted(stream_names[key])
                    if not names:
                        continue
                    for record_id, name, content in conn.execute(
                        f"SELECT id, field, content FROM streams WHERE collection = ? "
                        f"AND id IN ({_marks(len(chunk))}) "
                        f"AND field IN ({_marks(len(names))})",
                        (key, *chunk, *names),
                    ):
                        contents[key, record_id, name] = bytes(content)
        results: list[StoredRecord | None] = []
        for request in requests:
            key = _collection_key(request.collection)
            text = fields.get((key, request.record_id))
            values = (
                _parse_fields(text, request.collection, request.record_id)
                if text is not None
                else {}
            )
            if not values:
                results.append(None)
                continue
            results.append(
                StoredRecord(
                    request.record_id,
                    values,
                    {
                        name: contents.get((key, request.record_id, name), b"")
                        for name in request.streams
                    },
                )
            )
        return results

    def query_ids(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[str]:
        if limit == 0:
            return []
        key = _collection_key(collection)
        sql, params = _ordered_sql(key, plan, order)
        sql += " LIMIT :limit OFFSET :offset"
        params.update(limit=-1 if limit is None else limit, offset=max(offset, 0))
        with self._reading(f"query {collection.label}", key) as conn:
            return [row[0] for row in conn.execute(sql, params)]

    def count_ids(self, collection: Collection, plan: Plan) -> int:
        key = _collection_key(collection)
        sql, params = _count_sql(key, plan)
        with self._reading(f"count {collection.label}", key) as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    def iter_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        """Every id, in id order, a page at a time, each page starting after the
        last id read: no id is yielded twice, however records change meanwhile."""
        key = _collection_key(collection)
        after: str | None = None
        while True:
            with self._reading(f"read the ids of {collection.label}", key) as conn:
                if after is None:
                    page = [
                        row[0]
                        for row in conn.execute(
                            "SELECT id FROM records WHERE collection = ? ORDER BY id LIMIT ?",
                            (key, batch_size),
                        )
                    ]
                else:
                    page = [
                        row[0]
                        for row in conn.execute(
                            "SELECT id FROM records WHERE collection = ? AND id > ? "
                            "ORDER BY id LIMIT ?",
                            (key, after, batch_size),
                        )
                    ]
            yield from page
            if len(page) < batch_size:
                return
            after = page[-1]

    def iter_query_ids(
        self, collection: Collection, plan: Plan, order: Order | None = None, batch_size: int = 500
    ) -> Iterator[str]:
        """Iterate a snapshot of the result, taken when iteration starts.

        The first page is read directly; when there may be more, the ordered
        result is kept in a temporary table of the connection (never written
        to the database file), read a page at a time and dropped at the end.
        """
        if isinstance(plan, AllIds) and order is None:
            yield from self.iter_ids(collection, batch_size)
            return
        key = _collection_key(collection)
        sql, params = _ordered_sql(key, plan, order)
        with self._reading(f"query {collection.label}", key) as conn:
            first = [
                row[0]
                for row in conn.execute(f"{sql} LIMIT :limit", {**params, "limit": batch_size + 1})
            ]
        if len(first) <= batch_size:
            yield from first
            return
        table = f"temp.repocket_snapshot_{uuid.uuid4().hex}"
        with (
            self._errors(f"query {collection.label}"),
            self._handle() as handle,
            self._reading(f"query {collection.label}", key) as snapshot,
        ):
            # in the handle's transaction: rolled back (table and all) on failure
            snapshot.execute(f"CREATE TABLE {table} (position INTEGER PRIMARY KEY, id TEXT)")
            snapshot.execute(f"INSERT INTO {table} (id) {sql}", params)
        # The snapshot lives in this handle's connection: keep using it (and
        # keep it alive) whichever thread goes on iterating.
        try:
            position = 0
            while True:
                with (
                    self._errors(f"read the results of a query on {collection.label}"),
                    self._lock_for(handle) as conn,
                ):
                    page = [
                        row[0]
                        for row in conn.execute(
                            f"SELECT id FROM {table} WHERE position > ? ORDER BY position LIMIT ?",
                            (position, batch_size),
                        )
                    ]
                yield from page
                if len(page) < batch_size:
                    return
                position += len(page)
        finally:
            with contextlib.suppress(sqlite3.Error), self._lock_for(handle) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")

    @contextlib.contextmanager
    def _lock_for(self, handle: _Handle) -> Iterator[sqlite3.Connection]:
        """A handle's connection, under the shared lock for an in-memory database."""
        with self._shared_lock if self.memory else contextlib.nullcontext():
            if handle.conn is None:
                raise sqlite3.ProgrammingError("the storage was closed during the iteration")
            yield handle.conn

    # -- index maintenance -------------------------------------------------------------

    def iter_stored_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        """The ids of the records table, which is where records are stored."""
        return self.iter_ids(collection, batch_size)

    def read_index_entries(
        self, collection: Collection, record_ids: Sequence[str]
    ) -> list[tuple[frozenset[IndexEntry], frozenset[UniqueClaim]] | None]:
        if not record_ids:
            return []
        key = _collection_key(collection)
        indexed: set[str] = set()
        entries: dict[str, set[IndexEntry]] = {}
        claims: dict[str, set[UniqueClaim]] = {}
        with self._reading(f"read index entries of {collection.label}", key) as conn:
            for chunk in _chunks(sorted(set(record_ids))):
                marks = _marks(len(chunk))
                indexed.update(
                    row[0]
                    for row in conn.execute(
                        f"SELECT id FROM records WHERE collection = ? AND indexed "
                        f"AND id IN ({marks})",
                        (key, *chunk),
                    )
                )
                for record_id, name, score in conn.execute(
                    f"SELECT id, name, score FROM entries WHERE collection = ? AND id IN ({marks})",
                    (key, *chunk),
                ):
                    entries.setdefault(record_id, set()).add(IndexEntry(name, score))
                for record_id, field, term in conn.execute(
                    f"SELECT id, field, term FROM claims WHERE collection = ? AND id IN ({marks})",
                    (key, *chunk),
                ):
                    claims.setdefault(record_id, set()).add(UniqueClaim(field, term))
        return [
            (frozenset(entries.get(i, ())), frozenset(claims.get(i, ()))) if i in indexed else None
            for i in record_ids
        ]

    def drop_index(self, collection: Collection) -> None:
        """Remove the collection's entries and claims and mark its records unindexed.

        The records (and so the list of ids) stay: they are the storage.
        """
        key = _collection_key(collection)
        with self._transaction(f"drop the index of {collection.label}", prune=[key]) as conn:
            conn.execute("DELETE FROM entries WHERE collection = ?", (key,))
            conn.execute("DELETE FROM claims WHERE collection = ?", (key,))
            conn.execute("UPDATE records SET indexed = 0 WHERE collection = ? AND indexed", (key,))

    def clear(self) -> None:
        with self._transaction("clear repocket data") as conn:
            for table in ("records", "streams", "entries", "claims"):
                conn.execute(f"DELETE FROM {table}")

    def ping(self) -> None:
        with self._errors("ping"), self._connection() as conn:
            conn.execute("SELECT 1").fetchone()

    # -- expiry --------------------------------------------------------------------------

    def set_expiry(
        self, collection: Collection, record_id: str, streams: Sequence[str], ttl: float | None
    ) -> bool:
        """Set (or, with ``None``, remove) the record's ``expires_at``, in one
        write transaction.  Its streams are rows of the record and go with it,
        so ``streams`` is not needed here.

        :returns: whether the record exists (an expired one does not).
        """
        key = _collection_key(collection)
        action = f"set the expiry of {collection.record_key(record_id)}"
        with self._transaction(action, prune=[key]) as conn:
            at = None if ttl is None else _now_ms() + _ttl_ms(ttl)
            updated = conn.execute(
                "UPDATE records SET expires_at = ? WHERE collection = ? AND id = ?",
                (at, key, record_id),
            ).rowcount
        return bool(updated)

    def get_expiry(self, collection: Collection, record_id: str) -> float | None:
        """The seconds left before the record expires (``None``: never).

        :raises DoesNotExist: the record does not exist or has expired.
        """
        key = _collection_key(collection)
        record_key = collection.record_key(record_id)
        with self._errors(f"read the expiry of {record_key}"), self._connection() as conn:
            row = conn.execute(
                "SELECT expires_at FROM records WHERE collection = ? AND id = ?", (key, record_id)
            ).fetchone()
        now = _now_ms()
        if row is None or (row[0] is not None and row[0] <= now):
            raise DoesNotExist(f"{collection.label} {record_id} does not exist ({record_key})")
        return None if row[0] is None else (row[0] - now) / 1000

    def expire_due(self, collection: Collection) -> int:
        """Delete the collection's records due by now, with their streams,
        entries and claims (queries and writes do it first too).

        :returns: how many records were deleted.
        """
        key = _collection_key(collection)
        with self._errors(f"remove the expired records of {collection.label}"):
            with self._connection() as conn:
                if not _due(conn, key, _now_ms()):
                    return 0  # no write lock needed
            with self._transaction(f"remove the expired records of {collection.label}") as conn:
                return _prune(conn, key, _now_ms())


# ---------------------------------------------------------------------------
# expiry
# ---------------------------------------------------------------------------

#: The condition a record's row meets until it expires (one parameter: now).
_ALIVE = "(expires_at IS NULL OR expires_at > ?)"


def _now_ms() -> int:
    """Now, in milliseconds since the epoch: the clock of ``expires_at``."""
    return int(time.time() * 1000)


def _ttl_ms(seconds: float) -> int:
    """A time to live in whole milliseconds (at least 1), as redis keeps it."""
    return max(1, math.ceil(seconds * 1000))


def _due(conn: sqlite3.Connection, key: str, now: int) -> bool:
    """Whether a record of the collection is due by ``now`` (through the
    partial expiry index: no work in a collection where none expire)."""
    return (
        conn.execute(
            "SELECT 1 FROM records WHERE collection = ? AND expires_at IS NOT NULL "
            "AND expires_at <= ? LIMIT 1",
            (key, now),
        ).fetchone()
        is not None
    )


def _prune(conn: sqlite3.Connection, key: str, now: int) -> int:
    """Delete the collection's records due by ``now`` with their streams,
    entries and claims, inside the caller's write transaction; returns how
    many records were deleted."""
    due = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM records WHERE collection = ? AND expires_at IS NOT NULL "
            "AND expires_at <= ?",
            (key, now),
        )
    ]
    for chunk in _chunks(due):
        for table in ("entries", "claims", "streams", "records"):
            conn.execute(
                f"DELETE FROM {table} WHERE collection = ? AND id IN ({_marks(len(chunk))})",
                (key, *chunk),
            )
    return len(due)


def _begin_read(conn: sqlite3.Connection, key: str) -> None:
    """Begin a read transaction in which no record of the collection is due.

    Its snapshot holds no record due at the moment checked, so every record
    it holds was alive then, with its index data: what the transaction reads
    is exact at that moment.  When records are due, they are deleted first
    in a write transaction, and the check is made again at the moment of
    that deletion (so it passes, unless another writer's clock is behind).
    """
    now = None
    while True:
        conn.execute("BEGIN")
        try:
            if not _due(conn, key, _now_ms() if now is None else now):
                return
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            now = _now_ms()
            _prune(conn, key, now)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------


def _apply_write(conn: sqlite3.Connection, write: RecordWrite, record_key: str) -> None:
    """Apply one RecordWrite inside the caller's write transaction.

    Every check (create-only, expected fields, claims) comes before the first
    write, so a refused write raises with nothing to undo; the caller's
    transaction is rolled back all the same.
    """
    key = _collection_key(write.collection)
    record_id = write.record_id
    row = conn.execute(
        "SELECT fields FROM records WHERE collection = ? AND id = ?", (key, record_id)
    ).fetchone()
    stored = _parse_fields(row[0], write.collection, record_id) if row is not None else None
    if write.new and stored is not None:
        if _same_fields(stored, write.fields):
            # This very write was applied before and its reply was lost.  Not
            # applying it again keeps bytes appended to its streams since.
            return
        raise ConflictError(
            f"cannot create {write.collection.label} record {record_id!r}: a record with "
            f"that id exists already, with other fields; nothing was written",
            key=record_key,
        )
    if write.expected is not None:
        if stored is None:
            raise ConflictError(
                f"{write.collection.label} record {record_id!r} was deleted since it was "
                f"read; nothing was written",
                key=record_key,
            )
        if not _same_fields(stored, write.expected):
            raise ConflictError(
                f"{write.collection.label} record {record_id!r} changed since it was read "
                f"(fields {', '.join(map(repr, _differing(stored, write.expected)))}); "
                f"nothing was written",
                key=record_key,
            )
    _check_claims(conn, write.collection, record_id, write.unique)
    for name, content in write.streams.items():
        if content:
            conn.execute(
                "INSERT INTO streams (collection, id, field, content) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (collection, id, field) DO UPDATE SET content = excluded.content",
                (key, record_id, name, bytes(content)),
            )
        else:
            conn.execute(
                "DELETE FROM streams WHERE collection = ? AND id = ? AND field = ?",
                (key, record_id, name),
            )
    if stored is None and not write.fields:
        # An index-only write (reindex) of a record deleted meanwhile: there
        # is nothing to index, and indexing it would bring back its id.
        return
    # Fields not named in the write are kept, as the record's other fields are.
    merged = {name: _text(value) for name, value in (stored or {}).items()}
    merged.update((name, _text(value)) for name, value in write.fields.items())
    # Without a ttl, a stored record keeps its expiry and a new one has none.
    expires_at = None if write.ttl is None else _now_ms() + _ttl_ms(write.ttl)
    conn.execute(
        "INSERT INTO records (collection, id, fields, indexed, expires_at) "
        "VALUES (?, ?, ?, 1, ?) "
        "ON CONFLICT (collection, id) DO UPDATE SET fields = excluded.fields, indexed = 1, "
        "expires_at = coalesce(excluded.expires_at, records.expires_at)",
        (key, record_id, json.dumps(merged, sort_keys=True), expires_at),
    )
    _replace_entries(conn, key, record_id, write.entries)
    _replace_claims(conn, write.collection, record_id, write.unique)


def _apply_swap(conn: sqlite3.Connection, swap: FieldSwap, record_key: str) -> str | bytes | None:
    """Apply one FieldSwap inside the caller's write transaction: checks first,
    then the field, the entries and the claims."""
    key = _collection_key(swap.collection)
    record_id = swap.record_id
    row = conn.execute(
        "SELECT fields FROM records WHERE collection = ? AND id = ?", (key, record_id)
    ).fetchone()
    if row is None:
        raise DoesNotExist(
            f"cannot change field {swap.field!r} of {record_key}: {swap.collection.label} "
            f"record {record_id!r} does not exist"
        )
    stored = _parse_fields(row[0], swap.collection, record_id)
    current = stored.get(swap.field)
    if current is None:
        return ""
    if _text(current) != _text(swap.expected):
        return current
    _check_claims(conn, swap.collection, record_id, swap.claim)
    values = {name: _text(value) for name, value in stored.items()}
    values[swap.field] = _text(swap.value)
    conn.execute(
        "UPDATE records SET fields = ? WHERE collection = ? AND id = ?",
        (json.dumps(values, sort_keys=True), key, record_id),
    )
    # A record has one entry per name: an entry whose score changes is in
    # both sets, so removing by name before adding moves it.
    for chunk in _chunks(sorted({entry.name for entry in swap.remove})):
        conn.execute(
            f"DELETE FROM entries WHERE collection = ? AND id = ? "
            f"AND name IN ({_marks(len(chunk))})",
            (key, record_id, *chunk),
        )
    if swap.add:
        conn.executemany(
            "INSERT INTO entries (collection, id, name, score) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (collection, name, id) DO UPDATE SET score = excluded.score",
            [(key, record_id, entry.name, entry.score) for entry in sorted(swap.add, key=_by_name)],
        )
    for claim in sorted(swap.release):
        conn.execute(  # only this record's: a claim another record took stays its own
            "DELETE FROM claims WHERE collection = ? AND field = ? AND term = ? AND id = ?",
            (key, claim.field, claim.term, record_id),
        )
    held = _claims_of(conn, key, record_id)
    for claim in sorted(swap.claim - held):
        _insert_claim(conn, swap.collection, record_id, claim)
    return None


def _record_exists(conn: sqlite3.Connection, key: str, record_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM records WHERE collection = ? AND id = ?", (key, record_id)
        ).fetchone()
        is not None
    )


def _same_fields(stored: Mapping[str, str | bytes], wanted: Mapping[str, str | bytes]) -> bool:
    """Whether stored fields are exactly ``wanted``: the same names, the same texts
    (a text given as bytes equals the same text given as ``str``)."""
    return not _differing(stored, wanted)


def _differing(stored: Mapping[str, str | bytes], wanted: Mapping[str, str | bytes]) -> list[str]:
    """The names of the fields that are missing, extra or different, sorted."""
    return sorted(
        name
        for name in {*stored, *wanted}
        if name not in stored or name not in wanted or _text(stored[name]) != _text(wanted[name])
    )


def _check_claims(
    conn: sqlite3.Connection, collection: Collection, record_id: str, claims: Iterable[UniqueClaim]
) -> None:
    """Raise UniqueViolation if another record holds one of ``claims``."""
    key = _collection_key(collection)
    for claim in sorted(claims):
        row = conn.execute(
            "SELECT id FROM claims WHERE collection = ? AND field = ? AND term = ?",
            (key, claim.field, claim.term),
        ).fetchone()
        if row is not None and row[0] != record_id:
            raise _violation(collection, claim, row[0])


def _violation(collection: Collection, claim: UniqueClaim, other: str | None) -> UniqueViolation:
    holder = f"record {other}" if other is not None else "another record"
    return UniqueViolation(
        f"{collection.label}.{claim.field} must be unique; {holder} already holds that value",
        claim=claim,
        other_id=other,
        field=claim.field,
    )


def _claims_of(conn: sqlite3.Connection, key: str, record_id: str) -> set[UniqueClaim]:
    return {
        UniqueClaim(field, term)
        for field, term in conn.execute(
            "SELECT field, term FROM claims WHERE collection = ? AND id = ?", (key, record_id)
        )
    }


def _insert_claim(
    conn: sqlite3.Connection, collection: Collection, record_id: str, claim: UniqueClaim
) -> None:
    """Take a claim checked free earlier in the same transaction.

    A plain INSERT lets the primary key refuse a claim another writer holds,
    rather than silently taking it over.
    """
    key = _collection_key(collection)
    try:
        conn.execute(
            "INSERT INTO claims (collection, field, term, id) VALUES (?, ?, ?, ?)",
            (key, claim.field, claim.term, record_id),
        )
    except sqlite3.IntegrityError as exc:
        row = conn.execute(
            "SELECT id FROM claims WHERE collection = ? AND field = ? AND term = ?",
            (key, claim.field, claim.term),
        ).fetchone()
        raise _violation(collection, claim, row[0] if row is not None else None) from exc


def _replace_entries(
    conn: sqlite3.Connection, key: str, record_id: str, entries: frozenset[IndexEntry]
) -> None:
    new = {entry.name: entry.score for entry in entries}
    old = dict(
        conn.execute(
            "SELECT name, score FROM entries WHERE collection = ? AND id = ?", (key, record_id)
        ).fetchall()
    )
    stale = [name for name in old if name not in new]
    for chunk in _chunks(stale):
        conn.execute(
            f"DELETE FROM entries WHERE collection = ? AND id = ? "
            f"AND name IN ({_marks(len(chunk))})",
            (key, record_id, *chunk),
        )
    changed = [
        (key, record_id, name, score)
        for name, score in new.items()
        if name not in old or not _same_score(old[name], score)
    ]
    if changed:
        conn.executemany(
            "INSERT INTO entries (collection, id, name, score) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (collection, name, id) DO UPDATE SET score = excluded.score",
            changed,
        )


def _replace_claims(
    conn: sqlite3.Connection, collection: Collection, record_id: str, claims: frozenset[UniqueClaim]
) -> None:
    key = _collection_key(collection)
    old = _claims_of(conn, key, record_id)
    for claim in old - claims:
        conn.execute(
            "DELETE FROM claims WHERE collection = ? AND field = ? AND term = ?",
            (key, claim.field, claim.term),
        )
    for claim in sorted(claims - old):
        _insert_claim(conn, collection, record_id, claim)


def _by_name(entry: IndexEntry) -> str:
    return entry.name


def _same_score(stored: float | None, score: float | None) -> bool:
    if stored is None or score is None:
        return stored is None and score is None
    return float(stored) == float(score)


# ---------------------------------------------------------------------------
# queries
# ---------------------------------------------------------------------------


#: At most this many terms go in one compound SELECT (SQLite allows 500).
COMPOUND_TERMS = 100


class _Compiler:
    """Translates a plan tree into one flat SQL statement.

    Leaves become simple ``SELECT id FROM entries WHERE ...`` terms; each
    combination becomes a named common table expression (``WITH tN AS
    (<term> UNION <term> ...)``) that its parent reads as ``SELECT id FROM
    tN``.  However deep the plan, the statement never nests parentheses
    (SQLite's parser has a small stack), and no compound has more than
    :data:`COMPOUND_TERMS` terms.  Parameters are named, so the collection is
    bound once.
    """

    def __init__(self, key: str) -> None:
        self.params: dict[str, Any] = {"c": key}
        self.ctes: list[str] = []

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def cte(self, body: str) -> str:
        name = f"t{len(self.ctes)}"
        self.ctes.append(f"{name} AS ({body})")
        return f"SELECT id FROM {name}"

    def statement(self, body: str) -> str:
        return f"WITH {', '.join(self.ctes)} {body}" if self.ctes else body

    def term(self, plan: Plan) -> str:
        """A simple SELECT of the plan's ids (each once), usable as a compound's term."""
        if isinstance(plan, AllIds):
            return "SELECT id FROM records WHERE collection = :c"
        if isinstance(plan, Members):
            return (
                f"SELECT id FROM entries WHERE collection = :c AND name = {self.param(plan.name)}"
            )
        if isinstance(plan, ScoreRange):
            low = ">" if plan.low_open else ">="
            high = "<" if plan.high_open else "<="
            return (
                f"SELECT id FROM entries WHERE collection = :c AND name = {self.param(plan.name)} "
                f"AND score {low} {self.param(float(plan.low))} "
                f"AND score {high} {self.param(float(plan.high))}"
            )
        if isinstance(plan, Union):
            names = [part.name for part in plan.parts if isinstance(part, Members)]
            terms = [self.members(names)] if names else []
            terms += [self.term(part) for part in plan.parts if not isinstance(part, Members)]
            return self.combine(terms, "UNION")
        if isinstance(plan, Intersection):
            # Index entries only exist for stored records, so within an
            # intersection AllIds adds nothing, and "X and not M" (a ``__ne``
            # lookup: Difference(AllIds, M)) is X EXCEPT M, which reads M's
            # entries rather than every record.
            parts = [part for part in plan.parts if not isinstance(part, AllIds)]
            negated = [
                part.minus
                for part in parts
                if isinstance(part, Difference) and isinstance(part.base, AllIds)
            ]
            positive = [
                part
                for part in parts
                if not (isinstance(part, Difference) and isinstance(part.base, AllIds))
            ]
            if positive and negated:
                base = self.combine([self.term(part) for part in positive], "INTERSECT")
                minus = self.term(negated[0] if len(negated) == 1 else Union(tuple(negated)))
                return self.cte(f"{base} EXCEPT {minus}")
            if len(parts) < len(plan.parts) and not parts:
                parts = [AllIds()]
            return self.combine([self.term(part) for part in parts], "INTERSECT")
        if isinstance(plan, Difference):
            return self.cte(f"{self.term(plan.base)} EXCEPT {self.term(plan.minus)}")
        raise TypeError(f"unknown query plan node {plan!r}")

    def members(self, names: list[str]) -> str:
        """The ids filed under any of several membership entries: one indexed lookup."""
        if len(names) == 1:
            return self.term(Members(names[0]))
        if len(names) <= CHUNK:
            values = ", ".join(self.param(name) for name in names)
        else:  # any number of names in one parameter
            values = f"SELECT value FROM json_each({self.param(json.dumps(names))})"
        # INDEXED BY: without statistics, SQLite would rather walk every entry of
        # the collection in id order (entries_by_record) to make them distinct.
        return (
            f"SELECT DISTINCT id FROM entries INDEXED BY entries_by_score "
            f"WHERE collection = :c AND name IN ({values})"
        )

    def combine(self, terms: list[str], operator: str) -> str:
        if not terms:
            return "SELECT id FROM records WHERE 0"
        if len(terms) == 1:
            return terms[0]
        while len(terms) > COMPOUND_TERMS:
            terms = [
                self.cte(f" {operator} ".join(terms[start : start + COMPOUND_TERMS]))
                for start in range(0, len(terms), COMPOUND_TERMS)
            ]
        return self.cte(f" {operator} ".join(terms))


def _count_sql(key: str, plan: Plan) -> tuple[str, dict[str, Any]]:
    """``SELECT count(*)`` of the plan's ids."""
    compiler = _Compiler(key)
    term = compiler.term(plan)
    return compiler.statement(f"SELECT count(*) FROM ({term})"), compiler.params


def _ordered_sql(key: str, plan: Plan, order: Order | None) -> tuple[str, dict[str, Any]]:
    """The plan's ids, sorted by id, or by the order index's score with ties by id
    in the same direction (so that a descending sort reads the index backwards)."""
    compiler = _Compiler(key)
    if order is None:
        term = compiler.term(plan)
        return compiler.statement(f"SELECT id FROM ({term}) ORDER BY id"), compiler.params
    direction = "DESC" if order.descending else "ASC"
    name = compiler.param(order.name)
    if isinstance(plan, AllIds):
        # Every record has an entry in the order index: read the index alone.
        return (
            f"SELECT id FROM entries WHERE collection = :c AND name = {name} "
            f"ORDER BY score {direction}, id {direction}",
            compiler.params,
        )
    term = compiler.term(plan)
    return (
        compiler.statement(
            f"SELECT result.id FROM ({term}) AS result JOIN entries AS sorter "
            f"ON sorter.collection = :c AND sorter.name = {name} AND sorter.id = result.id "
            f"ORDER BY sorter.score {direction}, result.id {direction}"
        ),
        compiler.params,
    )


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _parse_fields(text: str, collection: Collection, record_id: str) -> Mapping[str, str | bytes]:
    """The envelope texts of a stored ``fields`` column.

    A value that is not text is handed on as its JSON text, so that the
    envelope decoder reports it with the record's key and the field's name.

    :raises EnvelopeError: the column is not a JSON object.
    """
    key = collection.record_key(record_id)
    try:
        values = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(
            f"the stored fields of {key} are not a JSON object: {exc}", key=key
        ) from exc
    if not isinstance(values, dict):
        raise EnvelopeError(
            f"the stored fields of {key} are not a JSON object but a {type(values).__name__}",
            key=key,
        )
    return {
        str(name): _stored_text(value) if isinstance(value, str) else json.dumps(value)
        for name, value in values.items()
    }


def _stored_text(value: str) -> str | bytes:
    """A field text as it was given: bytes that were not UTF-8 come back as those bytes."""
    if value.isascii():  # every envelope repocket writes
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        with contextlib.suppress(UnicodeEncodeError):
            return value.encode("utf-8", "surrogateescape")
    return value


def _text(value: str | bytes) -> str:
    """A field text to store; bytes that are not UTF-8 are kept with surrogate escapes."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _pragma_word(value: str) -> str:
    if not value.replace("_", "").isalnum():
        raise SQLiteURLError(f"{value!r} is not a valid PRAGMA value")
    return value
