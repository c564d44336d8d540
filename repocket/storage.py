"""The storage seam: the :class:`Storage` protocol and the backend registry.

The model layer (models, attributes, managers, queries) talks to storage only
through the record-level methods of :class:`Storage`.  Values cross the seam
already encoded by :mod:`repocket.serialization`: a backend stores the
envelope texts and stream bytes it is given and returns them unchanged.

A backend is chosen by URL scheme.  Schemes come from two places:

* the entry point group ``repocket.backends`` (name = scheme, value =
  ``package.module:StorageClass``), read with :mod:`importlib.metadata` the
  first time a scheme is looked up; repocket's own ``redis``, ``rediss``,
  ``unix`` and ``memory`` backends are declared there too;
* :func:`register_backend`, for applications and tests that do not package
  their backend.

Backend classes are imported only when their scheme is first asked for, so a
broken plugin breaks only the code that asks for it.
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple
from urllib.parse import unquote, unquote_plus

from .errors import (
    ConflictError,
    UniqueViolation,
    UnsupportedError,
)
from .keys import Collection
from .text import as_text

__all__ = [
    "Collection",
    "IndexEntry",
    "UniqueClaim",
    "RecordWrite",
    "FieldSwap",
    "LoadRequest",
    "StoredRecord",
    "ByteNamedFields",
    "Plan",
    "AllIds",
    "Members",
    "ScoreRange",
    "Union",
    "Intersection",
    "Difference",
    "Order",
    "Storage",
    "REQUIRED_METHODS",
    "missing_protocol_methods",
    "redact_url",
    "redact_secrets",
]

#: what :mod:`repocket.backend_registry` holds; still importable from here
_MOVED = frozenset(
    {
        "ENTRY_POINT_GROUP",
        "register_backend",
        "available_backends",
        "get_backend",
        "backend_for_url",
        "_registry",
        "_entry_points_loaded",
    }
)


def __getattr__(name: str) -> Any:
    # The backend registry moved to repocket.backend_registry; the names it
    # had here keep working (plugins and applications import them).
    if name in _MOVED:
        from . import backend_registry

        return getattr(backend_registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------
# Values that cross the seam
# ---------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class IndexEntry:
    """One entry a record has in its collection's index data.

    :param name: which index, e.g. ``'eq:house_name:"Gryffindor"'`` or
        ``'range:age'``; opaque to backends, unique within a collection.
    :param score: ``None`` for membership indexes (sets of ids); a float for
        sorted indexes, where the id is kept with that score.
    """

    name: str
    score: float | None = None


@dataclass(frozen=True, order=True)
class UniqueClaim:
    """A value that at most one record of a collection may hold in a field.

    :param field: the field name.
    :param term: the value's canonical index text.
    """

    field: str
    term: str


@dataclass(frozen=True)
class RecordWrite:
    """Everything one ``save()`` writes, to be applied atomically.

    :param collection: the model's collection.
    :param record_id: the record's id (its primary key as text).
    :param fields: hash field name -> envelope text, for every non-stream field.
        The model layer always writes ``str``; a value may also be ``bytes``,
        to be stored as given (the conformance suite plants bytes that are
        not UTF-8 this way, to check that such stored data is reported).
    :param streams: ByteStream field name -> full new content, only for the
        streams the caller changed; ``b""`` means the stream is now empty and
        its storage should be removed.  Streams not named are left untouched,
        so a save never clobbers bytes another process appended.
    :param entries: the record's complete index entries after the write.  The
        backend adds those it lacks and removes the record's previous entries
        that are not listed, in the same atomic step.
    :param unique: the record's unique claims after the write; if another
        record holds one, the backend writes nothing and raises
        :class:`~repocket.errors.UniqueViolation`.
    :param new: the id was generated for this write, so the write is
        *create-only*: when a record with this id exists already, the backend
        writes nothing and raises :class:`~repocket.errors.ConflictError` --
        unless the stored fields are exactly ``fields``, which means this very
        write was applied before (a retry after a lost reply); then it
        succeeds without writing again.
    :param expected: for a conditional save (``save(if_unchanged=True)``):
        the record's fields as this writer last read or wrote them.  Unless
        the stored fields are exactly these (same names, same texts), the
        backend writes nothing and raises
        :class:`~repocket.errors.ConflictError`; a record that does not exist
        does not match.  ``None``: no condition (last write wins).
    :param ttl: seconds until the record expires, counted from this write
        (for a backend with :attr:`Storage.supports_ttl`); ``None`` leaves
        the record's expiry as it was (none, for a new record).  The record's
        ByteStreams expire with it.
    :param stream_fields: every ByteStream field of the model (not only
        those in ``streams``): a record's expiry applies to all of them.
    """

    collection: Collection
    record_id: str
    fields: Mapping[str, str | bytes]
    streams: Mapping[str, bytes] = field(default_factory=dict)
    entries: frozenset[IndexEntry] = frozenset()
    unique: frozenset[UniqueClaim] = frozenset()
    new: bool = False
    expected: Mapping[str, str | bytes] | None = None
    ttl: float | None = None
    stream_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldSwap:
    """A change of one hash field, applied only if it holds what the writer
    expects (compare-and-set), with that field's index entries and claims.

    :param field: the hash field to change.
    :param expected: the envelope text the field must hold now.
    :param value: the envelope text to store.
    :param remove: index entries of the expected value that the new value
        does not have.
    :param add: index entries of the new value that the expected value did
        not have.
    :param release: unique claims of the expected value to give up.
    :param claim: unique claims of the new value; held by another record,
        nothing is written and :class:`~repocket.errors.UniqueViolation` is
        raised.
    """

    collection: Collection
    record_id: str
    field: str
    expected: str | bytes
    value: str
    remove: frozenset[IndexEntry] = frozenset()
    add: frozenset[IndexEntry] = frozenset()
    release: frozenset[UniqueClaim] = frozenset()
    claim: frozenset[UniqueClaim] = frozenset()


# LoadRequest and StoredRecord are named tuples rather than frozen
# dataclasses: one of each is made per record loaded, and a tuple is built
# several times faster.


class LoadRequest(NamedTuple):
    """One record to load: its collection, id, and the stream fields to fetch."""

    collection: Collection
    record_id: str
    streams: tuple[str, ...] = ()


class ByteNamedFields(Mapping[str, Any]):
    """A record's fields as a hash reply holds them: UTF-8 names as bytes.

    A backend reading hashes (redis) hands this out instead of a dict re-keyed
    by text: the model layer's decoders look fields up by their bytes names
    (:attr:`raw`), and anything else reading it sees text names (made once,
    when first asked for; names that are not UTF-8 are shown with backslash
    escapes, as :func:`repocket.text.as_text` does).
    """

    __slots__ = ("_texts", "raw")

    def __init__(self, raw: Mapping[bytes, Any]) -> None:
        self.raw = raw
        self._texts: dict[str, Any] | None = None

    def _by_text(self) -> dict[str, Any]:
        texts = self._texts
        if texts is None:
            texts = self._texts = {as_text(name): value for name, value in self.raw.items()}
        return texts

    def __getitem__(self, name: str) -> Any:
        return self._by_text()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_text())

    def __len__(self) -> int:
        return len(self._by_text())

    def __repr__(self) -> str:
        return repr(self._by_text())

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self._by_text(),))


class StoredRecord(NamedTuple):
    """A record as storage returned it.

    :param fields: field name -> envelope text (bytes are accepted too); a
        :class:`ByteNamedFields` is one such mapping.
    :param streams: stream field name -> content; a stream that was never
        written is ``b""``.
    """

    record_id: str
    fields: Mapping[str, str | bytes]
    streams: Mapping[str, bytes]


# -- query plans ---------------------------------------------------------------
#
# The query layer compiles lookups into a tree of these nodes; a backend
# evaluates the tree over its index data and returns ids.  Every node denotes
# a set of record ids of one collection.


class Plan:
    """Base class of query plan nodes."""

    __slots__ = ()


@dataclass(frozen=True)
class AllIds(Plan):
    """Every record of the collection."""


@dataclass(frozen=True)
class Members(Plan):
    """The ids filed under a membership index entry ``name``."""

    name: str


@dataclass(frozen=True)
class ScoreRange(Plan):
    """The ids of sorted index ``name`` whose score lies between the bounds.

    Bounds are inclusive unless ``low_open`` / ``high_open``; ``-inf`` and
    ``inf`` are allowed.
    """

    name: str
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False


@dataclass(frozen=True)
class Union(Plan):
    """Ids in any of the parts."""

    parts: tuple[Plan, ...]


@dataclass(frozen=True)
class Intersection(Plan):
    """Ids in every part."""

    parts: tuple[Plan, ...]


@dataclass(frozen=True)
class Difference(Plan):
    """Ids in ``base`` but not in ``minus``."""

    base: Plan
    minus: Plan


@dataclass(frozen=True)
class Order:
    """Sort by the scores of sorted index ``name``; ties by id, in the same
    direction (ascending ids for an ascending order, descending ids for a
    descending one, as ``ZRANGE ... REV`` gives them).

    Every record of the collection has an entry in a sorted index that the
    query layer orders by.
    """

    name: str
    descending: bool = False


# ---------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------


class Storage(abc.ABC):
    """What a repocket backend implements.

    Subclass it (or provide the same methods) and declare the class under the
    ``repocket.backends`` entry point group.  Every method that talks to a
    server wraps the driver's errors in :class:`~repocket.errors.StorageError`
    (connection failures in :class:`~repocket.errors.StorageConnectionError`)
    with the original as ``__cause__``.
    """

    #: URL scheme this class is registered under, for messages.
    scheme: ClassVar[str] = ""
    #: True when ``save_record`` applies hash, streams and index together,
    #: all or nothing.  The built-in backends are atomic.
    atomic_saves: ClassVar[bool] = True
    #: True when the backend keeps data after the process exits.
    persistent: ClassVar[bool] = True
    #: True when records can expire (``RecordWrite.ttl``, :meth:`set_expiry`,
    #: :meth:`get_expiry`, :meth:`expire_due`); the conformance suite's
    #: expiry tests run only then.
    supports_ttl: ClassVar[bool] = False

    # -- Backend-specific methods ----------------------------------------------

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, **options: Any) -> Storage:
        """Build a storage from a URL whose scheme selected this class."""

    @abc.abstractmethod
    def save_record(self, write: RecordWrite) -> None:
        """Write a record's fields, changed streams, index entries and unique
        claims atomically; create the record or update it in place.

        Every check (``new``, ``expected``, unique claims) is made before
        anything is written: a refused write leaves storage as it was.

        :raises UniqueViolation: another record holds one of ``write.unique``
            (nothing is written); its ``claim`` attribute names which.
        :raises ConflictError: ``write.new`` and another record has the id, or
            ``write.expected`` does not match what is stored.
        """

    @abc.abstractmethod
    def swap_field(self, swap: FieldSwap) -> str | bytes | None:
        """Change one field of a record if it holds ``swap.expected``,
        atomically with its index entries and claims.

        :returns: ``None`` when the field was changed; otherwise (nothing
            written) the text the field holds now, so that the caller can
            compute the change again and retry.
        :raises DoesNotExist: the record does not exist (nothing written).
        :raises UniqueViolation: another record holds one of ``swap.claim``.
        """

    @abc.abstractmethod
    def load_records(self, requests: Sequence[LoadRequest]) -> list[StoredRecord | None]:
        """Load many records (of any collections), in one round trip.

        :returns: one entry per request, in order; ``None`` for a record that
            does not exist.
        """

    @abc.abstractmethod
    def delete_record(self, collection: Collection, record_id: str, streams: Sequence[str]) -> int:
        """Delete a record, its streams, index entries and claims atomically.

        :param streams: the model's stream field names.
        :returns: how many record keys were removed: 1 for the fields plus one
            per stream that held data; 0 when the record did not exist.
        """

    @abc.abstractmethod
    def append_to_stream(
        self, collection: Collection, record_id: str, field: str, data: bytes
    ) -> int:
        """Append ``data`` to a stream field and return its new length in bytes.

        :raises DoesNotExist: the record does not exist; nothing is written
            (no stream is left behind a record another process deleted).
        """

    @abc.abstractmethod
    def query_ids(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[str]:
        """The ids a plan denotes: sorted by id, or by ``order``; one page of them.

        Work proportional to the index data the plan touches, in one round trip.
        """

    @abc.abstractmethod
    def count_ids(self, collection: Collection, plan: Plan) -> int:
        """How many ids a plan denotes, without loading records."""

    @abc.abstractmethod
    def iter_stored_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        """Yield the id of every record *stored* in a collection, read from the
        records themselves rather than the index (for rebuilding it); an id
        may be yielded more than once."""

    @abc.abstractmethod
    def read_index_entries(
        self, collection: Collection, record_ids: Sequence[str]
    ) -> list[tuple[frozenset[IndexEntry], frozenset[UniqueClaim]] | None]:
        """The index entries and claims each record was last saved with
        (``None`` for an id with none), in one round trip; used to check the
        index against the records."""

    @abc.abstractmethod
    def drop_index(self, collection: Collection) -> None:
        """Remove all index data of a collection (ids, entries, claims), not its records."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every record and index entry repocket stored here."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Check that the storage answers; raise StorageConnectionError if not."""

    @property
    @abc.abstractmethod
    def native_client(self) -> Any:
        """The driver object underneath, for looking at raw data."""

    # -- Generic wrappers --------------------------------------------------------

    def set_expiry(
        self, collection: Collection, record_id: str, streams: Sequence[str], ttl: float | None
    ) -> bool:
        """Make a record (and its ``streams``) expire ``ttl`` seconds from now,
        or never (``None``), atomically with what queries see.

        :returns: whether the record exists (nothing is done when it does not).
        """
        raise UnsupportedError(f"{type(self).__name__} does not support expiring records")

    def get_expiry(self, collection: Collection, record_id: str) -> float | None:
        """The seconds left before a record expires; ``None`` when it does
        not expire.

        :raises DoesNotExist: the record does not exist.
        """
        raise UnsupportedError(f"{type(self).__name__} does not support expiring records")

    def expire_due(self, collection: Collection) -> int:
        """Remove what expired records left in the index data now (a backend
        with :attr:`supports_ttl` does it before every query too); returns
        how many records it removed.  Called by ``check()``."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Release connections; the default does nothing."""

    def save_records(self, writes: Sequence[RecordWrite]) -> None:
        """Save several records; backends may do it in fewer round trips.

        Each write is atomic on its own, not all together.  When writes are
        refused (:class:`~repocket.errors.UniqueViolation`,
        :class:`~repocket.errors.ConflictError`), the first refusal is raised
        with a ``written`` attribute listing the ids of this call's writes
        that were applied (none, for a backend that applies a batch all or
        nothing).  The default saves the writes one by one and stops at the
        first refusal.
        """
        written: list[str] = []
        for write in writes:
            try:
                self.save_record(write)
            except (UniqueViolation, ConflictError) as exc:
                exc.written = written
                raise
            written.append(write.record_id)

    def load_record(
        self, collection: Collection, record_id: str, streams: Sequence[str] = ()
    ) -> StoredRecord | None:
        """Load a single record; see :meth:`load_records`."""
        return self.load_records([LoadRequest(collection, record_id, tuple(streams))])[0]

    def iter_query_ids(
        self, collection: Collection, plan: Plan, order: Order | None = None, batch_size: int = 500
    ) -> Iterator[str]:
        """Yield the ids of a plan, ``batch_size`` per round trip.

        The default pages with :meth:`query_ids`; records written meanwhile
        may shift pages.  The redis backend iterates a snapshot instead.
        """
        offset = 0
        while True:
            page = self.query_ids(collection, plan, order, offset, batch_size)
            yield from page
            if len(page) < batch_size:
                return
            offset += len(page)

    def query_ids_unless(
        self,
        collection: Collection,
        guard: Plan,
        plan: Plan,
        order: Order | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[str] | None:
        """:meth:`query_ids`, unless ``guard`` denotes any id: then ``None``.

        The query layer guards exact plans this way (with the records whose
        index scores are inexact).  The default makes two calls; the redis
        backend answers in one round trip.
        """
        if self.count_ids(collection, guard):
            return None
        return self.query_ids(collection, plan, order, offset, limit)

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
        """The records of one page of a plan (:meth:`query_ids`), in its
        order, with their ``streams``; ``None`` when ``guard`` (if given)
        denotes any id.  A record deleted between its id being read and its
        fields is left out.

        The default reads the ids (:meth:`query_ids_unless`), then the
        records (:meth:`load_records`); the redis backend reads both in one
        command when one index read gives the page.
        """
        if guard is None:
            ids: list[str] | None = self.query_ids(collection, plan, order, offset, limit)
        else:
            ids = self.query_ids_unless(collection, guard, plan, order, offset, limit)
        if ids is None:
            return None
        return self._load_present(collection, ids, streams)

    def iter_query_records(
        self,
        collection: Collection,
        plan: Plan,
        order: Order | None = None,
        batch_size: int = 500,
        streams: Sequence[str] = (),
    ) -> Iterator[list[StoredRecord]]:
        """Yield the records of a plan (:meth:`iter_query_ids`), in its
        order, in lists of at most ``batch_size``, with their ``streams``.

        The default reads each batch of ids, then their records; the redis
        backend reads a result of one batch, ids and records, in one
        command.
        """
        ids = self.iter_query_ids(collection, plan, order, batch_size)
        return self._records_of(collection, ids, batch_size, streams)

    def _records_of(
        self, collection: Collection, ids: Iterator[str], batch_size: int, streams: Sequence[str]
    ) -> Iterator[list[StoredRecord]]:
        """The records of these ids that exist, ``batch_size`` ids per load."""
        batch: list[str] = []
        for record_id in ids:
            batch.append(record_id)
            if len(batch) == batch_size:
                yield self._load_present(collection, batch, streams)
                batch = []
        if batch:
            yield self._load_present(collection, batch, streams)

    def _load_present(
        self, collection: Collection, ids: Sequence[str], streams: Sequence[str]
    ) -> list[StoredRecord]:
        """The records of these ids that exist, in order."""
        loaded = self.load_records([LoadRequest(collection, i, tuple(streams)) for i in ids])
        return [record for record in loaded if record is not None]

    def count_ids_unless(self, collection: Collection, guard: Plan, plan: Plan) -> int | None:
        """:meth:`count_ids`, unless ``guard`` denotes any id: then ``None``."""
        if self.count_ids(collection, guard):
            return None
        return self.count_ids(collection, plan)

    # -- checking the index (generic versions; backends may read their index
    #    structures themselves) --------------------------------------------------

    def missing_entries(
        self, collection: Collection, expected: Sequence[tuple[str, frozenset[IndexEntry]]]
    ) -> list[str]:
        """The ids, of ``(id, entries)`` pairs, whose index data lacks one of
        the given entries (or holds it with another score), or that the id
        index does not list; in one round trip.

        The default compares with :meth:`read_index_entries`, for backends
        whose remembered entries are their index.
        """
        remembered = self.read_index_entries(collection, [record_id for record_id, _ in expected])
        return [
            record_id
            for (record_id, entries), found in zip(expected, remembered, strict=True)
            if found is None or not entries <= found[0]
        ]

    def iter_index_members(
        self, collection: Collection, batch_size: int = 500
    ) -> Iterator[tuple[str, IndexEntry]]:
        """Yield every ``(id, entry)`` pair the collection's index data holds,
        read from the index structures themselves, in bounded memory (a pair
        may be yielded more than once); used to find entries no record
        justifies.

        The default reads :meth:`read_index_entries` of the listed ids.
        """
        ids = iter(self.iter_ids(collection, batch_size))
        while batch := list(itertools.islice(ids, batch_size)):
            for record_id, found in zip(
                batch, self.read_index_entries(collection, batch), strict=True
            ):
                for entry in found[0] if found is not None else ():
                    yield record_id, entry

    def iter_stray_keys(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        """Yield keys in the collection's space that nothing should hold: a
        ByteStream whose record is gone, a query's temporary result left
        without an expiry.  The default (a backend without such keys) yields
        nothing."""
        return iter(())

    def iter_claims(
        self, collection: Collection, batch_size: int = 500
    ) -> Iterator[tuple[UniqueClaim, str]]:
        """Yield every unique claim the collection's claim structure holds,
        with the id of the record holding it (for ``check()``: a claim no
        stored record justifies is left over).  The default (a backend whose
        claims cannot outlive their record) yields nothing."""
        return iter(())

    def iter_ids(self, collection: Collection, batch_size: int = 500) -> Iterator[str]:
        """Yield the id of every record of a collection, each once, in batches."""
        return self.iter_query_ids(collection, AllIds(), None, batch_size)

    def count_records(self, collection: Collection) -> int:
        """How many records a collection holds, without loading them."""
        return self.count_ids(collection, AllIds())

    def record_key(self, collection: Collection, record_id: str) -> str:
        """The key of a record, as a Pointer stores it; the default is
        0.0.1's ``repocket:<module>:<Model>:<id>``."""
        return collection.record_key(record_id)

    def stream_key(self, collection: Collection, record_id: str, field: str) -> str:
        """The key of one ByteStream of a record, as ``save()`` reports it."""
        return collection.stream_key(record_id, field)

    def describe(self) -> str:
        """A short description of where this storage points, for messages."""
        return f"{type(self).__name__}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


#: Names a backend class must provide, checked when it is loaded.
REQUIRED_METHODS: tuple[str, ...] = tuple(sorted(Storage.__abstractmethods__))


def missing_protocol_methods(cls: type) -> list[str]:
    """The names of :data:`REQUIRED_METHODS` that ``cls`` does not implement
    (absent, not callable, or still abstract), sorted."""
    missing = []
    for name in REQUIRED_METHODS:
        member = getattr(cls, name, None)
        if not (callable(member) or isinstance(member, property)) or getattr(
            member, "__isabstractmethod__", False
        ):
            missing.append(name)
    return missing


# ---------------------------------------------------------------------------
# Credentials in URLs
# ---------------------------------------------------------------------------

#: A query parameter whose name contains one of these (in any case) holds a
#: credential: ``password``, ``ssl_password``, ``token``, ``api_key``...
SECRET_PARAMETER_WORDS = ("pass", "secret", "token", "auth", "cred", "key")
_HIDDEN = "***"


def _userinfo_span(url: str) -> tuple[int, int] | None:
    """Where the user info of ``url`` is, read from the text, not parsed.

    It ends at the *last* ``@``: a password holding an unescaped ``/``,
    ``?``, ``#`` or ``@`` ends a parser's user info early, and the rest of
    it would be taken for the host, port, path or query.  It starts after
    the first ``//`` (or at the start, in a URL without one).
    """
    at = url.rfind("@")
    if at < 0:
        return None
    slashes = url.find("//")
    return (slashes + 2 if 0 <= slashes < at else 0), at


def _split_userinfo(info: str) -> tuple[str | None, str]:
    """``(user shown, part hidden)``: a user info without a plain ``user:``
    may be a password alone, and is hidden whole."""
    user, colon, password = info.partition(":")
    if colon and user and not any(char in user for char in "/?#"):
        return user, password
    return None, info


def _is_secret_parameter(name: str) -> bool:
    name = unquote_plus(name).lower()
    return any(word in name for word in SECRET_PARAMETER_WORDS)


def _split_query(rest: str) -> tuple[str, list[str], str]:
    """``(before the query, query pieces shown, text hidden)`` of the text
    after the user info.  From the value of the first secret parameter on,
    everything is hidden, since a secret may hold an unescaped ``&`` or
    ``#``; the fragment is never shown (no backend reads it)."""
    base, question, query = rest.partition("#")[0].partition("?")
    if not question:
        return base, [], ""
    shown: list[str] = []
    offset = len(base) + 1
    for piece in query.split("&"):
        name, equals, _ = piece.partition("=")
        if _is_secret_parameter(name):
            shown.append(f"{name}={_HIDDEN}" if equals else name)
            return base, shown, rest[offset + len(name) + len(equals) :]
        shown.append(piece)
        offset += len(piece) + 1
    return base, shown, ""


def redact_url(url: str) -> str:
    """``url`` as a message may show it: the password (or a user info that
    may be one) and the values of credential query parameters (see
    :data:`SECRET_PARAMETER_WORDS`) replaced by ``***``, the fragment dropped.

    It reads the text rather than parsing it, so it never raises and it hides
    a password whatever the URL's shape: one with an unescaped ``/``, ``?``,
    ``#`` or ``@`` (everything before the last ``@`` is user info), a URL
    without a scheme, or text that is no URL at all.  Redacting may hide more
    than credentials (an ``@`` in a path or query), never less.

    >>> redact_url("redis://app:secret@cache:6379/0")
    'redis://app:***@cache:6379/0'
    >>> redact_url("unix:///run/redis.sock?db=1&password=secret")
    'unix:///run/redis.sock?db=1&password=***'
    """
    span = _userinfo_span(url)
    if span is None:
        head, rest = "", url
    else:
        start, at = span
        user, _ = _split_userinfo(url[start:at])
        head = url[:start] + (_HIDDEN if user is None else f"{user}:{_HIDDEN}") + "@"
        rest = url[at + 1 :]
    base, shown, _ = _split_query(rest)
    return head + base + ("?" + "&".join(shown) if shown else "")


def redact_secrets(text: str, url: str) -> str:
    """``text`` (a driver's message about ``url``) with every credential
    :func:`redact_url` hides replaced by ``***``, as written in the URL and
    percent-decoded."""
    secrets: list[str] = []
    span = _userinfo_span(url)
    rest = url
    if span is not None:
        start, at = span
        secrets.append(_split_userinfo(url[start:at])[1])
        rest = url[at + 1 :]
    hidden = _split_query(rest)[2]
    secrets += [hidden, hidden.partition("&")[0]]  # a driver may quote the first value alone
    forms = {form for secret in secrets for form in (secret, unquote(secret), unquote_plus(secret))}
    for secret in sorted(forms, key=len, reverse=True):  # longest first: no partial leftovers
        if secret:
            text = text.replace(secret, _HIDDEN)
    return text
