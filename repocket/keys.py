"""Record names: the collection a model's records belong to, and their keys.

Records keep the layout repocket 0.0.1 documented, so data written by
either stays readable by both::

    repocket:<model module>:<ModelName>:<id>                 record hash
    repocket:<model module>:<ModelName>:<id>:field:<name>    ByteStream string

A backend may shard a model's records: the redis backend's layout (hash
tags ``{<module>:<ModelName>:<n>}``, the index and meta keys under
``repocket::<kind>:``) is built in :mod:`repocket.backends.layout`.  This
module also parses record keys of either layout, as pointers store them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import EnvelopeError

__all__ = [
    "PREFIX",
    "META_PREFIX",
    "STREAM_INFIX",
    "Collection",
    "parse_record_key",
]

PREFIX = "repocket"
META_PREFIX = PREFIX + "::"
STREAM_INFIX = ":field:"

# repocket:{module:Model:n}:<id>
_SHARDED_KEY = re.compile(r"^repocket:\{([^:{}]+):([^:{}]+):(\d+)\}:(.+)$", re.S)


@dataclass(frozen=True)
class Collection:
    """Identifies the records of one model class in storage.

    :param module: the ``__module__`` of the model class.
    :param name: the model class's ``__name__``.

    Its key methods give the unsharded layout (``S = 1``);
    :mod:`repocket.backends.layout` gives the keys of a shard of ``S``.
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

    def record_key(self, record_id: str) -> str:
        """The key of the hash holding the record's fields, in the unsharded
        layout (a backend may shard it: ``Storage.record_key`` says where a
        record is)."""
        return f"{self.prefix}:{record_id}"

    def stream_key(self, record_id: str, field: str) -> str:
        """The key of the string holding one ByteStream field of a record
        (unsharded layout)."""
        return f"{self.record_key(record_id)}{STREAM_INFIX}{field}"

    def owns_key(self, key: str) -> bool:
        """Whether ``key`` is a record key of this collection (any layout)."""
        try:
            collection, _ = parse_record_key(key)
        except EnvelopeError:
            return False
        return collection == self


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
