"""The Redis Cluster backend: repocket on a real Redis Cluster (redis-py's
``RedisCluster``).

It is :class:`~repocket.backends.redis.RedisStorage` with what a cluster
needs instead of one server (see ``docs/cluster.rst`` for the whole story):

* **Shards.**  Each model's data is split into ``S`` shards (64 by default,
  ``?shards=S`` to choose); every key of shard ``n`` carries the hash tag
  ``{<module>:<Model>:<n>}``, so a record, its ByteStreams and the index
  data of its shard are in one hash slot, while the shards of a model spread
  over the slots, and so over every master.
* **One slot per script.**  Save, delete, append and compare-and-set are the
  scripts of the single-server backend, run on the record's slot.  They are
  not given the model's unique-claims hash (``repocket::unique:<module>:<Model>``,
  in a slot of its own): claims are taken by a script on that hash *before*
  the record's script, and the claims the record dropped are released
  *after* it, each release only if the claim still names the record.
* **Scatter-gather.**  A query runs the single-server steps on every shard,
  each shard in its own ``MULTI``/``EXEC`` (a transaction cannot span
  slots); the transactions of the shards a node serves are sent to that
  node in one write, all nodes before any reply is read, and the shards'
  pages are merged.  Anything redirected (``MOVED``/``ASK`` while slots
  migrate) is run again through redis-py, which follows redirections.
* **Every master.**  Scans (``check()``, ``reindex()``, ``clear()``) visit
  every master (redis-py's cluster ``SCAN``).

What is atomic: one record with its index entries (one script).  What is
not: a claim and the record's write (two steps, in that order); a query,
whose shards are read at slightly different moments.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import redis
import redis.exceptions
from redis.cluster import RedisCluster
from redis.commands.core import CoreCommands
from redis.connection import SSLConnection

from ..async_storage import AsyncStorage
from ..errors import (
    ConfigurationError,
    ConflictError,
    DoesNotExist,
    StorageConnectionError,
    StorageError,
    UniqueViolation,
)
from ..keys import META_PREFIX, PREFIX, STREAM_INFIX, Collection
from ..storage import (
    AllIds,
    FieldSwap,
    IndexEntry,
    LoadRequest,
    Order,
    Plan,
    RecordWrite,
    StoredRecord,
    UniqueClaim,
    redact_secrets,
    redact_url,
)
from ..text import as_text
from .layout import Shard, glob_escape, unique_key
from .redis import (
    _APPEND,
    _CREATE_MANY,
    _DELETE,
    _RESEND_OK,
    _SAVE,
    _SWAP,
    SAVE_BATCH,
    RedisStorage,
    _create_args,
    _direct_order,
    _merge_scored,
    _plain_create,
    _pop_shards,
    _ReadRetry,
    _score_text,
    _scored,
    _Script,
    _text_keys,
    _unique_violation,
    _with_defaults,
    _wrong_type,
)

__all__ = ["RedisClusterStorage", "DEFAULT_CLUSTER_SHARDS"]

# untyped in redis-py
_parse_url: Any = redis.connection.parse_url
_ClusterNode: Any = redis.cluster.ClusterNode

#: Shards per model on a cluster when the URL does not say: enough to spread
#: one model's records and index data over the masters of a realistic
#: cluster (the shards of a model are spread over its slots by their tags),
#: few enough that a query's scatter-gather stays one write per node.
DEFAULT_CLUSTER_SHARDS = 64

# Claims on a cluster: the model's unique-claims hash is in a slot of its own,
# so they are taken and released by these scripts, apart from the record's.

# KEYS: collection unique; ARGV: id, field/term pairs...
# Returns {'ok', field, term, ...} (the claims this call took: those the record
# did not hold yet), {'unique', field, term, holder} (nothing taken) or
# {'wrongtype', key, found, wanted}.
_CLAIM = _Script(
    r"""
local found = redis.call('TYPE', KEYS[1])['ok']
if found ~= 'none' and found ~= 'hash' then return {'wrongtype', KEYS[1], found, 'hash'} end
local id = ARGV[1]
for j = 2, #ARGV, 2 do
  local holder = redis.call('HGET', KEYS[1], ARGV[j] .. ':' .. ARGV[j + 1])
  if holder and holder ~= id then return {'unique', ARGV[j], ARGV[j + 1], holder} end
end
local taken = {}
for j = 2, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[j] .. ':' .. ARGV[j + 1], id) == 1 then
    taken[#taken + 1] = ARGV[j]
    taken[#taken + 1] = ARGV[j + 1]
  end
end
return {'ok', unpack(taken)}
"""
)

# KEYS: collection unique; ARGV: id, field/term pairs...
# Removes each claim that still names the record; returns how many.
_RELEASE = _Script(
    r"""
local found = redis.call('TYPE', KEYS[1])['ok']
if found ~= 'hash' then return 0 end
local released = 0
for j = 2, #ARGV, 2 do
  local claim = ARGV[j] .. ':' .. ARGV[j + 1]
  if redis.call('HGET', KEYS[1], claim) == ARGV[1] then
    redis.call('HDEL', KEYS[1], claim)
    released = released + 1
  end
end
return released
"""
)

#: Seconds a save refused by a claim whose holder does not hold the value
#: (a save under way, or interrupted) waits for it to settle; see
#: RedisClusterStorage._claim_settled.
CLAIM_SETTLE_S = 1.0

_CLUSTER_SCRIPTS = (_SAVE, _CREATE_MANY, _DELETE, _APPEND, _SWAP, _CLAIM, _RELEASE)

#: A script that reads a key it did not declare (a stream, an index entry)
#: is refused when that key has already moved to another node while its slot
#: migrates; it wrote nothing (see scripts.py), and is run again after a
#: pause, up to this many times (about two seconds in all), by which time
#: the slot has moved and the script is sent to its new node.
MOVED_KEY_ATTEMPTS = 100
MOVED_KEY_PAUSE_S = 0.02


def _refused_for_a_moved_key(reply: Any) -> bool:
    """Whether a script's reply is its refusal to touch a key of a slot
    that is moving to another node."""
    return isinstance(reply, redis.exceptions.ResponseError) and "non local key" in str(reply)


#: redirections and refusals a node gives while slots migrate or the
#: cluster changes: the commands were not run, and are run again through
#: redis-py, which follows them
_REDIRECTED = (
    redis.exceptions.AskError,  # MovedError is one too
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.ExecAbortError,
)


class _ClusterRetry(_ReadRetry):
    """The cluster client's own retry policy, resending only reads.

    ``RedisCluster`` runs a command again after a connection error or a
    timeout (refreshing its map of the cluster first), as many times as its
    policy's ``get_retries()``: this policy answers 0 outside a resend-safe
    operation, so a write that may have run is never sent twice.
    """

    def get_retries(self) -> int:
        return super().get_retries() if _RESEND_OK.get() else 0


class _Recorder(CoreCommands):
    """Records commands instead of sending them (redis-py's own command
    methods build the arguments), so that the single-server backend's query
    steps can be sent as one transaction per shard."""

    _event_dispatcher: Any = None  # what CoreCommands expects of a client; unused

    def __init__(self) -> None:
        self.command_stack: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **options: Any) -> _Recorder:
        self.command_stack.append((args, options))
        return self


class RedisClusterStorage(RedisStorage):
    """Stores records in a Redis Cluster, through redis-py's ``RedisCluster``.

    :param client: an existing ``redis.cluster.RedisCluster``; it must not
        decode responses.
    :param shards: how many shards each model is split into (at least 2: a
        single shard has no hash tag, and its keys would be in many slots).
    :param options: when no client is given, passed to ``RedisCluster``
        (``startup_nodes``, ``host``, ``port``, ``username``, ``password``,
        ``ssl``...).
    """

    # redis-py's cluster client sends each script to the node of its keys
    _packs_scripts = False

    scheme = "redis+cluster"
    # Expiring records are not supported on a cluster yet: the expiry index
    # would release unique claims kept in other slots (see docs/cluster.rst).
    supports_ttl = False

    def __init__(
        self,
        client: RedisCluster | None = None,
        *,
        shards: int = DEFAULT_CLUSTER_SHARDS,
        **options: Any,
    ) -> None:
        if not isinstance(shards, int) or isinstance(shards, bool) or shards < 2:
            raise ConfigurationError(
                f"a Redis Cluster needs at least 2 shards per model, not {shards!r} "
                f"(with one, a model's keys carry no hash tag and span many slots)"
            )
        if client is None:
            options = {k: v for k, v in options.items() if v is not None}
            options.setdefault("decode_responses", False)
            options = _with_defaults(options)
            options["retry"] = _cluster_retry(options["retry"])
            seeds = [f"{node.host}:{node.port}" for node in options.get("startup_nodes", ())]
            if "host" in options:
                seeds.append(f"{options['host']}:{options.get('port', 6379)}")
            where = f"redis cluster at {','.join(seeds) or 'localhost:6379'}"
            # redis-py asks the seeds for the map of the cluster right away
            try:
                client = RedisCluster(**options)
            except redis.exceptions.AuthenticationError as exc:
                raise StorageConnectionError(
                    f"authentication failed for {where} while trying to connect: {exc} "
                    f"(check the user name and password)"
                ) from exc
            except (redis.exceptions.RedisClusterException, redis.exceptions.RedisError) as exc:
                raise StorageConnectionError(
                    f"cannot reach {where} while trying to connect: {exc}"
                ) from exc
            except ValueError as exc:
                raise ConfigurationError(f"cannot open the {where}: {exc}") from exc
        # RedisStorage calls the client through the command methods that
        # redis.Redis and RedisCluster share; where they differ, this class
        # overrides the method.
        super().__init__(cast(redis.Redis, client), shards=shards)
        # typed loosely: much of redis-py's cluster client is untyped
        self._cluster: Any = client

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisClusterStorage:
        """``redis+cluster://[user:password@]host:port[,host2:port2...][?shards=S]``,
        or ``rediss+cluster://`` (TLS).

        Every ``host:port`` is a seed node: the client asks the first that
        answers for the map of the cluster, then talks to every master.  The
        user name and password are as for ``redis://`` (percent-encoded);
        other query values go to redis-py.  ``shards`` defaults to
        :data:`DEFAULT_CLUSTER_SHARDS`; a dataset must always be opened with
        the number of shards it was written with.

        :raises ConfigurationError: the URL cannot be used (no host, a port
            that is not a whole number from 1 to 65535, a database other
            than 0, a bad ``shards``...).  The message never shows a password.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("redis+cluster", "rediss+cluster"):
            raise ConfigurationError(
                f"{redact_url(url)!r}: the Redis Cluster backend takes redis+cluster:// "
                f"or rediss+cluster:// URLs"
            )
        plain = scheme.partition("+")[0]
        given = options.pop("shards", None)
        if given is None and not any(k == "shards" for k, _ in parse_qsl(parts.query)):
            given = DEFAULT_CLUSTER_SHARDS
        # the single-server URL checks (an "@" after the host, the shards)
        checked, shards = _pop_shards(plain + url[len(parts.scheme) :], given)
        parts = urlsplit(checked)
        userinfo, _, hosts = parts.netloc.rpartition("@")
        path = unquote(parts.path).strip("/")
        if path not in ("", "0"):
            raise ConfigurationError(
                f"{redact_url(url)!r}: a Redis Cluster has only database 0, not {path!r}"
            )
        nodes = [_seed(text, url) for text in hosts.split(",")]
        # redis-py reads the user info and the query as for one server
        first = f"{plain}://{userinfo + '@' if userinfo else ''}{quote(nodes[0].host)}"
        first += f":{nodes[0].port}" + (f"?{parts.query}" if parts.query else "")
        try:
            parsed = _parse_url(first)
        except ValueError as exc:
            raise ConfigurationError(
                f"redis cluster storage cannot use {redact_url(url)!r}: "
                f"{redact_secrets(str(exc), url)}"
            ) from None
        parsed.pop("host", None)
        parsed.pop("port", None)
        parsed.pop("db", None)
        if parsed.pop("connection_class", None) is SSLConnection:
            parsed["ssl"] = True
        return cls(shards=shards, startup_nodes=nodes, **{**parsed, **options})

    def open_async(self) -> AsyncStorage:
        """This storage for async code: its calls run in worker threads
        (:class:`~repocket.async_storage.ThreadedAsyncStorage`).  The
        single-server backend's native async path builds a ``redis.asyncio``
        client like its own, which a cluster client is not; the threads keep
        every cluster behaviour above (claims, scatter-gather) for async code."""
        from ..async_storage import ThreadedAsyncStorage

        return ThreadedAsyncStorage(self)  # type: ignore[abstract]  # completed by _complete()

    @property
    def native_client(self) -> Any:
        """The ``redis.cluster.RedisCluster`` client in use."""
        return self._cluster

    def _shard_count(self, collection: Collection) -> int:
        count = super()._shard_count(collection)
        if count < 2:
            # one shard has no hash tag: its keys would spread over the slots
            raise ConfigurationError(
                f"{collection.label} asks for {count} shard (Meta.shards), but on a "
                f"cluster every model needs at least 2; give it more or none"
            )
        return count

    def describe(self) -> str:
        nodes = self._cluster.nodes_manager.startup_nodes
        where = ",".join(sorted(nodes)) or "?"
        return f"redis cluster at {where} ({self.shards} shards)"

    @contextlib.contextmanager
    def _errors(self, action: str, *, resend: bool = False) -> Iterator[None]:
        """The single-server wrapping, plus redis-py's cluster errors, which
        are not all ``RedisError`` (a slot no node serves, a transaction
        over several slots)."""
        with super()._errors(action, resend=resend):
            try:
                yield
            except (redis.exceptions.SlotNotCoveredError, redis.exceptions.ClusterDownError) as exc:
                # a master down: its slots have no one to serve them
                raise StorageConnectionError(
                    f"cannot reach {self.describe()} while trying to {action}: {exc}"
                ) from exc
            except redis.exceptions.RedisClusterException as exc:
                raise StorageError(f"{self.describe()} failed to {action}: {exc}") from exc

    # -- scripts ---------------------------------------------------------------------

    def load_scripts(self) -> None:
        """Load repocket's scripts into every master now (``SCRIPT LOAD``)."""
        with self._errors("load repocket's scripts"):
            for script in _CLUSTER_SCRIPTS:
                self._cluster.script_load(script.text)

    def _pipelined_each(
        self, per_call: Sequence[_Script], calls: Sequence[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Run each call's script (``per_call``), in one cluster pipeline (one
        write per node); load a script into every master on NOSCRIPT.

        redis-py's cluster pipeline refuses ``pipe.evalsha()``, but sends an
        ``EVALSHA`` given as a plain command to the node of its keys' slot.
        """
        if len(calls) == 1:
            # one script needs no pipeline (which costs more than the command)
            keys, args = calls[0]
            return [self._run(per_call[0], keys, args)]
        replies: list[Any] = []
        for attempt in range(2):
            pipe = self._cluster.pipeline(transaction=False)
            for script, (keys, args) in zip(per_call, calls, strict=True):
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            replies = pipe.execute(raise_on_error=False)
            missing = {
                script
                for script, reply in zip(per_call, replies, strict=True)
                if isinstance(reply, redis.exceptions.NoScriptError)
            }
            if not missing or attempt:
                break
            for script in missing:
                self._cluster.script_load(script.text)
        replies = list(replies)
        for position, reply in enumerate(replies):
            if _refused_for_a_moved_key(reply):
                keys, args = calls[position]
                replies[position] = self._run(per_call[position], keys, args)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _run(self, script: _Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA, run again while a key the script reads without declaring
        it is on another node (its slot is moving): the script wrote nothing,
        since every script reads such keys before its first write."""
        for attempt in range(MOVED_KEY_ATTEMPTS):
            try:
                return super()._run(script, keys, args)
            except redis.exceptions.ResponseError as exc:
                if not _refused_for_a_moved_key(exc) or attempt == MOVED_KEY_ATTEMPTS - 1:
                    raise
                time.sleep(MOVED_KEY_PAUSE_S)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- unique claims ---------------------------------------------------------------

    def _claim_settled(
        self, collection: Collection, calls: Sequence[tuple[str, frozenset[UniqueClaim]]]
    ) -> list[Any]:
        """:meth:`_claim`, refused only by a record that holds the value.

        A claim is taken before its record is written and released after
        the record gave the value up, so a refusal may come from a save or a
        change still under way: its holder's stored claims (remembered with
        its index entries) do not have the value yet, or no longer.  Such a
        refusal is retried, with a growing pause, until the holder holds the
        value -- then a ``UniqueViolation`` names a record that can be read,
        as on one server -- or its claim is gone, or :data:`CLAIM_SETTLE_S`
        passed (a claim left by an interrupted save, which ``reindex()``
        repairs).
        """
        replies = self._claim(collection, calls)
        deadline = time.monotonic() + CLAIM_SETTLE_S
        pause = 0.001
        while True:
            refused = [i for i, reply in enumerate(replies) if _refused(reply)]
            if not refused:
                return replies
            holders = [as_text(replies[i][3]) for i in refused]
            stored = self.read_index_entries(collection, holders)
            unsettled = [
                i
                for i, terms in zip(refused, stored, strict=True)
                if terms is None
                or UniqueClaim(as_text(replies[i][1]), as_text(replies[i][2])) not in terms[1]
            ]
            if not unsettled or time.monotonic() >= deadline:
                return replies
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            again = self._claim(collection, [calls[i] for i in unsettled])
            for i, reply in zip(unsettled, again, strict=True):
                replies[i] = reply

    def _claim(
        self, collection: Collection, calls: Sequence[tuple[str, frozenset[UniqueClaim]]]
    ) -> list[Any]:
        """Take each ``(record id, claims)``'s claims, all or none per record.

        :returns: per call, the script's reply (``None`` for no claims).
        """
        wanted = [(i, record_id, claims) for i, (record_id, claims) in enumerate(calls) if claims]
        replies: list[Any] = [None] * len(calls)
        if not wanted:
            return replies
        key = unique_key(collection)
        script_calls = [([key], [record_id, *_flat(claims)]) for _, record_id, claims in wanted]
        for (i, _, _), reply in zip(wanted, self._pipelined(_CLAIM, script_calls), strict=True):
            replies[i] = reply
        return replies

    def _release(self, collection: Collection, calls: Sequence[tuple[str, list[Any]]]) -> None:
        """Release claims (flat field/term lists), each only if it still names
        its record: a claim another record took meanwhile stays its own."""
        script_calls = [
            ([unique_key(collection)], [record_id, *flat]) for record_id, flat in calls if flat
        ]
        if script_calls:
            self._pipelined(_RELEASE, script_calls)

    # -- writing ---------------------------------------------------------------------

    def save_record(self, write: RecordWrite) -> None:
        """Claims first (if the record has unique values), then the record's
        script on its slot, then the release of the claims it dropped."""
        error = self._save_batch([write])[0]
        if error is not None:
            raise error

    def save_records(self, writes: Sequence[RecordWrite]) -> None:
        """Each step of :meth:`save_record` for the whole batch at once (one
        cluster pipeline per step).  As on one server, a refused save raises
        after the batch, naming the first, and the others are written."""
        if not writes:
            return
        errors = self._save_batch(writes)
        first: UniqueViolation | ConflictError | None = None
        written: list[str] = []
        for write, error in zip(writes, errors, strict=True):
            if error is None:
                written.append(write.record_id)
            elif isinstance(error, (UniqueViolation, ConflictError)):
                first = first or error
            else:
                raise error
        if first is not None:
            first.written = written
            raise first

    def _save_batch(self, writes: Sequence[RecordWrite]) -> list[Exception | None]:
        errors: list[Exception | None] = [None] * len(writes)
        taken: list[list[Any]] = [[] for _ in writes]
        label = f"save {len(writes)} records" if len(writes) > 1 else "save"
        by_collection: dict[Collection, list[int]] = {}
        for i, write in enumerate(writes):
            by_collection.setdefault(write.collection, []).append(i)
        with self._errors(f"claim unique values to {label}"):
            for collection, positions in by_collection.items():
                claimed = self._claim_settled(
                    collection, [(writes[i].record_id, writes[i].unique) for i in positions]
                )
                for i, reply in zip(positions, claimed, strict=True):
                    if reply is None:
                        continue
                    if reply[0] == b"unique":
                        errors[i] = _unique_violation(writes[i].collection.label, reply)
                    elif reply[0] == b"wrongtype":
                        errors[i] = _wrong_type(f"claim unique values of {label}", reply)
                    else:
                        taken[i] = list(reply[1:])
        todo = [i for i in range(len(writes)) if errors[i] is None]
        # New records without claims, streams or expiry: CREATE_MANY, one
        # script per chunk of a shard, as on one server
        plain: list[int] = []
        if len(writes) > 1 and len({writes[i].record_id for i in todo}) == len(todo):
            plain = [i for i in todo if _plain_create(writes[i])]
        if plain:
            chosen = set(plain)
            todo = [i for i in todo if i not in chosen]
        calls = [self._save_call(writes[i]) for i in todo]
        # without the claims key (its 4th): the claims were taken above
        script_calls = [(keys[:3], args) for keys, args in calls]
        chunks, create_calls = self._create_calls(writes, plain)
        releases: dict[Collection, list[tuple[str, list[Any]]]] = {}
        # When this fails (a node unreachable), nothing is known of the
        # records' scripts, so the claims taken are left as they are: a
        # record whose script did run holds them (see docs/cluster.rst).
        replies: list[Any] = []
        if script_calls or create_calls:
            scripts = [_SAVE] * len(script_calls) + [_CREATE_MANY] * len(create_calls)
            name = label if len(writes) > 1 else f"save {calls[0][0][0]}"
            with self._errors(name):
                replies = self._pipelined_each(scripts, [*script_calls, *create_calls])
        for chunk, chunk_replies in zip(chunks, replies[len(script_calls) :], strict=True):
            for i, reply in zip(chunk, chunk_replies, strict=True):
                write = writes[i]
                key = self.record_key(write.collection, write.record_id)
                try:
                    self._check_save_reply(write, key, reply)
                except (UniqueViolation, ConflictError, StorageError) as exc:
                    errors[i] = exc
        replies = replies[: len(script_calls)]
        for i, (keys, _), reply in zip(todo, calls, replies, strict=True):
            write = writes[i]
            try:
                self._check_save_reply(write, keys[0], reply)
            except (UniqueViolation, ConflictError, StorageError) as exc:
                errors[i] = exc
                # refused: give back what this save took
                releases.setdefault(write.collection, []).append((write.record_id, taken[i]))
            else:
                dropped = list(reply[1:])
                releases.setdefault(write.collection, []).append((write.record_id, dropped))
        with self._errors(f"release unique values after {label}"):
            for collection, calls_ in releases.items():
                self._release(collection, calls_)
        return errors

    def _create_calls(
        self, writes: Sequence[RecordWrite], positions: Sequence[int]
    ) -> tuple[list[list[int]], list[tuple[list[str], list[Any]]]]:
        """The ``CREATE_MANY`` calls saving the writes at ``positions``: the
        positions of each call's records, and the calls (keys of one slot:
        the shard's id index and terms, no claims key)."""
        groups: dict[tuple[Shard, tuple[str, ...]], list[int]] = {}
        for i in positions:
            write = writes[i]
            shard = self._shard(write.collection, write.record_id)
            groups.setdefault((shard, tuple(write.fields)), []).append(i)
        chunks: list[list[int]] = []
        calls: list[tuple[list[str], list[Any]]] = []
        for (shard, names), members in groups.items():
            for start in range(0, len(members), SAVE_BATCH):
                chunk = members[start : start + SAVE_BATCH]
                chunks.append(chunk)
                args = _create_args(shard, names, [writes[i] for i in chunk])
                calls.append(([shard.ids_key, shard.terms_key], args))
        return chunks, calls

    def swap_field(self, swap: FieldSwap) -> str | bytes | None:
        """Compare-and-set of one field: the new claims first, then the
        record's script, then the release of the claims it dropped."""
        shard = self._shard(swap.collection, swap.record_id)
        key = shard.record_key(swap.record_id)
        taken: list[Any] = []
        if swap.claim:
            with self._errors(f"claim unique values to update {key}"):
                reply = self._claim_settled(swap.collection, [(swap.record_id, swap.claim)])[0]
            if reply[0] == b"unique":
                raise _unique_violation(swap.collection.label, reply)
            if reply[0] == b"wrongtype":
                raise _wrong_type(f"update {key}", reply)
            taken = list(reply[1:])
        args: list[Any] = [swap.record_id, shard.index_prefix, swap.field, swap.expected]
        args.append(swap.value)
        for entries in (swap.remove, swap.add):
            args.append(len(entries))
            for entry in entries:
                args.append(entry.name)
                args.append(_score_text(entry.score))
        for claims in (swap.release, swap.claim):
            args.append(len(claims))
            args.extend(_flat(claims))
        with self._errors(f"update {key}"):
            reply = self._run(_SWAP, [key, shard.terms_key], args)
        ok = reply[0] == b"ok"
        release = _flat(swap.release - swap.claim) if ok else taken
        with self._errors(f"release unique values after updating {key}"):
            self._release(swap.collection, [(swap.record_id, release)])
        status = reply[0]
        if ok:
            return None
        if status == b"stale":
            return bytes(reply[1])
        if status == b"missing":
            raise DoesNotExist(f"{swap.collection.label} {swap.record_id} does not exist ({key})")
        if status == b"wrongtype":
            raise _wrong_type(f"update {key}", reply)
        raise StorageError(f"unexpected reply {reply!r} from the update script for {key}")

    def delete_record(self, collection: Collection, record_id: str, streams: Sequence[str]) -> int:
        """The record's script, then the release of the claims it held."""
        shard = self._shard(collection, record_id)
        key = shard.record_key(record_id)
        with self._errors(f"delete {key}"):
            reply = self._run(
                _DELETE,
                [key, shard.ids_key, shard.terms_key],
                [record_id, shard.index_prefix, *streams],
            )
        if reply and reply[0] == b"wrongtype":
            raise _wrong_type(f"delete {key}", reply)
        with self._errors(f"release unique values after deleting {key}"):
            self._release(collection, [(record_id, list(reply[1:]))])
        return int(reply[0])

    # -- reading ---------------------------------------------------------------------

    def load_records(self, requests: Sequence[LoadRequest]) -> list[StoredRecord | None]:
        """The reads of each master in one write (:meth:`_read_per_node`)."""
        if not requests:
            return []
        if len(requests) == 1 and not requests[0].streams:
            # one command needs no pipeline (which costs a little per use)
            record_id = requests[0].record_id
            key = self._shard(requests[0].collection, record_id).record_key(record_id)
            with self._errors(f"load {key}", resend=True):
                fields = self._cluster.hgetall(key)
            return [StoredRecord(record_id, _text_keys(fields), {}) if fields else None]
        commands: list[tuple[Any, ...]] = []
        for request in requests:
            shard = self._shard(request.collection, request.record_id)
            commands.append(("HGETALL", shard.record_key(request.record_id)))
            for name in request.streams:
                commands.append(("GET", shard.stream_key(request.record_id, name)))
        with self._errors(f"load {len(requests)} record(s)", resend=True):
            replies = iter(self._read_per_node(commands))
        results: list[StoredRecord | None] = []
        for request in requests:
            fields = next(replies)
            streams = {name: next(replies) or b"" for name in request.streams}
            results.append(
                StoredRecord(request.record_id, _text_keys(fields), streams) if fields else None
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
        """Every shard's first ``offset + limit`` ids (scored), one
        transaction per shard, merged in the result's order."""
        if limit == 0:
            return []
        stop = None if limit is None else offset + limit
        with self._errors(f"query {collection.label}", resend=True):
            pages = self._scatter(
                collection,
                lambda pipe, shard: [
                    self._queue_page(pipe, shard, plan, order, 0, stop, withscores=True)
                ],
            )
        merged = _merge_scored([_scored(_pairs(page)) for (page,) in pages], order)
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
        """The guard's count and the page, in one transaction per shard."""
        if limit == 0:
            return [] if self.count_ids(collection, guard) == 0 else None
        stop = None if limit is None else offset + limit
        with self._errors(f"query {collection.label}", resend=True):
            found = self._scatter(
                collection,
                lambda pipe, shard: [
                    self._queue_count(pipe, shard, guard),
                    self._queue_page(pipe, shard, plan, order, 0, stop, withscores=True),
                ],
            )
        if any(int(count) for count, _ in found):
            return None
        merged = _merge_scored([_scored(_pairs(page)) for _, page in found], order)
        return [record_id for _, record_id in itertools.islice(merged, offset, stop)]

    def count_ids(self, collection: Collection, plan: Plan) -> int:
        with self._errors(f"count {collection.label}", resend=True):
            counts = self._scatter(
                collection, lambda pipe, shard: [self._queue_count(pipe, shard, plan)]
            )
        return sum(int(count) for (count,) in counts)

    def count_ids_unless(self, collection: Collection, guard: Plan, plan: Plan) -> int | None:
        """The guard's count and the plan's, in one transaction per shard."""
        with self._errors(f"count {collection.label}", resend=True):
            counts = self._scatter(
                collection,
                lambda pipe, shard: [
                    self._queue_count(pipe, shard, guard),
                    self._queue_count(pipe, shard, plan),
                ],
            )
        if any(int(guarded) for guarded, _ in counts):
            return None
        return sum(int(count) for _, count in counts)

    def iter_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        """Every id in lexical order: the first page of every shard's id
        index in one round trip (one transaction per shard, as for a
        query), then further pages of a shard as the merge reaches them."""

        def queue(pipe: Any, shard: Shard) -> list[int]:
            pipe.zrangebylex(shard.ids_key, b"-", b"+", start=0, num=batch_size)
            return [len(pipe.command_stack) - 1]

        with self._errors(f"read the ids of {collection.label}", resend=True):
            firsts = self._scatter(collection, queue)
        streams = [
            self._shard_ids_from(shard, page, batch_size)
            for shard, (page,) in zip(self._shards(collection), firsts, strict=True)
        ]
        yield from heapq.merge(*streams)

    def _shard_ids_from(self, shard: Shard, page: list[Any], batch_size: int) -> Iterator[str]:
        """A shard's ids: ``page`` (its first), then the pages after it."""
        while True:
            yield from (as_text(record_id) for record_id in page)
            if len(page) < batch_size:
                return
            start = b"(" + (page[-1] if isinstance(page[-1], bytes) else page[-1].encode())
            with self._errors(f"read the ids of {shard.collection.label}", resend=True):
                page = self._cluster.zrangebylex(
                    shard.ids_key, start, b"+", start=0, num=batch_size
                )

    def iter_query_ids(
        self, collection: Collection, plan: Plan, order: Order | None = None, batch_size: int = 500
    ) -> Iterator[str]:
        """As on one server: a snapshot of the result per shard (taken by
        one transaction per shard, all sent at once), read batch by batch
        and merged in the result's order."""
        if isinstance(plan, AllIds) and order is None:
            yield from self.iter_ids(collection, batch_size)
            return
        reverse = order is not None and order.descending
        snapshots: dict[Shard, str] = {}

        def queue(pipe: Any, shard: Shard) -> list[int]:
            snapshot = snapshots[shard] = shard.temp_key(uuid.uuid4().hex)
            temps: list[str] = []
            direct = _direct_order(shard, plan, order)
            if direct is not None:
                key, low, high = direct
                pipe.zrangestore(snapshot, key, low, high, byscore=True)
            else:
                source = self._evaluate(pipe, shard, plan, temps)
                weights = {source: 0}
                if order is not None:
                    weights[shard.index_key(order.name)] = 1
                pipe.zinterstore(snapshot, weights)
            if temps:
                pipe.unlink(*temps)
            at = len(pipe.command_stack)
            self._queue_take(pipe, snapshot, batch_size, reverse, True)
            return [at, at + 1]

        with self._errors(f"query {collection.label}", resend=True):
            firsts = self._scatter(collection, queue)
        shards = self._shards(collection)
        streams = [
            self._drain(
                collection, snapshots[shard], int(total), _pairs(page), batch_size, reverse, True
            )
            for shard, (total, page) in zip(shards, firsts, strict=True)
        ]
        for _, record_id in _merge_scored(streams, order):
            yield record_id

    def _read_per_node(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Replies of read commands (each keyed by its second argument), the
        commands of each master sent in one write, to every master before
        any reply is read.

        redis-py's cluster pipeline does the same, but spends more Python per
        command than the server spends on an ``HGETALL``; this packs each
        node's commands once and reads raw replies (a hash comes back as a
        flat list over RESP2, which :func:`_text_keys` reads).  A command a
        node redirected (its slot moving) or that a node failed to answer is
        sent again through the cluster pipeline, which follows redirections.
        """
        by_node: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        for i, command in enumerate(commands):
            node = self._cluster.get_node_from_key(command[1])
            nodes[node.name] = node
            by_node.setdefault(node.name, []).append(i)
        replies: list[Any] = [None] * len(commands)
        again: list[int] = []
        sent = []
        for name, positions in by_node.items():
            pool = self._cluster.get_redis_connection(nodes[name]).connection_pool
            conn: Any = pool.get_connection()
            try:
                packed = conn.pack_commands([commands[i] for i in positions])
                conn.send_packed_command(packed, check_health=False)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                conn.disconnect()
                pool.release(conn)
                again.extend(positions)
            else:
                sent.append((pool, conn, positions))
        failure: redis.exceptions.ResponseError | None = None
        for pool, conn, positions in sent:
            try:
                for i in positions:
                    try:
                        replies[i] = conn.read_response()
                    except _REDIRECTED:
                        again.append(i)
                    except redis.exceptions.ResponseError as exc:
                        failure = failure or exc
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                conn.disconnect()
                again.extend(i for i in positions if replies[i] is None)
            except BaseException:
                conn.disconnect()
                raise
            finally:
                pool.release(conn)
        if failure is not None:
            raise failure
        if again:
            again = sorted(set(again))
            pipe = self._cluster.pipeline(transaction=False)
            for i in again:
                pipe.execute_command(*commands[i])
            for i, reply in zip(again, pipe.execute(), strict=True):
                replies[i] = reply
        return replies

    def _scatter(
        self, collection: Collection, queue: Callable[[Any, Shard], list[int]]
    ) -> list[list[Any]]:
        """Run ``queue``'s steps on every shard of ``collection``, each
        shard in one ``MULTI``/``EXEC``, and return, per shard in order, the
        replies at the positions ``queue`` returned.

        The transactions of the shards a node serves go to it in one write,
        to every node before any reply is read: one round trip for the whole
        query.  A shard whose transaction a node refused (a slot moving,
        ``MOVED``/``ASK``, ``TRYAGAIN``) or that a node failed to answer is
        run again through redis-py's cluster transaction, which follows
        redirections and refreshes its map of the cluster.
        """
        shards = self._shards(collection)
        recorded: list[tuple[list[tuple[tuple[Any, ...], dict[str, Any]]], list[int]]] = []
        for shard in shards:
            recorder = _Recorder()
            marks = queue(recorder, shard)
            recorded.append((recorder.command_stack, marks))
        by_node: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        for i, shard in enumerate(shards):
            node = self._cluster.get_node_from_key(shard.ids_key)
            nodes[node.name] = node
            by_node.setdefault(node.name, []).append(i)
        results: list[list[Any] | None] = [None] * len(shards)
        sent = []
        for name, positions in by_node.items():
            conn: Any = None
            try:
                pool = self._cluster.get_redis_connection(nodes[name]).connection_pool
                conn = pool.get_connection()
                commands: list[tuple[Any, ...]] = []
                for i in positions:
                    commands.append(("MULTI",))
                    commands.extend(args for args, _ in recorded[i][0])
                    commands.append(("EXEC",))
                conn.send_packed_command(conn.pack_commands(commands), check_health=False)
                sent.append((nodes[name], conn, positions))
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                if conn is not None:
                    conn.disconnect()
                    nodes[name].redis_connection.connection_pool.release(conn)
        for node, conn, positions in sent:
            try:
                for i in positions:
                    results[i] = _read_transaction(conn, len(recorded[i][0]))
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                conn.disconnect()
            except BaseException:
                conn.disconnect()
                raise
            finally:
                node.redis_connection.connection_pool.release(conn)
        replies: list[list[Any]] = []
        for i, (commands, marks) in enumerate(recorded):
            reply = results[i]
            if reply is None:
                pipe = self._cluster.pipeline(transaction=True)
                for args, options in commands:
                    pipe.execute_command(*args, **options)
                reply = pipe.execute()
            replies.append([reply[at] for at in marks])
        return replies

    # -- index maintenance: one scan of every master per kind of key ------------
    #
    # The single-server methods scan once per shard; on a cluster each scan
    # visits every master's whole keyspace, so they would cost S times the
    # keyspace.  These scan once, for every shard's keys at a time, and
    # read the shard from the key's tag.

    def _scan_tagged(
        self, collection: Collection, head: str, batch_size: int, kind: str | None = None
    ) -> Iterator[tuple[bytes, str | None]]:
        """Every key ``<head>{<module>:<Model>:<n>}:<rest>`` on every master:
        ``(key, rest)``, ``rest`` being ``None`` for a key whose name is not
        UTF-8 (repocket writes none)."""
        tag = f"{{{collection.module}:{collection.name}:"
        pattern = glob_escape(head + tag) + "*"
        shaped = re.compile(re.escape(head + tag) + r"\d+\}:", re.S)
        for key in self._cluster.scan_iter(match=pattern, count=batch_size, _type=kind):
            try:
                text = key.decode("utf-8")
            except UnicodeDecodeError:
                yield key, None
                continue
            match = shaped.match(text)
            if match is not None:
                yield key, text[match.end() :]

    def iter_stored_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        """One ``SCAN`` of every master for the collection's record keys."""
        with self._errors(f"scan the records of {collection.label}", resend=True):
            for _, rest in self._scan_tagged(collection, f"{PREFIX}:", batch_size):
                # not UTF-8: not repocket's (iter_stray_keys reports it)
                if rest is not None and STREAM_INFIX not in rest:
                    yield rest

    def iter_index_members(
        self, collection: Collection, batch_size: int = 500
    ) -> Iterator[tuple[str, IndexEntry]]:
        """One ``SCAN`` of every master per kind (sets, sorted sets) for the
        collection's index keys, then each with ``SSCAN`` or ``ZSCAN``."""
        with self._errors(f"scan the index of {collection.label}", resend=True):
            for kind in ("set", "zset"):
                for key, name in self._scan_tagged(
                    collection, f"{META_PREFIX}index:", batch_size, kind
                ):
                    if name is None:
                        continue
                    if kind == "set":
                        for member in self._cluster.sscan_iter(key, count=batch_size):
                            yield as_text(member), IndexEntry(name)
                    else:
                        for member, score in self._cluster.zscan_iter(key, count=batch_size):
                            yield as_text(member), IndexEntry(name, float(score))

    def iter_stray_keys(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        """As on one server (ByteStreams whose record is gone, names that are
        not UTF-8, temporary results with no expiry), one scan per kind."""
        with self._errors(f"scan the keys of {collection.label}", resend=True):
            streams: list[str] = []
            for key, rest in self._scan_tagged(collection, f"{PREFIX}:", batch_size):
                if rest is None:
                    yield as_text(key)
                elif STREAM_INFIX in rest:
                    streams.append(key.decode("utf-8"))
                if len(streams) >= batch_size:
                    yield from self._orphan_streams(streams)
                    streams = []
            yield from self._orphan_streams(streams)
            for key, _ in self._scan_tagged(collection, f"{META_PREFIX}tmp:", batch_size):
                if self._cluster.pttl(key) == -1:
                    yield as_text(key)

    def _orphan_streams(self, streams: Sequence[str]) -> list[str]:
        """The stream keys among ``streams`` whose record hash is gone."""
        if not streams:
            return []
        pipe = self._cluster.pipeline(transaction=False)
        for key in streams:
            pipe.exists(key.rpartition(STREAM_INFIX)[0])
        return [key for key, exists in zip(streams, pipe.execute(), strict=True) if not exists]

    def close(self) -> None:
        self._cluster.close()


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _cluster_retry(retry: Any) -> Any:
    """repocket's read-only retry policy as the cluster client's own."""
    if type(retry) is _ReadRetry:
        return _ClusterRetry(retry._backoff, retry._retries, retry._supported_errors)
    return retry


def _seed(text: str, url: str) -> Any:
    """One ``host:port`` of a cluster URL's node list."""
    host, _, port_text = text.strip().rpartition(":")
    host = unquote(host).strip("[]")
    if not host:
        raise ConfigurationError(f"{redact_url(url)!r}: every node must be given as host:port")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ConfigurationError(
            f"the port of redis cluster node {host!r} must be a whole number from 1 to 65535"
        )
    return _ClusterNode(host, int(port_text))


def _read_transaction(conn: Any, queued: int) -> list[Any] | None:
    """Read the replies of ``MULTI``, ``queued`` commands and ``EXEC``;
    ``None`` when the node refused the transaction (a redirection), which
    then ran nothing."""
    refused = False
    conn.read_response()  # +OK to MULTI
    for _ in range(queued):
        try:
            conn.read_response()  # +QUEUED
        except _REDIRECTED:
            refused = True
    try:
        reply = conn.read_response()
    except _REDIRECTED:
        return None
    if refused or reply is None:
        return None
    for item in reply:
        if isinstance(item, _REDIRECTED):
            return None
        if isinstance(item, redis.exceptions.ResponseError):
            raise item
    return list(reply)


def _pairs(page: Any) -> list[tuple[Any, Any]]:
    """``(member, score)`` pairs of a ``WITHSCORES`` reply, however it came:
    raw and flat (RESP2, from :meth:`RedisClusterStorage._scatter`), raw
    pairs (RESP3), or pairs made by redis-py's reply callbacks."""
    items = list(page)
    if not items or isinstance(items[0], (list, tuple)):
        return [(member, score) for member, score in items]
    return list(zip(items[::2], items[1::2], strict=True))


def _refused(reply: Any) -> bool:
    return reply is not None and reply[0] == b"unique"


def _flat(claims: frozenset[UniqueClaim]) -> list[str]:
    flat: list[str] = []
    for claim in sorted(claims):
        flat.append(claim.field)
        flat.append(claim.term)
    return flat
