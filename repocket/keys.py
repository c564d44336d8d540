"""The one place where repocket's storage key names are built and parsed.

The layout is the one repocket 0.0.1 documented, so data written by either
stays readable by both::

    repocket:<model module>:<ModelName>:<id>                 record hash
    repocket:<model module>:<ModelName>:<id>:field:<name>    ByteStream string

Data that repocket keeps *about* records (the id index, secondary indexes,
unique claims) lives under ``repocket::<kind>:...``.  The empty segment after
``repocket:`` can never be a Python module name, so these keys can never
collide with a record key, while everything stays under the ``repocket:``
prefix (one ACL key pattern, ``~repocket:*``, covers all of it).

Shards.  A collection's index data may be split into ``S`` shards; record
``id`` belongs to shard ``crc32(id) % S``.  With ``S = 1`` (a single server,
the default) the names above are used unchanged.  With ``S > 1`` every key of
shard ``n`` carries the hash tag ``{<module>:<ModelName>:<n>}``, so that a
record, its ByteStreams and the index data its entries go to share one Redis
Cluster hash slot (and one write script touches one slot), while the shards
of a model spread over the cluster::

    repocket:{<module>:<ModelName>:<n>}:<id>                 record hash
    repocket:{<module>:<ModelName>:<n>}:<id>:field:<name>    ByteStream string
    repocket::ids:{<module>:<ModelName>:<n>}                 the shard's ids
    repocket::index:{<module>:<ModelName>:<n>}:<entry>       one index entry
    repocket::terms:{<module>:<ModelName>:<n>}               remembered entries

Keeping construction here (and nowhere else) is what lets the layout change
without touching the model layer.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from functools import cached_property

from .errors import EnvelopeError

__all__ = [
    "PREFIX",
    "META_PREFIX",
    "STREAM_INFIX",
    "Collection",
    "Shard",
    "shard_number",
    "glob_escape",
    "META_KINDS",
    "parse_record_key",
]

PREFIX = "repocket"
META_PREFIX = PREFIX + "::"
STREAM_INFIX = ":field:"

# repocket:{module:Model:n}:<id>
_SHARDED_KEY = re.compile(r"^repocket:\{([^:{}]+):([^:{}]+):(\d+)\}:(.+)$", re.S)


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


@dataclass(frozen=True)
class Collection:
    """Identifies the records of one model class in storage.

    :param module: the ``__module__`` of the model class.
    :param name: the model class's ``__name__``.

    The key methods of a collection give the single-shard layout
    (``S = 1``); :meth:`shard` gives the keys of one shard of ``S``.
    :param shard_count: see the attribute.
    """

    module: str
    name: str
    #: the shards the model asks for (``class Meta: shards = S``); ``None``:
    #: the storage's own number.  Not part of the collection's identity.
    shard_count: int | None = field(default=None, compare=False, repr=False)

    @property
    def prefix(self) -> str:
        """``repocket:<module>:<Name>``, the prefix of every unsharded record key."""
        return f"{PREFIX}:{self.module}:{self.name}"

    @property
    def label(self) -> str:
        """``module.Name``, for messages."""
        return f"{self.module}.{self.name}"

    def record_key(self, record_id: str, shards: int = 1) -> str:
        """The key of the hash holding the record's fields."""
        if shards == 1:
            return f"{self.prefix}:{record_id}"
        return self.shard(shard_number(record_id, shards), shards).record_key(record_id)

    def stream_key(self, record_id: str, field: str, shards: int = 1) -> str:
        """The key of the string holding one ByteStream field of a record."""
        return f"{self.record_key(record_id, shards)}{STREAM_INFIX}{field}"

    def meta_key(self, kind: str) -> str:
        """A key for data repocket keeps about this collection (e.g. ``ids``)."""
        return f"{META_PREFIX}{kind}:{self.module}:{self.name}"

    @property
    def unique_key(self) -> str:
        """The hash of ``<field>:<term>`` -> id for unique fields (one per
        collection, whatever the number of shards)."""
        return self.meta_key("unique")

    def shard(self, number: int, shards: int) -> Shard:
        """The keys of shard ``number`` of ``shards``."""
        return Shard(self, number, shards)

    def shard_of(self, record_id: str, shards: int) -> Shard:
        """The shard holding record ``record_id``."""
        return Shard(self, shard_number(record_id, shards), shards)

    def shards(self, shards: int) -> list[Shard]:
        """Every shard of the collection, in order."""
        return [Shard(self, number, shards) for number in range(shards)]

    def owns_key(self, key: str) -> bool:
        """Whether ``key`` is a record key of this collection (any layout)."""
        try:
            collection, _ = parse_record_key(key)
        except EnvelopeError:
            return False
        return collection == self

    @property
    def meta_patterns(self) -> tuple[str, ...]:
        """Glob patterns matching every meta key of this collection (any
        layout, 0.1.0's per-record keys included), and no other key.

        Each pattern starts with a kind and this collection's module and name
        in full (glob characters escaped), so that no key of another
        collection -- whose names may hold any user value after that point --
        can match.
        """
        module, name = glob_escape(self.module), glob_escape(self.name)
        patterns = []
        for kind in META_KINDS:
            patterns.append(f"{META_PREFIX}{kind}:{module}:{name}")
            patterns.append(f"{META_PREFIX}{kind}:{module}:{name}:*")
            patterns.append(f"{META_PREFIX}{kind}:{{{module}:{name}:*")
        return tuple(patterns)

    @property
    def record_patterns(self) -> tuple[str, ...]:
        """Glob patterns matching this collection's record and stream keys (any layout)."""
        return (f"{self.prefix}:*", f"{PREFIX}:{{{self.module}:{self.name}:*}}:*")


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
            return self.collection.meta_key(kind)
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


def parse_record_key(key: str) -> tuple[Collection, str]:
    """Split a record key (of any layout) into its collection and record id.

    :raises EnvelopeError: when ``key`` is not a record key.
    """
    match = _SHARDED_KEY.match(key)
    if match is not None:
        module, name, _, record_id = match.groups()
        if STREAM_INFIX not in record_id:
            return Collection(module, name), record_id
    parts = key.split(":")
    if len(parts) != 4 or parts[0] != PREFIX or not all(parts[1:]) or "{" in parts[1]:
        raise EnvelopeError(
            f"{key!r} is not a repocket record key (expected '{PREFIX}:<module>:<Model>:<id>')"
        )
    return Collection(parts[1], parts[2]), parts[3]
