"""The redis backend (redis-py): repocket's primary storage.

Layout (all names from :mod:`repocket.keys`; shown for one shard, ``S = 1``):

* each record is a hash of envelope texts, ``repocket:<module>:<Model>:<id>``;
  each ByteStream a string grown with ``APPEND``;
* ``repocket::ids:<module>:<Model>``: a sorted set of every record id (all
  scores 0, so ids are in lexical order), paged with ``ZRANGEBYLEX``, which
  never returns an id twice (unlike ``SSCAN``) and never blocks the server
  (unlike ``KEYS``);
* ``repocket::index:<module>:<Model>:<entry name>``: a set of ids for each
  membership entry, a sorted set of ids for each sorted entry;
* ``repocket::terms:<module>:<Model>``: one hash, record id -> the entries
  and claims the record was last saved with, so that an update removes
  exactly the entries it no longer has;
* ``repocket::unique:<module>:<Model>``: a hash ``<field>:<term>`` -> id.

With ``S > 1`` shards (``RedisStorage(shards=S)`` or ``?shards=S`` in the URL)
the record and shard keys carry the hash tag ``{<module>:<Model>:<n>}``; see
:mod:`repocket.keys`.  Every dataset must always be opened with the number of
shards it was written with.

Writes are one command each: save, delete, append and compare-and-set are
server-side scripts (:mod:`repocket.backends.scripts`) run with ``EVALSHA``,
loaded again transparently after a server restart or ``SCRIPT FLUSH``.  A
batch of saves is one pipeline of scripts.

Queries run in one ``MULTI``/``EXEC``: the plan becomes ``ZINTERSTORE``,
``ZUNIONSTORE``, ``ZDIFFSTORE`` and ``ZRANGESTORE`` steps over temporary keys
that the same transaction deletes, so the server's work is proportional to
the index data the query touches, never to the number of records.  With
several shards the same steps run on every shard, in the same round trip,
and the pages are merged.

Every redis-py error is wrapped here, once, in a repocket error naming the
server and the operation, with the original kept as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import heapq
import itertools
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, cast, overload
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.connection
import redis.exceptions
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from ..async_storage import AsyncStorage
from ..errors import (
    ConfigurationError,
    ConflictError,
    DoesNotExist,
    StorageConnectionError,
    StorageError,
    UniqueViolation,
)
from ..keys import PREFIX, STREAM_INFIX, Collection
from ..registry import model_for_collection
from ..storage import (
    AllIds,
    ByteNamedFields,
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
    redact_secrets,
    redact_url,
)
from ..text import as_text
from . import scripts
from .layout import (
    Shard,
    glob_escape,
    meta_patterns,
    shard_number,
    shards_of,
    unique_key,
)

__all__ = ["RedisStorage"]

_T = TypeVar("_T")

#: How many records one bulk save script writes (bulk_create sends one
#: script per such chunk, all in one round trip).
SAVE_BATCH = 100

#: How long (ms) a query snapshot being iterated stays alive between pages.
SNAPSHOT_TTL_MS = 10 * 60 * 1000

# Timeouts and retries (docs/reliability.rst, "Timeouts and retries").  Each
# is a default: an option of the same name given to RedisStorage, from_url,
# the URL's query or configure.connection_pool wins.

#: Seconds to wait for a TCP connection to be established.
CONNECT_TIMEOUT_S = 2.0
#: Seconds to wait for any reply (or for a send to be accepted).
SOCKET_TIMEOUT_S = 5.0
#: A pooled connection idle for more than this many seconds is PINGed first.
HEALTH_CHECK_INTERVAL_S = 30
#: How many times a read is sent again after a connection error or timeout.
READ_RETRIES = 2
#: The backoff before resending a read: a random wait of up to
#: ``min(cap, base * 2**n)`` seconds before the n-th resend.
RETRY_BACKOFF_BASE_S = 0.1
RETRY_BACKOFF_CAP_S = 1.0

#: What repocket is doing may be sent again (set by RedisStorage._errors).
_RESEND_OK: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "repocket_redis_resend_ok", default=False
)


class _ReadRetry(Retry):
    """redis-py's ``Retry``, resending only while repocket runs a read.

    redis-py resends any command that failed on a connection error or a
    timeout, including an ``EVALSHA`` the server may have run already; with
    this policy a command sent outside a resend-safe operation (a write, or a
    command sent through ``native_client``) fails at once instead.
    """

    _once: Retry | None = None  # the no-resend policy, made on first use

    def call_with_retry(
        self,
        do: Callable[[], _T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> _T:
        if _RESEND_OK.get():
            return super().call_with_retry(do, fail, is_retryable, with_failure_count)
        # no resend, but the same clean-up: fail() drops the broken connection.
        # Made once (every write passes here), again only if redis-py changed
        # the errors this policy handles.
        once = self._once
        if once is None or once._supported_errors != self._supported_errors:
            once = self._once = Retry(NoBackoff(), 0, self._supported_errors)
        return once.call_with_retry(do, fail, is_retryable, with_failure_count)


def _default_retry() -> Retry:
    return _ReadRetry(
        ExponentialWithJitterBackoff(cap=RETRY_BACKOFF_CAP_S, base=RETRY_BACKOFF_BASE_S),
        READ_RETRIES,
    )


def _with_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for redis-py, with repocket's timeouts, health checks and
    retry policy wherever they do not say otherwise."""
    defaults: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry": _default_retry(),
    }
    return {**defaults, **options}


class _Errors:
    """The block :meth:`RedisStorage._errors` opens (a class, not a
    generator: every storage call enters one)."""

    __slots__ = ("_action", "_resend", "_storage", "_token")

    def __init__(self, storage: RedisStorage, action: str, resend: bool) -> None:
        self._storage = storage
        self._action = action
        self._resend = resend

    def __enter__(self) -> None:
        self._token = _RESEND_OK.set(self._resend)

    def __exit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> None:
        # A generator holding this block open may be finished elsewhere
        # (closed by the garbage collector in another thread): its token
        # then belongs to another context, and there is nothing to undo.
        with contextlib.suppress(ValueError, RuntimeError):
            _RESEND_OK.reset(self._token)
        if exc is not None:
            translated = self._storage._translated(exc, self._action)
            if translated is not None:
                raise translated from exc


class _Script:
    """A Lua script run with EVALSHA, loaded again on NOSCRIPT."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        import hashlib

        self.text = text
        self.sha = hashlib.sha1(text.encode("utf-8")).hexdigest()


_SAVE = _Script(scripts.SAVE)
_SAVE_MANY = _Script(scripts.SAVE_MANY)
_EXPIRE = _Script(scripts.EXPIRE)
_PRUNE = _Script(scripts.PRUNE)
_READ = _Script(scripts.READ)
_CREATE_MANY = _Script(scripts.CREATE_MANY)
# The largest result the read script reads the ids of (a script holds the
# server while it runs), and the most records it returns with them: a record
# read by a script costs the server about twice a pipelined HGETALL, which a
# second round trip outweighs only for small pages (measured on loopback:
# see docs/performance.rst).
_READ_MAX = 500
_READ_INLINE = 50
# The replies of a save script that mean the record is stored as written.
_SAVED = (b"ok", b"same")
_DELETE = _Script(scripts.DELETE)
_APPEND = _Script(scripts.APPEND)
_SWAP = _Script(scripts.SWAP)
_SCRIPTS = (
    _SAVE,
    _SAVE_MANY,
    _CREATE_MANY,
    _DELETE,
    _APPEND,
    _SWAP,
    _EXPIRE,
    _PRUNE,
    _READ,
)


class RedisStorage(Storage):
    """Stores records in a redis server (or anything speaking its protocol).

    :param client: an existing ``redis.Redis``; it must not decode responses.
    :param shards: how many shards each model's index data is split into
        (1, the default, keeps 0.0.1's key names).
    :param options: when no client is given, passed to ``redis.Redis``
        (``host``, ``port``, ``db``, ``username``, ``password``, ``ssl``...).
    """

    scheme = "redis"
    atomic_saves = True
    persistent = True
    supports_ttl = True

    def __init__(
        self, client: redis.Redis | None = None, *, shards: int = 1, **options: Any
    ) -> None:
        if client is None:
            # None means "not given" (configure.connection_pool passes
            # username=None...), except where it is a choice: no timeout, no
            # retry policy.
            options = {
                k: v
                for k, v in options.items()
                if v is not None or k in ("socket_timeout", "socket_connect_timeout", "retry")
            }
            options.setdefault("decode_responses", False)
            client = redis.Redis(**_with_defaults(options))
        if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
            raise ValueError(f"shards must be a positive integer, not {shards!r}")
        self._client = client
        self.shards = shards
        self._shard_cache: dict[Collection, list[Shard]] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStorage:
        """``redis://[user:password@]host[:port][/db][?shards=S]``, ``rediss://``
        (TLS), or ``unix://[user:password@]/path/to/redis.sock[?db=N]`` (the
        password may also be given as ``?password=``); ``options`` go to redis-py.

        A ``/``, ``?``, ``#`` or ``@`` in a user name or password must be
        percent-encoded (``urllib.parse.quote(password, safe="")``): unescaped,
        it would end the user info early, and the rest of the password would be
        read as the host, port, path or query.

        :raises ConfigurationError: the URL cannot be used: a port that is not
            a whole number from 1 to 65535, a database that is not a whole
            number, a bad ``shards``, a query value redis-py refuses... The
            message never shows a password.
        """
        url, shards = _pop_shards(url, options.pop("shards", None))
        parts = urlsplit(url)  # it parses: _pop_shards checked
        if parts.scheme in ("redis", "rediss"):
            host = parts.hostname or "localhost"
            try:
                port = parts.port
            except ValueError:
                port = 0
            if port == 0:  # redis-py would ignore a port 0 and use 6379
                # The port's text is not shown: it may be a password given
                # as host:password.
                raise ConfigurationError(
                    f"the port of redis host {host!r} must be a whole number from 1 to 65535"
                )
            # redis-py reads a path that is not a number as database 0, and
            # "/1/2" as database 12.
            database = unquote(parts.path).strip("/")
            if database and not (database.isascii() and database.isdigit()):
                raise ConfigurationError(
                    f"the database in {redact_url(url)!r} must be a whole number "
                    f"(redis://host:6379/0), not {unquote(parts.path)!r}"
                )
        options.setdefault("decode_responses", False)
        try:
            # a value in the URL's query wins over both (redis-py's rule)
            client = redis.Redis.from_url(url, **_with_defaults(options))
        except ValueError as exc:
            # redis-py names the query parameter it refused; as in
            # backend_for_url, the original is not chained.
            raise ConfigurationError(
                f"redis storage cannot use {redact_url(url)!r}: {redact_secrets(str(exc), url)}"
            ) from None
        return cls(client, shards=shards)

    def open_async(self) -> AsyncStorage:
        """This storage for async code (see :mod:`repocket.async_storage`):
        the backend's own code over a ``redis.asyncio`` client connecting as
        this one does (see :mod:`repocket.backends.redis_async`)."""
        from .redis_async import async_client_like, open_async_storage

        return open_async_storage(self, async_client_like(self._client))

    @property
    def native_client(self) -> redis.Redis:
        """The ``redis.Redis`` client in use."""
        return self._client

    def describe(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        if kwargs.get("path"):
            where = f"unix socket {kwargs['path']}"
        else:
            # a host name has no "@": one given as "user:password@host" shows
            # only the host (the user info of a URL never gets here)
            host = str(kwargs.get("host", "localhost")).rpartition("@")[2]
            where = f"{host}:{kwargs.get('port', 6379)}"
        sharded = f", {self.shards} shards" if self.shards > 1 else ""
        return f"redis at {where} (db {kwargs.get('db', 0)}{sharded})"

    def _errors(
        self, action: str, *, resend: bool = False
    ) -> contextlib.AbstractContextManager[None]:
        """Wrap redis-py errors once, naming the server and what was being done.

        :param resend: the commands sent meanwhile have the same effect sent
            twice as once (reads, and queries whose temporary keys are built
            from scratch): the retry policy (``_ReadRetry``) may send them
            again after a timeout or a dropped connection.  Writes never are,
            nor the read of a query snapshot's next page, which removes it.
        """
        return _Errors(self, action, resend)

    def _translated(self, exc: BaseException, action: str) -> Exception | None:
        """The repocket error a redis-py error raised while doing ``action``
        becomes (``None``: not redis-py's, let it through)."""
        if isinstance(exc, redis.exceptions.AuthenticationError):
            # A ConnectionError to redis-py, so it must be caught first; but
            # the server did answer: "cannot reach" sent people to the network.
            return StorageConnectionError(
                f"authentication failed for {self.describe()} while trying to {action}: "
                f"{exc} (check the user name and password)"
            )
        if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            return StorageConnectionError(
                f"cannot reach {self.describe()} while trying to {action}: {exc}"
            )
        if isinstance(exc, redis.exceptions.RedisError):
            return StorageError(f"{self.describe()} failed to {action}: {exc}")
        return None

    # -- layout ----------------------------------------------------------------------

    def _shards(self, collection: Collection) -> list[Shard]:
        found = self._shard_cache.get(collection)
        if found is None:
            found = self._shard_cache[collection] = shards_of(
                collection, self._shard_count(collection)
            )
        return found

    def _shard_count(self, collection: Collection) -> int:
        """The model's ``Meta.shards`` (also for a collection read from a
        key, through the model registry), else the storage's number."""
        count = collection.shard_count
        if count is None:
            model = model_for_collection(collection)
            count = model._meta.collection.shard_count if model is not None else None
        return self.shards if count is None else count

    def _shard(self, collection: Collection, record_id: str) -> Shard:
        shards = self._shards(collection)
        if len(shards) == 1:
            return shards[0]
        return shards[shard_number(record_id, len(shards))]

    def record_key(self, collection: Collection, record_id: str) -> str:
        return self._shard(collection, record_id).record_key(record_id)

    def stream_key(self, collection: Collection, record_id: str, field: str) -> str:
        return self._shard(collection, record_id).stream_key(record_id, field)

    # -- scripts -----------------------------------------------------------------------

    def load_scripts(self) -> None:
        """Load repocket's scripts into the server now (``SCRIPT LOAD``).

        Optional: a script the server does not know is loaded when first
        needed (and again after a restart or ``SCRIPT FLUSH``).
        """
        with self._errors("load repocket's scripts"):
            for script in _SCRIPTS:
                self._client.script_load(script.text)

    #: Whether scripts are packed by repocket and sent on a connection of the
    #: client's pool (see :meth:`_run`); a cluster client routes them itself.
    _packs_scripts = True

    def _run(self, script: _Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA, loading the script once when the server does not know it.

        Every write is one script, so this is the write path: the command is
        packed by hiredis and exchanged as :meth:`_exchange` does (redis-py's
        ``execute_command`` spends 10 to 20 us more of CPU per call on its
        generic bookkeeping).  An error reply is raised, as redis-py raises it.
        """
        if not self._packs_scripts:
            try:
                return self._client.evalsha(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                self._client.script_load(script.text)
                return self._client.evalsha(script.sha, len(keys), *keys, *args)
        piece = (_pack_command((b"EVALSHA", script.sha, len(keys), *keys, *args)), 1)
        (reply,) = self._exchange(lambda: iter((piece,)), 1)
        if isinstance(reply, redis.exceptions.NoScriptError):
            self._client.script_load(script.text)
            (reply,) = self._exchange(lambda: iter((piece,)), 1)
        if isinstance(reply, redis.exceptions.ResponseError):
            raise reply
        return reply

    # -- writing -------------------------------------------------------------------

    def save_record(self, write: RecordWrite) -> None:
        keys, args = self._save_call(write)
        with self._errors(f"save {keys[0]}"):
            reply = self._run(_SAVE, keys, args)
            if _held(reply) and self._expired_elsewhere(write.collection):
                reply = self._run(_SAVE, keys, args)
        self._check_save_reply(write, keys[0], reply)

    def _expired_elsewhere(self, collection: Collection, *, own_shard: bool = False) -> bool:
        """After a unique claim was refused: whether expired records held
        claims.  A save prunes its own shard's expired records first; with
        several shards the holder may be an expired record of another (and
        a swap prunes none: ``own_shard``), so every shard is pruned and the
        refused write can be tried once more (it wrote nothing)."""
        if not self.supports_ttl:
            return False
        if len(self._shards(collection)) == 1 and not own_shard:
            return False
        return self.expire_due(collection) > 0

    def save_records(self, writes: Sequence[RecordWrite]) -> None:
        """One pipeline of save scripts for the whole batch (one round trip).

        Each save is atomic on its own; a refused one (claim held, id taken)
        raises after the batch, naming the first refused record, while the
        others are written: the error's ``written`` lists their ids.
        """
        if not writes:
            return
        with self._errors(f"save {len(writes)} records"):
            replies = self._save_many(writes)
            held = [i for i, reply in enumerate(replies) if _held(reply)]
            if held and self._expired_elsewhere(writes[0].collection):
                again = self._save_many([writes[i] for i in held])
                for i, reply in zip(held, again, strict=True):
                    replies[i] = reply
        first: UniqueViolation | ConflictError | None = None
        written: list[str] = []
        for write, reply in zip(writes, replies, strict=True):
            if reply[0] in _SAVED:
                written.append(write.record_id)
                continue
            try:
                self._check_save_reply(
                    write, self.record_key(write.collection, write.record_id), reply
                )
            except (UniqueViolation, ConflictError) as exc:
                first = first or exc
            else:
                written.append(write.record_id)
        if first is not None:
            first.written = written
            raise first

    def _save_many(self, writes: Sequence[RecordWrite]) -> list[Any]:
        """The save replies of ``writes``, in order, from scripts of up to
        :data:`SAVE_BATCH` records of one shard each, all in one pipeline.

        One script per chunk instead of one per record: the script is
        entered once, and the type checks of the keys its records share
        (the id index, the index entries) are made once.  New records of the
        common kind (see :func:`_plain_create`) go to ``CREATE_MANY``, which
        also writes the id index, the entries and the remembered terms once
        per chunk; the others to ``SAVE_MANY``.  Chunks stay small so that
        no script keeps the server from its other clients for long.
        """
        plain = len({w.record_id for w in writes}) == len(writes)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for position, write in enumerate(writes):
            shard = self._shard(write.collection, write.record_id)
            if plain and _plain_create(write):
                group: tuple[Any, ...] = (shard, tuple(write.fields))
            else:
                group = (shard, None)
            groups.setdefault(group, []).append(position)
        chunks: list[list[int]] = []
        scripts_: list[_Script] = []
        makers: list[Callable[[], tuple[list[str], list[Any]]]] = []
        for (shard, names), positions in groups.items():
            for start in range(0, len(positions), SAVE_BATCH):
                chunk = positions[start : start + SAVE_BATCH]
                chunks.append(chunk)
                if names is not None:
                    scripts_.append(_CREATE_MANY)
                    makers.append(functools.partial(self._create_call, shard, names, writes, chunk))
                else:
                    scripts_.append(_SAVE_MANY)
                    makers.append(functools.partial(self._save_many_call, shard, writes, chunk))
        replies: list[Any] = [None] * len(writes)
        # each chunk's arguments are made as it is sent: the server runs the
        # first chunks while the later ones are packed
        results = self._pipelined_each(scripts_, _MadeOnDemand(makers))
        for chunk, chunk_replies in zip(chunks, results, strict=True):
            for position, reply in zip(chunk, chunk_replies, strict=True):
                replies[position] = reply
        return replies

    @staticmethod
    def _create_call(
        shard: Shard, names: tuple[str, ...], writes: Sequence[RecordWrite], chunk: list[int]
    ) -> tuple[list[str], list[Any]]:
        """The ``CREATE_MANY`` call of the plain new records ``chunk`` of ``writes``."""
        shared = [shard.ids_key, shard.terms_key, unique_key(shard.collection)]
        return shared, _create_args(shard, names, [writes[i] for i in chunk])

    def _save_many_call(
        self, shard: Shard, writes: Sequence[RecordWrite], chunk: list[int]
    ) -> tuple[list[str], list[Any]]:
        """The ``SAVE_MANY`` call of the records ``chunk`` of ``writes``."""
        calls = [self._save_call(writes[i]) for i in chunk]
        shared = [shard.ids_key, shard.terms_key, unique_key(shard.collection)]
        keys = [*shared, *(call[0][0] for call in calls)]
        return keys, [arg for call in calls for arg in call[1]]

    def _pipelined(
        self, script: _Script, calls: Sequence[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Run ``script`` once per call, in one pipeline; reload it on NOSCRIPT."""
        return self._pipelined_each([script] * len(calls), calls)

    def _pipelined_each(
        self, per_call: Sequence[_Script], calls: Sequence[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Run each call's script (``per_call``), in one pipeline; reload a
        script on NOSCRIPT.

        Only the calls refused with NOSCRIPT are sent again (a script that
        was not found wrote nothing).
        """
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            sent = todo

            def commands(sent: list[int] = sent) -> Iterator[tuple[bytes, int]]:
                for position in sent:
                    keys, args = calls[position]
                    command = (b"EVALSHA", per_call[position].sha, len(keys), *keys, *args)
                    yield _pack_command(command), 1

            for position, reply in zip(sent, self._exchange(commands, len(sent)), strict=True):
                replies[position] = reply
            # only the calls the server did not run are sent again: one that
            # ran (a conditional save, say) must not run twice
            todo = [p for p in todo if isinstance(replies[p], redis.exceptions.NoScriptError)]
            if not todo or attempt:
                break
            for missing in {per_call[p] for p in todo}:
                self._client.script_load(missing.text)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _save_call(self, write: RecordWrite) -> tuple[list[str], list[Any]]:
        collection, record_id = write.collection, write.record_id
        shard = self._shard(collection, record_id)
        record_key = shard.record_key(record_id)
        if write.expected is not None:
            mode = "x"
        elif write.new:
            mode = "n"
        else:
            mode = "u"
        args: list[Any] = [
            record_id,
            mode,
            shard.index_prefix,
            _dump_terms(write.entries, write.unique),
            len(write.fields),
        ]
        for name, text in write.fields.items():
            args.append(name)
            args.append(text)
        expected = write.expected or {}
        args.append(len(expected))
        for name, text in expected.items():
            args.append(name)
            args.append(text)
        args.append(len(write.streams))
        for name, content in write.streams.items():
            args.append(name)
            args.append(content)
        args.append("" if write.ttl is None else _ttl_ms(write.ttl))
        args.append(len(write.stream_fields))
        args.extend(write.stream_fields)
        return [record_key, shard.ids_key, shard.terms_key, unique_key(collection)], args

    def _check_save_reply(self, write: RecordWrite, key: str, reply: Any) -> None:
        status = reply[0]
        if status in _SAVED:
            return
        label = write.collection.label
        if status == b"unique":
            raise _unique_violation(label, reply)
        if status == b"exists":
            raise ConflictError(
                f"{label} {write.record_id}: a record with this id exists already and "
                f"holds other values, and this save creates only; nothing was written ({key})",
                key=key,
            )
        if status == b"wrongtype":
            raise _wrong_type(f"save {key}", reply)
        if status == b"conflict":
            raise ConflictError(
                f"{label} {write.record_id} changed or was deleted since it was "
                f"loaded; nothing was written ({key})",
                key=key,
            )
        raise StorageError(f"unexpected reply {reply!r} from the save script for {key}")

    def swap_field(self, swap: FieldSwap) -> str | bytes | None:
        shard = self._shard(swap.collection, swap.record_id)
        key = shard.record_key(swap.record_id)
        args: list[Any] = [
            swap.record_id,
            shard.index_prefix,
            swap.field,
            swap.expected,
            swap.value,
        ]
        for entries in (swap.remove, swap.add):
            args.append(len(entries))
            for entry in entries:
                args.append(entry.name)
                args.append(_score_text(entry.score))
        for claims in (swap.release, swap.claim):
            args.append(len(claims))
            for claim in claims:
                args.append(claim.field)
                args.append(claim.term)
        with self._errors(f"update {key}"):
            reply = self._run(_SWAP, [key, shard.terms_key, unique_key(swap.collection)], args)
            if _held(reply) and self._expired_elsewhere(swap.collection, own_shard=True):
                reply = self._run(_SWAP, [key, shard.terms_key, unique_key(swap.collection)], args)
        status = reply[0]
        if status == b"ok":
            return None
        if status == b"stale":
            return bytes(reply[1])
        if status == b"missing":
            raise DoesNotExist(f"{swap.collection.label} {swap.record_id} does not exist ({key})")
        if status == b"unique":
            raise _unique_violation(swap.collection.label, reply)
        if status == b"wrongtype":
            raise _wrong_type(f"update {key}", reply)
        raise StorageError(f"unexpected reply {reply!r} from the update script for {key}")

    def delete_record(self, collection: Collection, record_id: str, streams: Sequence[str]) -> int:
        shard = self._shard(collection, record_id)
        key = shard.record_key(record_id)
        with self._errors(f"delete {key}"):
            removed = self._run(
                _DELETE,
                [key, shard.ids_key, shard.terms_key, unique_key(collection)],
                [record_id, shard.index_prefix, *streams],
            )
        if isinstance(removed, list):
            raise _wrong_type(f"delete {key}", removed)
        return int(removed)

    def append_to_stream(
        self, collection: Collection, record_id: str, field: str, data: bytes
    ) -> int:
        shard = self._shard(collection, record_id)
        key = shard.record_key(record_id)
        stream = shard.stream_key(record_id, field)
        with self._errors(f"append to {stream}"):
            length = int(self._run(_APPEND, [key, stream], [data]))
        if length < 0:
            raise DoesNotExist(
                f"{collection.label} {record_id} does not exist; nothing was appended to {stream}"
            )
        return length

    # -- reading -------------------------------------------------------------------

    def load_records(self, requests: Sequence[LoadRequest]) -> list[StoredRecord | None]:
        if not requests:
            return []
        packed: list[bytes] = []
        first = requests[0]
        shards = self._shards(first.collection)
        if len(shards) == 1 and all(
            r.collection == first.collection and not r.streams for r in requests
        ):
            # the common batch: one collection on one shard, no streams
            prefix = shards[0].record_prefix.encode("utf-8")
            for request in requests:
                hash_key = prefix + request.record_id.encode("utf-8")
                packed.append(b"*2\r\n$7\r\nHGETALL\r\n$%d\r\n%b\r\n" % (len(hash_key), hash_key))
            action = (
                f"load {prefix.decode()}{first.record_id}"
                if len(requests) == 1
                else f"load {len(requests)} records"
            )
            with self._errors(action, resend=True):
                replies = self._read_many(packed)
            return [
                StoredRecord(request.record_id, _text_keys(fields), _NO_STREAMS) if fields else None
                for request, fields in zip(requests, replies, strict=True)
            ]
        for request in requests:
            shard = self._shard(request.collection, request.record_id)
            packed.append(_pack(b"HGETALL", shard.record_key(request.record_id)))
            for name in request.streams:
                packed.append(_pack(b"GET", shard.stream_key(request.record_id, name)))
        with self._errors(f"load {len(requests)} record(s)", resend=True):
            reply_iter = iter(self._read_many(packed))
        results: list[StoredRecord | None] = []
        for request in requests:
            fields = next(reply_iter)
            streams = {name: next(reply_iter) or b"" for name in request.streams}
            if not fields:
                results.append(None)
                continue
            results.append(StoredRecord(request.record_id, _text_keys(fields), streams))
        return results

    def _read_many(self, packed: Sequence[bytes]) -> list[Any]:
        """Send read commands (packed with :func:`_pack`) in one round trip
        and return their replies.

        Bulk loads are repocket's hot path, and redis-py's pipeline spends
        several microseconds of Python per command (queueing, packing,
        reply callbacks) -- more than the server spends on an HGETALL.  This
        sends one buffer and reads the replies (see :meth:`_exchange`).
        Hash replies come back as redis sends them: a dict over RESP3, a
        flat list over RESP2 (:func:`_text_keys` reads both).

        :raises redis.exceptions.ResponseError: the first error reply, once
            every reply was read (the connection stays usable).
        """
        data = b"".join(packed)
        replies = self._exchange(lambda: iter(((data, len(packed)),)), len(packed))
        for reply in replies:
            if isinstance(reply, redis.exceptions.ResponseError):
                raise reply
        return replies

    def _exchange(
        self, commands: Callable[[], Iterator[tuple[bytes, int]]], count: int
    ) -> list[Any]:
        """Send ``count`` packed commands in one round trip and read their
        replies, on a connection of the client's own pool with its retry
        policy (reads are resent, writes are not) and its error handling.
        Error replies are returned in place, as their exceptions.

        ``commands()`` makes the commands, once per attempt, in pieces:
        (bytes, the number of commands they hold).  On a sync connection
        each piece is written to the socket as soon as it is made, so
        the server runs the first commands while later ones are still being
        packed (a bulk write packs one script per chunk of records).  An
        async connection is given them all at once (it would pack them
        inside its write timeout).  If making a command fails, none after
        it is sent, the replies of those sent are read (the connection stays
        usable) and :class:`~repocket.errors.StorageError` is raised: the
        commands sent were run.
        """
        client = self._client
        pool = client.connection_pool
        conn: Any = client.connection or pool.get_connection()
        outgoing = _Outgoing(commands)
        # (a fakeredis connection is a sync redis-py one too)
        streams = isinstance(conn, redis.connection.AbstractConnection)

        def send_and_read() -> list[Any]:
            conn.send_packed_command(outgoing if streams else list(outgoing))
            sent = outgoing.sent
            fast = _hiredis_replies(conn, sent)
            if fast is not None:
                return fast
            replies: list[Any] = []
            read = conn.read_response
            for _ in range(sent):
                try:
                    replies.append(read())
                except redis.exceptions.ResponseError as exc:
                    replies.append(exc)
            return replies

        # a client of one connection serialises its users (as redis-py does)
        lock = getattr(client, "single_connection_lock", None) if client.connection else None
        try:
            with lock or contextlib.nullcontext():
                replies: list[Any] = conn.retry.call_with_retry(
                    send_and_read, lambda _error: conn.disconnect()
                )
        finally:
            if client.connection is None:
                pool.release(conn)
        failure = outgoing.failure
        if failure is not None:
            raise StorageError(
                f"{self.describe()} was sent {outgoing.sent} of {count} commands of one "
                f"request: making the next failed ({type(failure).__name__}: {failure}); "
                f"the {outgoing.sent} sent were run, the others not"
            ) from failure
        return replies

    def iter_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        iterators = [self._iter_shard_ids(shard, batch_size) for shard in self._shards(collection)]
        if len(iterators) == 1:
            return iterators[0]
        return heapq.merge(*iterators)

    def _iter_shard_ids(self, shard: Shard, batch_size: int) -> Iterator[str]:
        start = b"-"
        while True:
            with self._errors(f"read the ids of {shard.collection.label}", resend=True):
                if start == b"-":  # the first page, after expired records are removed
                    pipe = self._transaction([shard])
                    pipe.zrangebylex(shard.ids_key, start, b"+", start=0, num=batch_size)
                    page = self._execute(pipe)[-1]
                else:
                    page = self._client.zrangebylex(
                        shard.ids_key, start, b"+", start=0, num=batch_size
                    )
            for record_id in page:
                yield as_text(record_id)
            if len(page) < batch_size:
                return
            start = b"(" + _bytes(page[-1])

    def count_records(self, collection: Collection) -> int:
        return self.count_ids(collection, AllIds())

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
        shards = self._shards(collection)
        with self._errors(f"query {collection.label}", resend=True):
            if len(shards) == 1:
                return self._query_shard(shards[0], plan, order, offset, limit)
            # every shard's first offset + limit ids, merged in the result's order
            stop = None if limit is None else offset + limit
            pipe = self._transaction(shards)
            marks = [
                self._queue_page(pipe, shard, plan, order, 0, stop, withscores=True)
                for shard in shards
            ]
            replies = self._execute(pipe)
        merged = _merge_scored([_scored(replies[at]) for at in marks], order)
        return [record_id for _, record_id in itertools.islice(merged, offset, stop)]

    def query_ids_unless(
        self,
        collection: Collection,
        guard: Plan,
        plan: Plan,
        order: Order | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[str] | None:
        """The guard's count and the page, in one transaction (one round trip)."""
        if limit == 0:
            return [] if self.count_ids(collection, guard) == 0 else None
        shards = self._shards(collection)
        stop = None if limit is None else offset + limit
        with self._errors(f"query {collection.label}", resend=True):
            pipe = self._transaction(shards)
            counts = [self._queue_count(pipe, shard, guard) for shard in shards]
            if len(shards) == 1:
                marks = [self._queue_page(pipe, shards[0], plan, order, offset, stop)]
            else:
                marks = [
                    self._queue_page(pipe, shard, plan, order, 0, stop, withscores=True)
                    for shard in shards
                ]
            replies = self._execute(pipe)
        if any(int(replies[at]) for at in counts):
            return None
        if len(shards) == 1:
            return [as_text(member) for member in replies[marks[0]]]
        merged = _merge_scored([_scored(replies[at]) for at in marks], order)
        return [record_id for _, record_id in itertools.islice(merged, offset, stop)]

    def count_ids_unless(self, collection: Collection, guard: Plan, plan: Plan) -> int | None:
        """The guard's count and the plan's, in one transaction (one round trip)."""
        with self._errors(f"count {collection.label}", resend=True):
            pipe = self._transaction(self._shards(collection))
            guards = [self._queue_count(pipe, shard, guard) for shard in self._shards(collection)]
            counts = [self._queue_count(pipe, shard, plan) for shard in self._shards(collection)]
            replies = self._execute(pipe)
        if any(int(replies[at]) for at in guards):
            return None
        return sum(int(replies[at]) for at in counts)

    def _transaction(self, shards: Sequence[Shard]) -> Any:
        """A MULTI pipeline that first removes what the shards' expired
        records left in the index (see :meth:`expire_due`), so that the
        commands queued after it see no expired record."""
        pipe = self._client.pipeline(transaction=True)
        if self.supports_ttl:
            for shard in shards:
                pipe.evalsha(
                    _PRUNE.sha, *self._prune_keys(shard), shard.index_prefix, shard.record_prefix
                )
        return pipe

    def _prune_keys(self, shard: Shard) -> list[Any]:
        keys = [shard.ids_key, shard.terms_key, unique_key(shard.collection)]
        return [len(keys), *keys]

    def _execute(self, pipe: Any) -> list[Any]:
        """Run a :meth:`_transaction`; when the server lost the scripts
        (restarted, SCRIPT FLUSH) load them and run it again: its commands
        only read, or write temporary keys that they overwrite."""
        commands = list(pipe.command_stack)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        if any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
            self.load_scripts()
            again = self._client.pipeline(transaction=True)
            again.command_stack = commands
            replies = again.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    # -- expiry ----------------------------------------------------------------------

    def set_expiry(
        self, collection: Collection, record_id: str, streams: Sequence[str], ttl: float | None
    ) -> bool:
        if not self.supports_ttl:
            return super().set_expiry(collection, record_id, streams, ttl)
        shard = self._shard(collection, record_id)
        key = shard.record_key(record_id)
        keys = [key, shard.ids_key, shard.terms_key, unique_key(collection)]
        args = [record_id, shard.index_prefix, "" if ttl is None else _ttl_ms(ttl), *streams]
        with self._errors(f"set the expiry of {key}"):
            reply = self._run(_EXPIRE, keys, args)
        if isinstance(reply, list):
            raise _wrong_type(f"set the expiry of {key}", reply)
        return bool(reply)

    def get_expiry(self, collection: Collection, record_id: str) -> float | None:
        key = self.record_key(collection, record_id)
        with self._errors(f"read the expiry of {key}", resend=True):
            left = int(self._client.pttl(key))
        if left == -2:
            raise DoesNotExist(f"{collection.label} {record_id} does not exist ({key})")
        return None if left < 0 else left / 1000

    def expire_due(self, collection: Collection) -> int:
        if not self.supports_ttl:
            return 0
        shards = self._shards(collection)
        with self._errors(f"remove the expired records of {collection.label}"):
            replies = self._execute(self._transaction(shards))
        return sum(int(reply[0]) for reply in replies)

    def _queue_count(self, pipe: Any, shard: Shard, plan: Plan) -> int:
        """Queue the count of a plan on one shard; return where its reply is."""
        if isinstance(plan, AllIds):
            pipe.zcard(shard.ids_key)
            return len(pipe.command_stack) - 1
        if isinstance(plan, Members):
            pipe.scard(shard.index_key(plan.name))
            return len(pipe.command_stack) - 1
        temps: list[str] = []
        pipe.zcard(self._evaluate(pipe, shard, plan, temps))
        at = len(pipe.command_stack) - 1
        if temps:
            pipe.unlink(*temps)
        return at

    def _query_shard(
        self, shard: Shard, plan: Plan, order: Order | None, offset: int, limit: int | None
    ) -> list[str]:
        # (a page read straight from the order index when it can be: no copies)
        pipe = self._transaction([shard])
        at = self._queue_page(
            pipe, shard, plan, order, offset, None if limit is None else offset + limit
        )
        replies = self._execute(pipe)
        return [as_text(member) for member in replies[at]]

    def _queue_page(
        self,
        pipe: Any,
        shard: Shard,
        plan: Plan,
        order: Order | None,
        start: int,
        stop: int | None,
        withscores: bool = False,
    ) -> int:
        """Queue the steps reading ids ``start``..``stop`` of a plan on one
        shard; return the position of the page's reply in the pipeline."""
        direct = _direct_order(shard, plan, order)
        temps: list[str] = []
        if direct is not None:
            assert order is not None
            key, low, high = direct
            if order.descending:
                low, high = high, low
            pipe.zrange(
                key,
                low,
                high,
                desc=order.descending,
                byscore=True,
                offset=start,
                num=-1 if stop is None else stop - start,
                withscores=withscores,
            )
        else:
            ordered, reverse = self._ordered(pipe, shard, plan, order, temps)
            pipe.zrange(
                ordered,
                start,
                -1 if stop is None else stop - 1,
                desc=reverse,
                withscores=withscores,
            )
        at = len(pipe.command_stack) - 1
        if temps:
            pipe.unlink(*temps)
        return at

    def count_ids(self, collection: Collection, plan: Plan) -> int:
        shards = self._shards(collection)
        with self._errors(f"count {collection.label}", resend=True):
            pipe = self._transaction(shards)
            marks = [self._queue_count(pipe, shard, plan) for shard in shards]
            replies = self._execute(pipe)
        return sum(int(replies[at]) for at in marks)

    def query_records(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None = None,
        offset: int = 0,
        limit: int | None = None,
        streams: Sequence[str] = (),
        guard: Plan | None = None,
    ) -> list[StoredRecord] | None:
        """A page read straight from one index (a page of an order index, of
        a score range, of every id) is one command, the read script: the
        guard's sets, the page's ids and their records together."""
        shards = self._shards(collection)
        guards = _guard_sets(guard)
        if (
            len(shards) == 1
            and limit is not None
            and limit <= _READ_MAX
            and guards is not None
            and self.supports_ttl
        ):
            shard = shards[0]
            page = _index_page(shard, plan, order, offset, limit)
            if page is not None:
                return self._read(shard, guards, streams, (), page, None)
        return super().query_records(collection, plan, order, offset, limit, streams, guard)

    def iter_query_records(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None = None,
        batch_size: int = 500,
        streams: Sequence[str] = (),
    ) -> Iterator[list[StoredRecord]]:
        """A result that one index read gives whole, when it has at most
        ``batch_size`` records, is read with its records in one command
        (the read script); any other is iterated from a snapshot."""
        shards = self._shards(collection)
        read = None
        if len(shards) == 1 and batch_size <= _READ_MAX and self.supports_ttl:
            read = _whole_read(shards[0], plan, order, batch_size)
        if read is None:
            yield from super().iter_query_records(collection, plan, order, batch_size, streams)
            return
        guards, count, page = read
        records = self._read(shards[0], guards, streams, count, page, batch_size)
        if records is not None:
            if order is None:  # without an order, results come in the order of their ids
                records.sort(key=_record_id)
            yield records
            return
        # larger than a batch, or guarded: a snapshot, without asking again
        ids = self._iter_query_ids(collection, plan, order, batch_size, whole_first=False)
        yield from self._records_of(collection, ids, batch_size, streams)

    def _read(
        self,
        shard: Shard,
        guards: Sequence[str],
        streams: Sequence[str],
        count: Sequence[Any],
        page: Sequence[Any],
        limit: int | None,
    ) -> list[StoredRecord] | None:
        """Run the read script (:data:`scripts.READ <repocket.backends.scripts.READ>`):
        the records of the ids the command ``page`` reads, in its order;
        ``None`` when a guard set (index entry names) is not empty, or when
        the command ``count`` counts more than ``limit``."""
        keys = [shard.ids_key, shard.terms_key, unique_key(shard.collection)]
        args = [
            shard.index_prefix,
            shard.record_prefix,
            "" if limit is None else limit,
            _READ_INLINE,
            len(guards),
            *(shard.index_key(name) for name in guards),
            len(streams),
            *streams,
            len(count),
            *count,
            *page,
        ]
        with self._errors(f"query {shard.collection.label}", resend=True):
            reply = self._run(_READ, keys, args)
        status = int(reply[0])
        if status == 3:  # more ids than the script returns records of
            ids = [as_text(member) for member in reply[1]]
            return self._load_present(shard.collection, ids, streams)
        if status != 2:
            return None
        rest = iter(reply[2:])
        records: list[StoredRecord] = []
        for member in reply[1]:
            fields = next(rest)
            found = {name: next(rest) or b"" for name in streams} if streams else _NO_STREAMS
            if fields:
                records.append(StoredRecord(as_text(member), _text_keys(fields), found))
        return records

    def iter_query_ids(
        self, collection: Collection, plan: Plan, order: Order | None = None, batch_size: int = 500
    ) -> Iterator[str]:
        return self._iter_query_ids(collection, plan, order, batch_size)

    def _iter_query_ids(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None,
        batch_size: int,
        whole_first: bool = True,
    ) -> Iterator[str]:
        """Iterate a snapshot of the result, taken when iteration starts.

        The ordered result is left in a temporary key per shard that each
        round trip reads the next ``batch_size`` ids from and removes them;
        redis drops the key when it is empty, so a result of one batch costs
        one round trip and leaves nothing behind.  The key's lifetime is
        renewed with every batch, and an abandoned iteration's keys are
        deleted (or expire).  With several shards, the shards' snapshots are
        taken in one round trip and merged in the result's order.
        """
        if isinstance(plan, AllIds) and order is None:
            yield from self.iter_ids(collection, batch_size)
            return
        shards = self._shards(collection)
        if len(shards) == 1 and whole_first:
            whole = self._whole_if_small(shards[0], plan, order, batch_size, collection)
            if whole is not None:
                yield from whole
                return
        reverse = order is not None and order.descending
        snapshots = [shard.temp_key(uuid.uuid4().hex) for shard in shards]
        with self._errors(f"query {collection.label}", resend=True):
            pipe = self._transaction(shards)
            marks = []
            for shard, snapshot in zip(shards, snapshots, strict=True):
                temps: list[str] = []
                direct = _direct_order(shard, plan, order)
                if direct is not None:
                    key, low, high = direct
                    pipe.zrangestore(snapshot, key, low, high, byscore=True)
                else:
                    # the snapshot takes the order index's scores (or 0 for id order)
                    source = self._evaluate(pipe, shard, plan, temps)
                    weights = {source: 0}
                    if order is not None:
                        weights[shard.index_key(order.name)] = 1
                    pipe.zinterstore(snapshot, weights)
                if temps:
                    pipe.unlink(*temps)
                marks.append(len(pipe.command_stack))
                self._queue_take(pipe, snapshot, batch_size, reverse, len(shards) > 1)
            replies = self._execute(pipe)
        firsts = [(int(replies[at]), replies[at + 1]) for at in marks]
        if len(shards) == 1:
            yield from self._drain(collection, snapshots[0], *firsts[0], batch_size, reverse)
            return
        streams = [
            self._drain(collection, snapshot, total, page, batch_size, reverse, scored=True)
            for snapshot, (total, page) in zip(snapshots, firsts, strict=True)
        ]
        for _, record_id in _merge_scored(streams, order):
            yield record_id

    def _whole_if_small(
        self, shard: Shard, plan: Plan, order: Order | None, limit: int, collection: Collection
    ) -> list[str] | None:
        """The whole result, in its order, when it is one index read of at
        most ``limit`` ids; else ``None`` (the caller takes a snapshot).

        Most results fit in one batch, and for them a snapshot (copying the
        ids to a temporary key, then paging it) costs the server several
        times what reading the index does.  This reads the result's size
        and its first ``limit`` ids in one MULTI of two commands, so what it
        returns is as consistent as a snapshot; a larger result wasted one
        read of ``limit`` ids.
        """
        read = _whole_read(shard, plan, order, limit, count_first=False)
        if read is None:
            return None
        guards, count, page_command = read
        pipe = self._transaction([shard])
        first = len(pipe.command_stack)
        for name in guards:
            pipe.scard(shard.index_key(name))
        pipe.execute_command(*count)
        pipe.execute_command(*page_command)
        with self._errors(f"query {collection.label}", resend=True):
            *guarded, total, page = self._execute(pipe)[first:]
        if total > limit or any(guarded):
            return None
        ids = [as_text(member) for member in page]
        if order is None:
            ids.sort()  # without an order, results come in the order of their ids
        return ids

    def _drain(
        self,
        collection: Collection,
        snapshot: str,
        total: int,
        page: list[Any],
        batch_size: int,
        reverse: bool,
        scored: bool = False,
    ) -> Iterator[Any]:
        """Yield a snapshot's ids (or ``(score, id)`` pairs), batch by batch."""
        taken = len(page)
        try:
            while True:
                if scored:
                    yield from _scored(page)
                else:
                    yield from (as_text(member) for member in page)
                if taken >= total:
                    return
                with self._errors(f"read the results of a query on {collection.label}"):
                    pipe = self._client.pipeline(transaction=True)
                    self._queue_take(pipe, snapshot, batch_size, reverse, scored)
                    _, page, _, _ = pipe.execute()
                if not page:
                    raise StorageError(
                        f"the results of a query on {collection.label} expired while being "
                        f"iterated (more than {SNAPSHOT_TTL_MS // 1000} s between batches)"
                    )
                taken += len(page)
        finally:
            if taken < total:  # abandoned early: drop what is left
                with contextlib.suppress(redis.exceptions.RedisError):
                    self._client.delete(snapshot)

    def _queue_take(
        self, pipe: Any, snapshot: str, batch_size: int, reverse: bool, scored: bool = False
    ) -> None:
        """Queue: size, next page (from the top when ``reverse``), remove that
        page, renew the lifetime."""
        pipe.zcard(snapshot)
        pipe.zrange(snapshot, 0, batch_size - 1, desc=reverse, withscores=scored)
        if reverse:
            pipe.zremrangebyrank(snapshot, -batch_size, -1)
        else:
            pipe.zremrangebyrank(snapshot, 0, batch_size - 1)
        pipe.pexpire(snapshot, SNAPSHOT_TTL_MS)

    def _ordered(
        self, pipe: Any, shard: Shard, plan: Plan, order: Order | None, temps: list[str]
    ) -> tuple[str, bool]:
        """Queue steps leaving the plan's ids in a sorted set; return it and
        whether to read it from the top (descending order)."""
        source = self._evaluate(pipe, shard, plan, temps)
        if order is None and isinstance(plan, AllIds):
            return source, False  # already all scores 0
        target = shard.temp_key(uuid.uuid4().hex)
        temps.append(target)
        if order is None:
            # weight 0: every score 0, so ids come in lexical order
            pipe.zinterstore(target, {source: 0})
            return target, False
        # the order index's score on every id of the result; redis visits the
        # smaller input, so this costs the size of the result, not the model
        pipe.zinterstore(target, {source: 0, shard.index_key(order.name): 1})
        return target, order.descending

    def _evaluate(self, pipe: Any, shard: Shard, plan: Plan, temps: list[str]) -> str:
        """Queue the steps computing a plan on one shard; return the key holding its ids."""
        if isinstance(plan, AllIds):
            return shard.ids_key
        if isinstance(plan, Members):
            return shard.index_key(plan.name)
        target = shard.temp_key(uuid.uuid4().hex)
        if isinstance(plan, ScoreRange):
            low = _bound(plan.low, plan.low_open)
            high = _bound(plan.high, plan.high_open)
            pipe.zrangestore(target, shard.index_key(plan.name), low, high, byscore=True)
        elif isinstance(plan, (Union, Intersection)):
            parts = [self._evaluate(pipe, shard, part, temps) for part in plan.parts]
            if not parts:
                pipe.delete(target)
            elif isinstance(plan, Union):
                pipe.zunionstore(target, parts, aggregate="MIN")
            else:
                pipe.zinterstore(target, parts, aggregate="MIN")
        elif isinstance(plan, Difference):
            base = self._evaluate(pipe, shard, plan.base, temps)
            minus = self._evaluate(pipe, shard, plan.minus, temps)
            pipe.zdiffstore(target, [base, minus])
        else:
            raise TypeError(f"unknown query plan node {plan!r}")
        temps.append(target)
        return target

    # -- index maintenance -----------------------------------------------------------

    def iter_stored_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        with self._errors(f"scan the records of {collection.label}", resend=True):
            for shard in self._shards(collection):
                pattern = glob_escape(shard.record_prefix) + "*"
                for key in self._client.scan_iter(match=pattern, count=batch_size):
                    if not _is_utf8(key):
                        continue  # not repocket's: iter_stray_keys reports it
                    text = as_text(key)
                    if STREAM_INFIX not in text:
                        yield text[len(shard.record_prefix) :]

    def read_index_entries(
        self, collection: Collection, record_ids: Sequence[str]
    ) -> list[tuple[frozenset[IndexEntry], frozenset[UniqueClaim]] | None]:
        if not record_ids:
            return []
        with self._errors(f"read index entries of {collection.label}", resend=True):
            pipe = self._client.pipeline(transaction=False)
            for record_id in record_ids:
                shard = self._shard(collection, record_id)
                pipe.hget(shard.terms_key, record_id)
                pipe.zscore(shard.ids_key, record_id)
            raw = pipe.execute()
        results: list[tuple[frozenset[IndexEntry], frozenset[UniqueClaim]] | None] = []
        for terms, listed in zip(raw[::2], raw[1::2], strict=True):
            if terms is not None:
                # damaged remembered entries are reported as none: check()
                # then finds the record's index data different from its values
                loaded = _load_terms(_bytes(terms))
                results.append(loaded if loaded is not None else (frozenset(), frozenset()))
            elif listed is not None:
                # indexed with no entries: nothing is remembered for it
                results.append((frozenset(), frozenset()))
            else:
                results.append(None)
        return results

    def missing_entries(
        self, collection: Collection, expected: Sequence[tuple[str, frozenset[IndexEntry]]]
    ) -> list[str]:
        """Asks the index structures themselves (one pipeline): the id index
        and every entry's set or sorted set."""
        if not expected:
            return []
        with self._errors(f"check the index of {collection.label}", resend=True):
            pipe = self._client.pipeline(transaction=False)
            for record_id, entries in expected:
                shard = self._shard(collection, record_id)
                pipe.zscore(shard.ids_key, record_id)
                for entry in entries:
                    if entry.score is None:
                        pipe.sismember(shard.index_key(entry.name), record_id)
                    else:
                        pipe.zscore(shard.index_key(entry.name), record_id)
            replies = iter(pipe.execute())
        missing = []
        for record_id, entries in expected:
            found = next(replies) is not None
            for entry in entries:
                reply = next(replies)
                if entry.score is None:
                    found = found and bool(reply)
                else:
                    found = found and reply is not None and float(reply) == entry.score
            if not found:
                missing.append(record_id)
        return missing

    def iter_index_members(
        self, collection: Collection, batch_size: int = 500
    ) -> Iterator[tuple[str, IndexEntry]]:
        """Scans the shards' index keys (SCAN by the shard's exact prefix),
        then each set with SSCAN and each sorted set with ZSCAN."""
        with self._errors(f"scan the index of {collection.label}", resend=True):
            for shard in self._shards(collection):
                pattern = glob_escape(shard.index_prefix) + "*"
                for kind in ("set", "zset"):
                    for key in self._client.scan_iter(match=pattern, count=batch_size, _type=kind):
                        name = as_text(key)[len(shard.index_prefix) :]
                        if kind == "set":
                            for member in self._client.sscan_iter(key, count=batch_size):
                                yield as_text(member), IndexEntry(name)
                        else:
                            for member, score in self._client.zscan_iter(key, count=batch_size):
                                yield as_text(member), IndexEntry(name, float(score))

    def iter_claims(
        self, collection: Collection, batch_size: int = 500
    ) -> Iterator[tuple[UniqueClaim, str]]:
        key = unique_key(collection)
        with self._errors(f"read the unique claims of {collection.label}", resend=True):
            for claim, holder in self._client.hscan_iter(key, count=batch_size):
                field, _, term = as_text(claim).partition(":")
                yield UniqueClaim(field, term), as_text(holder)

    def iter_stray_keys(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        """ByteStream keys whose record hash is gone, keys under the model's
        prefix whose names are not UTF-8 (repocket writes none), and
        temporary query results with no expiry (a snapshot being iterated
        always has one)."""
        with self._errors(f"scan the keys of {collection.label}", resend=True):
            for shard in self._shards(collection):
                prefix = glob_escape(shard.record_prefix) + "*"
                for key in self._client.scan_iter(match=prefix, count=batch_size):
                    if not _is_utf8(key):
                        yield as_text(key)
                streams = (
                    as_text(key)
                    for key in self._client.scan_iter(
                        match=glob_escape(shard.record_prefix) + "*" + STREAM_INFIX + "*",
                        count=batch_size,
                    )
                )
                while batch := list(itertools.islice(streams, batch_size)):
                    pipe = self._client.pipeline(transaction=False)
                    for key in batch:
                        pipe.exists(key.rpartition(STREAM_INFIX)[0])
                    for key, exists in zip(batch, pipe.execute(), strict=True):
                        if not exists:
                            yield key
                temps = self._client.scan_iter(
                    match=glob_escape(shard.temp_key("")) + "*", count=batch_size
                )
                for key in temps:
                    if self._client.pttl(key) == -1:
                        yield as_text(key)

    def drop_index(self, collection: Collection) -> None:
        with self._errors(f"drop the index of {collection.label}"):
            for pattern in meta_patterns(collection):
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
        with self._errors("ping", resend=True):
            self._client.ping()

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _pop_shards(url: str, shards: Any) -> tuple[str, int]:
    """Check a URL that :class:`RedisStorage` or a subclass reads (``redis``,
    ``rediss``, ``unix``, ``memory``) for what would be misread, and take
    ``shards=`` out of its query (redis-py would refuse it).

    ``shards`` (the keyword argument) is used when the query has none.

    :raises ConfigurationError: the URL cannot be parsed; an ``@`` follows
        its host (a user name or password with an unescaped ``/``, ``?``,
        ``#`` or ``@``, the rest of which would be read as the path or query,
        and shown in messages); a URL of another scheme than redis's carries
        a user name or password (``memory://`` would take it for the store's
        name); the shard count is not a whole number from 1 up.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host
        raise ConfigurationError(
            f"{redact_url(url)!r} is not a valid URL: {redact_secrets(str(exc), url)}"
        ) from None
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        raise ConfigurationError(
            f"{redact_url(url)!r} has an '@' after its host: in a user name or password, "
            f"percent-encode '/', '?', '#' and '@' (urllib.parse.quote(password, safe='')); "
            f"elsewhere write '@' as %40"
        )
    if "@" in parts.netloc and parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"{redact_url(url)!r}: a {parts.scheme}:// URL takes no user name or password"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(name, value) for name, value in query if name != "shards"]
    for name, value in query:
        if name == "shards":
            shards = value
    if shards is None:
        return url, 1
    # Only plain digits: int() would also take " 2", "+2", "²" and True.
    if isinstance(shards, str) and shards.isascii() and shards.isdigit():
        count = int(shards)
    elif isinstance(shards, int) and not isinstance(shards, bool):
        count = shards
    else:
        count = 0
    if count < 1:
        shown = repr(shards)
        shown = shown if len(shown) <= 40 else shown[:40] + "..."
        raise ConfigurationError(f"shards must be a whole number from 1 up, not {shown}")
    return urlunsplit(parts._replace(query=urlencode(kept))), count


def _wrong_type(action: str, reply: Any) -> StorageError:
    key, found, wanted = (as_text(part) for part in reply[1:4])
    return StorageError(
        f"cannot {action}: {key} holds a {found}, where repocket keeps a {wanted}; "
        f"nothing was written (was the key written by something else?)"
    )


def _unique_violation(label: str, reply: Any) -> UniqueViolation:
    field, term, holder = as_text(reply[1]), as_text(reply[2]), as_text(reply[3])
    return UniqueViolation(
        f"{label}.{field} must be unique; record {holder} already holds that value",
        claim=UniqueClaim(field, term),
        other_id=holder,
        field=field,
    )


def _guard_sets(guard: Plan | None) -> list[str] | None:
    """The entry names of a guard that is membership sets (none for no
    guard), or ``None`` for a guard of another form."""
    if guard is None:
        return []
    members = guard.parts if isinstance(guard, Union) else (guard,)
    if all(isinstance(m, Members) for m in members):
        return [m.name for m in members if isinstance(m, Members)]
    return None


def _index_page(
    shard: Shard, plan: Plan, order: Order | None, offset: int, limit: int
) -> list[Any] | None:
    """The command reading ids ``offset``.. ``offset + limit`` of a plan
    straight from one index, or ``None`` when it takes more than one read."""
    direct = _direct_order(shard, plan, order)
    if direct is not None:
        assert order is not None
        key, low, high = direct
        if order.descending:
            return ["ZRANGE", key, high, low, "BYSCORE", "REV", "LIMIT", offset, limit]
        return ["ZRANGE", key, low, high, "BYSCORE", "LIMIT", offset, limit]
    if order is None and isinstance(plan, AllIds):
        return ["ZRANGE", shard.ids_key, offset, offset + limit - 1]
    return None


def _whole_read(
    shard: Shard, plan: Plan, order: Order | None, limit: int, count_first: bool = True
) -> tuple[list[str], list[Any], list[Any]] | None:
    """``(guard entry names, count command, page command)`` reading a whole
    result of at most ``limit`` ids with one index read, or ``None``.

    A plan ``A | (B & G)`` is ``A`` while the guard ``G`` is empty (the query
    layer's candidates for a range on a field whose index may hold inexact
    scores): the guard's sets are returned, for their sizes to be read
    with the page.  ``count_first``: the page is read only once the count
    showed it is small (the read script); else both are read together (a
    ``MULTI``), and a set's page reads at most ``limit`` members.
    """
    plan, guards = _unguarded(plan)
    direct = _direct_order(shard, plan, order)
    if direct is None and order is None and isinstance(plan, ScoreRange):
        direct = (
            shard.index_key(plan.name),
            _bound(plan.low, plan.low_open),
            _bound(plan.high, plan.high_open),
        )
    if direct is not None:
        key, low, high = direct
        count = ["ZCOUNT", key, low, high]
        if order is not None and order.descending:
            return guards, count, ["ZRANGE", key, high, low, "BYSCORE", "REV", "LIMIT", 0, limit]
        return guards, count, ["ZRANGE", key, low, high, "BYSCORE", "LIMIT", 0, limit]
    if order is None and isinstance(plan, Members):
        key = shard.index_key(plan.name)
        if count_first:  # read only when the count showed at most `limit`
            return guards, ["SCARD", key], ["SMEMBERS", key]
        # at most `limit` distinct members, the whole set when it is no
        # larger (and only `limit` of a large one: O(limit), not O(size))
        return guards, ["SCARD", key], ["SRANDMEMBER", key, limit]
    return None


def _record_id(record: StoredRecord) -> str:
    return record.record_id


def _direct_order(shard: Shard, plan: Plan, order: Order | None) -> tuple[str, str, str] | None:
    """``(key, low, high)`` when an ordered plan can be read straight from
    the order index: every record, or a score range of that same index."""
    if order is None:
        return None
    key = shard.index_key(order.name)
    if isinstance(plan, AllIds):
        return key, "-inf", "+inf"
    if isinstance(plan, ScoreRange) and plan.name == order.name:
        return key, _bound(plan.low, plan.low_open), _bound(plan.high, plan.high_open)
    return None


def _unguarded(plan: Plan) -> tuple[Plan, list[str]]:
    """``(A, names of G's sets)`` for a plan ``A | (B & G)`` (a union holding
    an intersection) whose guard ``G``
    is one membership entry or a union of them; else ``(plan, [])``."""
    if isinstance(plan, Union) and len(plan.parts) == 2:
        base, rest = plan.parts
        if isinstance(rest, Intersection) and len(rest.parts) == 2:
            guard = rest.parts[1]
            members = guard.parts if isinstance(guard, Union) else (guard,)
            if members and all(isinstance(m, Members) for m in members):
                return base, [m.name for m in members if isinstance(m, Members)]
    return plan, []


def _scored(page: Iterable[Any]) -> Iterator[tuple[float, str]]:
    """``(score, id)`` pairs of a ``WITHSCORES`` reply."""
    for member, score in page:
        yield float(score), as_text(member)


def _merge_scored(
    streams: Sequence[Iterable[tuple[float, str]]], order: Order | None
) -> Iterator[tuple[float, str]]:
    """Merge the shards' ``(score, id)`` streams in the result's order: by
    score then id, both descending for a descending order (as ``ZRANGE ...
    REV`` gives them); by id when there is no order."""
    if order is None:
        return heapq.merge(*streams, key=lambda pair: pair[1])
    return heapq.merge(*streams, reverse=order.descending)


def _plain_create(write: RecordWrite) -> bool:
    """Whether a write is a new record of the kind ``CREATE_MANY`` saves:
    create-only, with fields, and no streams, unique claims, expiry or
    condition."""
    return (
        write.new
        and write.expected is None
        and write.ttl is None
        and not write.unique
        and not write.streams
        and bool(write.fields)
    )


def _create_args(shard: Shard, names: tuple[str, ...], writes: Sequence[RecordWrite]) -> list[Any]:
    """The ``CREATE_MANY`` arguments of new records of one shard whose
    fields are ``names``."""
    args: list[Any] = [shard.index_prefix, shard.record_prefix, len(names), *names]
    for write in writes:
        flat = _flat_entries(write.entries)
        args.append(write.record_id)
        args.append(_terms_text(flat, _flat_claims(write.unique)))
        args.append(len(write.entries))
        args.extend(flat)
        args.extend(write.fields.values())
    return args


def _score_text(score: float | None) -> str:
    """A score as the save script takes it: ``""`` for a membership entry."""
    if score is None:
        return ""
    if math.isinf(score):
        return "+inf" if score > 0 else "-inf"
    return repr(float(score))


def _dump_terms(entries: frozenset[IndexEntry], claims: frozenset[UniqueClaim]) -> bytes:
    if not entries and not claims:
        return b""
    return _terms_text(_flat_entries(entries), _flat_claims(claims))


def _flat_entries(entries: frozenset[IndexEntry]) -> list[str]:
    """Entries as the scripts take them: name, score text, name, ..."""
    flat: list[str] = []
    for entry in entries:
        flat.append(entry.name)
        flat.append(_score_text(entry.score))
    return flat


def _flat_claims(claims: frozenset[UniqueClaim]) -> list[str]:
    flat: list[str] = []
    for claim in claims:
        flat.append(claim.field)
        flat.append(claim.term)
    return flat


def _terms_text(flat: list[str], claimed: list[str]) -> bytes:
    """The remembered terms of flat entries and claims (``b""`` for none)."""
    if not flat and not claimed:
        return b""
    # Raw UTF-8 (not \u escapes): the script's JSON decoder passes it through
    # byte for byte, so entry names reach key names exactly as Python builds
    # them.  The JSON of [flat, claimed], as json.dumps(..., ensure_ascii=False,
    # separators=(",", ":")) writes it, without an encoder built per call.
    text = f"[[{','.join(map(_json_text, flat))}],[{','.join(map(_json_text, claimed))}]]"
    return text.encode("utf-8", "surrogatepass")


_json_text = json.encoder.encode_basestring


def _load_terms(raw: bytes) -> tuple[frozenset[IndexEntry], frozenset[UniqueClaim]] | None:
    """Remembered entries and claims; ``None`` when the text is damaged."""
    try:
        data = json.loads(raw.decode("utf-8", "surrogatepass"))
        # a script writes an empty Lua table as {}
        flat = data[0] if data and not isinstance(data[0], dict) else []
        claimed = data[1] if len(data) > 1 and not isinstance(data[1], dict) else []
        entries = frozenset(
            IndexEntry(flat[i], None if flat[i + 1] == "" else float(flat[i + 1]))
            for i in range(0, len(flat), 2)
        )
        claims = frozenset(
            UniqueClaim(claimed[i], claimed[i + 1]) for i in range(0, len(claimed), 2)
        )
    except (ValueError, TypeError, IndexError, KeyError, RecursionError, OverflowError):
        return None
    if not all(isinstance(e.name, str) for e in entries) or not all(
        isinstance(c.field, str) and isinstance(c.term, str) for c in claims
    ):
        return None
    return entries, claims


def _bound(value: float, open_: bool) -> str:
    if value == float("inf"):
        text = "+inf"
    elif value == float("-inf"):
        text = "-inf"
    else:
        text = repr(float(value))
    return f"({text}" if open_ else text


def _hiredis_replies(conn: Any, count: int) -> list[Any] | None:
    """The next ``count`` replies of a sync connection read straight from
    its hiredis reader, or ``None`` when it has none (no hiredis, an async
    connection, a redis-py whose parser this does not know): the caller then
    reads them with ``read_response``.

    ``Connection.read_response`` costs several microseconds of Python per
    reply (error translation, health-check bookkeeping, push handling),
    more than hiredis spends parsing a record's ``HGETALL``; a bulk load
    reads thousands of replies.  This does what it does for one batch:
    error replies are returned as their exceptions (the caller raises the
    first), socket errors and timeouts become redis-py's errors, and any
    failure half-way disconnects, so that no reply of this batch is left
    for the connection's next user.
    """
    parser: Any = getattr(conn, "_parser", None)
    if (
        _HiredisParser is None
        or type(parser) is not _HiredisParser
        # a connection reading its replies its own way (fakeredis's) is asked
        or getattr(type(conn), "read_response", None) is not _READ_RESPONSE
    ):
        return None
    reader = parser._reader
    if reader is None:
        return None
    gets = reader.gets
    fill = parser.read_from_socket
    replies: list[Any] = []
    append = replies.append
    try:
        for _ in range(count):
            reply = gets()
            while reply is _NOT_ENOUGH_DATA:
                fill()
                reply = gets()
            while reply.__class__ not in _PLAIN_REPLIES:
                # what Connection.read_response does besides returning it
                if isinstance(reply, redis.exceptions.ConnectionError):
                    raise reply
                if reply.__class__ is list:
                    if reply and isinstance(reply[0], redis.exceptions.ConnectionError):
                        raise reply[0]
                elif _PushNotification is not None and isinstance(reply, _PushNotification):
                    parser.handle_push_response(reply)  # not a reply: read on
                    reply = gets()
                    while reply is _NOT_ENOUGH_DATA:
                        fill()
                        reply = gets()
                    continue
                break
            append(reply)
    except OSError as exc:  # (socket.timeout is one)
        conn.disconnect()
        if isinstance(exc, TimeoutError):
            raise redis.exceptions.TimeoutError(
                f"Timeout reading from {conn._host_error()}"
            ) from exc
        raise redis.exceptions.ConnectionError(
            f"Error while reading from {conn._host_error()} : {exc.args}"
        ) from exc
    except BaseException:
        conn.disconnect()
        raise
    if conn.health_check_interval:
        conn.next_health_check = time.monotonic() + conn.health_check_interval
    return replies


def _hiredis_parts() -> tuple[Any, Any, Any]:
    """redis-py's hiredis parser class, its "not enough data" marker, and
    hiredis's push notification type (``None`` each without hiredis, or
    with a redis-py that names them otherwise)."""
    try:
        from hiredis import PushNotification
        from redis._parsers.hiredis import NOT_ENOUGH_DATA, _HiredisParser
    except ImportError:  # pragma: no cover - no hiredis, or another redis-py
        return None, None, None
    return _HiredisParser, NOT_ENOUGH_DATA, PushNotification


_HiredisParser, _NOT_ENOUGH_DATA, _PushNotification = _hiredis_parts()
_READ_RESPONSE = getattr(redis.connection.AbstractConnection, "read_response", None)

# Replies taken as they are (an error reply is a ResponseError instance, which
# the caller raises; a list is looked into, as redis-py does).
_PLAIN_REPLIES = frozenset({dict, bytes, int, float, type(None), redis.exceptions.ResponseError})


def _text_keys(fields: dict[Any, Any] | list[Any]) -> Mapping[str, Any]:
    """A hash reply (a dict, or over RESP2 a flat name, value... list) as
    the fields of a :class:`StoredRecord`: its names stay the bytes redis
    sent (:class:`ByteNamedFields`), read as text only if something asks."""
    if isinstance(fields, list):
        pairs = iter(fields)
        fields = dict(zip(pairs, pairs, strict=False))
    for name in fields:
        if name.__class__ is not bytes:  # a client decoding replies: names are text
            return {as_text(n): value for n, value in fields.items()}
        break
    return ByteNamedFields(fields)


def _held(reply: Any) -> bool:
    """Whether a save or swap script refused a unique value held by another record."""
    return isinstance(reply, list) and bool(reply) and reply[0] == b"unique"


def _ttl_ms(seconds: float) -> str:
    """A time to live in whole milliseconds (at least 1), as a script takes it."""
    return str(max(1, math.ceil(seconds * 1000)))


class _Outgoing:
    """The commands of one request, made while they are sent: iterating
    gives their pieces one by one, counting the commands given (``sent``)
    and stopping at the first piece that cannot be made (its error kept in
    ``failure``: the caller reads the replies of the commands sent, then
    reports it).  Each iteration starts over."""

    __slots__ = ("_make", "failure", "sent")

    def __init__(self, make: Callable[[], Iterator[tuple[bytes, int]]]) -> None:
        self._make = make
        self.sent = 0
        self.failure: Exception | None = None

    def __iter__(self) -> Iterator[bytes]:
        self.sent, self.failure = 0, None
        made = self._make()
        while True:
            try:
                piece, commands = next(made)
            except StopIteration:
                return
            except Exception as exc:  # not sent: the request ends before it
                self.failure = exc
                return
            self.sent += commands
            yield piece


class _MadeOnDemand(Sequence[_T]):
    """A sequence whose items are made when first read, then kept."""

    __slots__ = ("_made", "_makers")

    def __init__(self, makers: Sequence[Callable[[], _T]]) -> None:
        self._makers = makers
        self._made: dict[int, _T] = {}

    def __len__(self) -> int:
        return len(self._makers)

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | Sequence[_T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]  # negative indexes; IndexError
        made = self._made
        if index not in made:
            made[index] = self._makers[index]()
        return made[index]


def _pack_command_py(args: Sequence[str | bytes | int | float]) -> bytes:
    """One command in the redis protocol, as redis-py packs it: bytes as
    they are, strings as UTF-8, numbers as their ``repr``."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, (bytes, bytearray, memoryview)):
            data = bytes(arg)
        elif isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            data = repr(arg).encode("ascii")
        else:
            raise TypeError(f"cannot send {type(arg).__name__} {arg!r} to redis")
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def _hiredis_packer() -> Callable[[Sequence[str | bytes | int | float]], bytes]:
    try:
        from hiredis import pack_command
    except ImportError:  # pragma: no cover - hiredis is optional
        return _pack_command_py
    # hiredis packs bytes, str (UTF-8), int and float in C, byte for byte as
    # redis-py does (tested); the scripts' arguments are only of these types
    return cast("Callable[[Sequence[str | bytes | int | float]], bytes]", pack_command)


#: Packs one command (a tuple of its words) in the redis protocol.
_pack_command = _hiredis_packer()


def _pack(*args: str | bytes) -> bytes:
    """One command in the redis protocol (strings encoded as UTF-8)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode("utf-8") if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


_NO_STREAMS: Mapping[str, bytes] = MappingProxyType({})


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value
