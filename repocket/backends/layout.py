"""The redis backend's key layout: shards, index and meta keys.

Records are named by :mod:`repocket.keys` (``repocket:<module>:<Model>:<id>``,
the layout of repocket 0.0.1).  What the redis backend keeps *about* records
(the id index, secondary indexes, remembered entries, unique claims, the
expiry index) lives under ``repocket::<kind>:...``.  The empty segment after
``repocket:`` can never be a Python module name, so these keys can never
collide with a record key, while everything stays under the ``repocket:``
prefix (one ACL key pattern, ``~repocket:*``, covers all of it).

Shards.  A collection's index data may be split into ``S`` shards; record
``id`` belongs to shard ``crc32(id) % S``.  With ``S = 1`` (a single server,
the default) the names are used unchanged.  With ``S > 1`` every key of
shard ``n`` carries the hash tag ``{<module>:<ModelName>:<n>}``, so that a
record, its ByteStreams and the index data its entries go to share one Redis
Cluster hash slot (and one write script touches one slot), while the shards
of a model spread over the cluster::

    repocket:{<module>:<ModelName>:<n>}:<id>                 record hash
    repocket:{<module>:<ModelName>:<n>}:<id>:field:<name>    ByteStream string
    repocket::ids:{<module>:<ModelName>:<n>}                 the shard's ids
    repocket::index:{<module>:<ModelName>:<n>}:<entry>       one index entry
    repocket::terms:{<module>:<ModelName>:<n>}               remembered entries
    repocket::expiry:{<module>:<ModelName>:<n>}              expiring ids
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property

from ..keys import META_PREFIX, PREFIX, STREAM_INFIX, Collection

__all__ = [
    "META_KINDS",
    "Shard",
    "glob_escape",
    "meta_key",
    "meta_patterns",
    "record_patterns",
    "shard_number",
    "shard_of",
    "shards_of",
    "unique_key",
]

#: the kinds of data kept about a collection, under ``repocket::<kind>:``
META_KINDS = ("ids", "index", "terms", "unique", "tmp", "expiry")


def glob_escape(text: str) -> str:
    """``text`` with redis glob characters escaped, to be matched literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def shard_number(record_id: str, shards: int) -> int:
    """The shard a record id belongs to, out of ``shards``."""
    if shards == 1:
        return 0
    return zlib.crc32(record_id.encode("utf-8", "surrogatepass")) % shards


def meta_key(collection: Collection, kind: str) -> str:
    """A key for data repocket keeps about a collection (e.g. ``ids``), unsharded."""
    return f"{META_PREFIX}{kind}:{collection.module}:{collection.name}"


def unique_key(collection: Collection) -> str:
    """The hash of ``<field>:<term>`` -> id for unique fields (one per
    collection, whatever the number of shards)."""
    return meta_key(collection, "unique")


def shard_of(collection: Collection, record_id: str, shards: int) -> Shard:
    """The shard holding record ``record_id``."""
    return Shard(collection, shard_number(record_id, shards), shards)


def shards_of(collection: Collection, shards: int) -> list[Shard]:
    """Every shard of a collection, in order."""
    return [Shard(collection, number, shards) for number in range(shards)]


def meta_patterns(collection: Collection) -> tuple[str, ...]:
    """Glob patterns matching every meta key of a collection (any layout,
    0.1.0's per-record keys included), and no other key.

    Each pattern starts with a kind and the collection's module and name in
    full (glob characters escaped), so that no key of another collection --
    whose names may hold any user value after that point -- can match.
    """
    module, name = glob_escape(collection.module), glob_escape(collection.name)
    patterns = []
    for kind in META_KINDS:
        patterns.append(f"{META_PREFIX}{kind}:{module}:{name}")
        patterns.append(f"{META_PREFIX}{kind}:{module}:{name}:*")
        patterns.append(f"{META_PREFIX}{kind}:{{{module}:{name}:*")
    return tuple(patterns)


def record_patterns(collection: Collection) -> tuple[str, ...]:
    """Glob patterns matching a collection's record and stream keys (any layout)."""
    return (
        f"{collection.prefix}:*",
        f"{PREFIX}:{{{collection.module}:{collection.name}:*}}:*",
    )


@dataclass(frozen=True)
class Shard:
    """The keys of one shard of a collection's records and index data."""

    collection: Collection
    number: int
    shards: int

    @cached_property
    def tag(self) -> str:
        """The hash tag every key of the shard carries (empty when ``S = 1``)."""
        if self.shards == 1:
            return ""
        return f"{{{self.collection.module}:{self.collection.name}:{self.number}}}"

    def _meta(self, kind: str) -> str:
        if self.shards == 1:
            return meta_key(self.collection, kind)
        return f"{META_PREFIX}{kind}:{self.tag}"

    @cached_property
    def record_prefix(self) -> str:
        """What every record key of the shard starts with (``:`` included)."""
        if self.shards == 1:
            return f"{self.collection.prefix}:"
        return f"{PREFIX}:{self.tag}:"

    def record_key(self, record_id: str) -> str:
        """The key of the hash holding the record's fields."""
        return f"{self.record_prefix}{record_id}"

    def stream_key(self, record_id: str, field: str) -> str:
        """The key of the string holding one ByteStream field of a record."""
        return f"{self.record_prefix}{record_id}{STREAM_INFIX}{field}"

    @cached_property
    def ids_key(self) -> str:
        """The sorted set of the shard's record ids (all scores 0: lexical order)."""
        return self._meta("ids")

    @cached_property
    def index_prefix(self) -> str:
        """What the key of every index entry of the shard starts with."""
        return f"{self._meta('index')}:"

    def index_key(self, name: str) -> str:
        """The set or sorted set holding one index entry name's ids."""
        return f"{self.index_prefix}{name}"

    @cached_property
    def terms_key(self) -> str:
        """The hash of record id -> the index entries and claims the record
        was last saved with, so that an update removes exactly the entries it
        no longer has."""
        return self._meta("terms")

    @cached_property
    def expiry_key(self) -> str:
        """The sorted set of the shard's expiring record ids, scored by the
        time (ms since the epoch) they expire at."""
        return self._meta("expiry")

    def temp_key(self, token: str) -> str:
        """A short-lived key for intermediate query results."""
        return f"{self._meta('tmp')}:{token}"
