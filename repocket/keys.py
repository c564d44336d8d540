"""The one place where repocket's storage key names are built and parsed.

The layout is the one repocket 0.0.1 documented, so data written by either
stays readable by both::

    repocket:<model module>:<ModelName>:<id>                 record hash
    repocket:<model module>:<ModelName>:<id>:field:<name>    ByteStream string

Data that repocket keeps *about* records (the id index today, secondary
indexes later) lives under ``repocket::<kind>:...``.  The empty segment after
``repocket:`` can never be a Python module name, so these keys can never
collide with a record key, while everything stays under the ``repocket:``
prefix (one ACL key pattern, ``~repocket:*``, covers all of it).

Keeping construction here (and nowhere else) is what lets a cluster layout put
a record's hash and streams under one hash tag later without touching the
model layer or the backends.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import EnvelopeError

__all__ = ["PREFIX", "META_PREFIX", "STREAM_INFIX", "Collection", "parse_record_key"]

PREFIX = "repocket"
META_PREFIX = PREFIX + "::"
STREAM_INFIX = ":field:"


@dataclass(frozen=True)
class Collection:
    """Identifies the records of one model class in storage.

    :param module: the ``__module__`` of the model class.
    :param name: the model class's ``__name__``.
    """

    module: str
    name: str

    @property
    def prefix(self) -> str:
        """``repocket:<module>:<Name>``, the prefix of every record key."""
        return f"{PREFIX}:{self.module}:{self.name}"

    @property
    def label(self) -> str:
        """``module.Name``, for messages."""
        return f"{self.module}.{self.name}"

    def record_key(self, record_id: str) -> str:
        """The key of the hash holding the record's fields."""
        return f"{self.prefix}:{record_id}"

    def stream_key(self, record_id: str, field: str) -> str:
        """The key of the string holding one ByteStream field of a record."""
        return f"{self.record_key(record_id)}{STREAM_INFIX}{field}"

    def meta_key(self, kind: str) -> str:
        """A key for data repocket keeps about this collection (e.g. ``ids``)."""
        return f"{META_PREFIX}{kind}:{self.module}:{self.name}"

    @property
    def ids_key(self) -> str:
        """The sorted set of every record id (all scores 0: lexical order)."""
        return self.meta_key("ids")

    def index_key(self, name: str) -> str:
        """The set or sorted set holding one index entry name's ids."""
        return f"{self.meta_key('index')}:{name}"

    def terms_key(self, record_id: str) -> str:
        """Where a record's current index entries are remembered, so that an
        update can remove exactly the entries it no longer has."""
        return f"{self.meta_key('terms')}:{record_id}"

    @property
    def unique_key(self) -> str:
        """The hash of ``<field>:<term>`` -> id for unique fields."""
        return self.meta_key("unique")

    def temp_key(self, token: str) -> str:
        """A short-lived key for intermediate query results."""
        return f"{self.meta_key('tmp')}:{token}"

    @property
    def meta_patterns(self) -> tuple[str, str]:
        """Glob patterns matching every meta key of this collection."""
        return (
            f"{META_PREFIX}*:{self.module}:{self.name}",
            f"{META_PREFIX}*:{self.module}:{self.name}:*",
        )

    @property
    def record_pattern(self) -> str:
        """Glob pattern matching this collection's record and stream keys."""
        return f"{self.prefix}:*"


def parse_record_key(key: str) -> tuple[Collection, str]:
    """Split a record key into its collection and record id.

    :raises EnvelopeError: when ``key`` is not a record key.
    """
    parts = key.split(":")
    if len(parts) != 4 or parts[0] != PREFIX or not all(parts[1:]):
        raise EnvelopeError(
            f"{key!r} is not a repocket record key (expected '{PREFIX}:<module>:<Model>:<id>')"
        )
    return Collection(parts[1], parts[2]), parts[3]
