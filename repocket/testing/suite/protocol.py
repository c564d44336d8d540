"""Conformance: the Storage protocol itself, method by method.

These tests call the storage directly with :class:`~repocket.storage.RecordWrite`
and query plans, as the model layer does, and check what comes back.
Collections, ids, field names, entry names, claim terms and stream bytes
include awkward inputs: unicode, ``:``, ``*``, ``{``, empty strings, bytes
that are not UTF-8.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from ...errors import ConflictError, DoesNotExist, UniqueViolation
from ...keys import Collection
from ...storage import (
    REQUIRED_METHODS,
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
    missing_protocol_methods,
)
from .base import BackendSuite, require

__all__ = ["ProtocolConformance", "AWKWARD_IDS", "AWKWARD_TEXTS", "AWKWARD_BYTES"]

PEOPLE = Collection("repocket.testing.suite", "Person")
PETS = Collection("repocket.testing.suite", "Pet")
#: Same model name in another module.
PEOPLE_ELSEWHERE = Collection("repocket.testing.suite.elsewhere", "Person")
#: A model name that starts like another one.
PERSONNEL = Collection("repocket.testing.suite", "Personnel")
COLLECTIONS = (PEOPLE, PETS, PEOPLE_ELSEWHERE, PERSONNEL)

#: Record ids a backend must keep apart and give back exactly.  (The model
#: layer's ids are UUIDs; the protocol takes any text.)
AWKWARD_IDS = [
    "plain",
    "",
    " ",
    "ünïcødé ☃ 🐍",
    "a:b:c",
    ":",
    "*",
    "?",
    "[ab]",
    "{tag}",
    "}{",
    "repocket:x:y:z",
    "repocket::ids:x:y",
    "line\nbreak",
    "nul\x00byte",
    "'; DROP TABLE records; --",
    "%s %d",
    "back\\slash",
    "x" * 500,
]

#: Text for field names, field values, index entry names and claim terms.
AWKWARD_TEXTS = [*AWKWARD_IDS, '"quoted"', "tab\tbed", "field:name", "\u0301combining", "\ufeff"]

#: Stream contents a backend must give back byte for byte.
AWKWARD_BYTES = [
    b"\x00",
    b"\xff\xfe\xfd",
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
    b"\xc0\x80",
    bytes(range(256)),
    b"\r\n\r\n",
    b"*",
    "ünïcødé".encode(),
    b"x" * 100_000,
]


def envelope(value: str) -> str:
    """A field text as the model layer would store it (storage must not care)."""
    return '{"type": "Unicode", "value": ' + repr(value) + ', "module": "repocket.attributes"}'


def make_write(
    record_id: str,
    fields: Mapping[str, str] | None = None,
    *,
    collection: Collection = PEOPLE,
    streams: Mapping[str, bytes] | None = None,
    entries: Iterable[IndexEntry] = (),
    unique: Iterable[UniqueClaim] = (),
    new: bool = False,
) -> RecordWrite:
    return RecordWrite(
        collection,
        record_id,
        {"name": envelope(record_id)} if fields is None else dict(fields),
        dict(streams or {}),
        frozenset(entries),
        frozenset(unique),
        new,
    )


def text(value: str | bytes) -> str:
    """A stored field as text (backends may return bytes)."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def fields_of(record: StoredRecord | None) -> dict[str, str]:
    assert record is not None
    return {name: text(value) for name, value in record.fields.items()}


# The people of the query tests: id -> (house, age).  Ages tie, and include
# the scores the query layer uses for "no value" (-inf) and for infinities.
PEOPLE_DATA: dict[str, tuple[str, float]] = {
    "alice": ("G", 17.0),
    "bob": ("G", 17.0),
    "carol": ("S", 30.0),
    "dave": ("R", -math.inf),
    "erin": ("S", math.inf),
    "frank": ("G", -5.5),
    "gr\u00e2ce": ("R", 17.0),
    "a:b*{c}": ("S", 0.0),
    "": ("H", 1e300),
}


def house(name: str) -> str:
    return f'eq:house:"{name}"'


AGE = "range:age"


def person_entries(record_id: str) -> frozenset[IndexEntry]:
    house_name, age = PEOPLE_DATA[record_id]
    return frozenset({IndexEntry(house(house_name)), IndexEntry(AGE, age)})


def expect(predicate: Callable[[str, float], bool]) -> list[str]:
    """The people ids a predicate on (house, age) selects, sorted by id."""
    return sorted(i for i, (h, a) in PEOPLE_DATA.items() if predicate(h, a))


def by_age(ids: Iterable[str], descending: bool = False) -> list[str]:
    """Sorted by age, ties by id in the same direction."""
    return sorted(ids, key=lambda i: (PEOPLE_DATA[i][1], i), reverse=descending)


SCORE_RANGES: list[tuple[ScoreRange, list[str]]] = [
    (ScoreRange(AGE, 17, 17), expect(lambda h, a: a == 17)),
    (ScoreRange(AGE, 17, 30), expect(lambda h, a: 17 <= a <= 30)),
    (ScoreRange(AGE, 17, 30, low_open=True), expect(lambda h, a: 17 < a <= 30)),
    (ScoreRange(AGE, 17, 30, high_open=True), expect(lambda h, a: 17 <= a < 30)),
    (ScoreRange(AGE, 17, 30, True, True), expect(lambda h, a: 17 < a < 30)),
    (ScoreRange(AGE, -math.inf, math.inf), sorted(PEOPLE_DATA)),
    (ScoreRange(AGE, -math.inf, 0, low_open=True), expect(lambda h, a: -math.inf < a <= 0)),
    (ScoreRange(AGE, -math.inf, -math.inf), expect(lambda h, a: a == -math.inf)),
    (ScoreRange(AGE, 1e300, math.inf), expect(lambda h, a: a >= 1e300)),
    (ScoreRange(AGE, 1e300, math.inf, high_open=True), expect(lambda h, a: 1e300 <= a < math.inf)),
    (ScoreRange(AGE, -6, -5), expect(lambda h, a: -6 <= a <= -5)),
    (ScoreRange(AGE, 31, 40), []),
    (ScoreRange(AGE, 30, 17), []),
    (ScoreRange("range:nothing", -math.inf, math.inf), []),
]

SET_PLANS: list[tuple[Plan, list[str]]] = [
    (AllIds(), sorted(PEOPLE_DATA)),
    (Members(house("G")), expect(lambda h, a: h == "G")),
    (Members(house("nobody")), []),
    (Union((Members(house("G")), Members(house("R")))), expect(lambda h, a: h in "GR")),
    (Union((Members(house("G")),)), expect(lambda h, a: h == "G")),
    (Union(()), []),
    (
        Intersection((Members(house("G")), ScoreRange(AGE, 17, 17))),
        expect(lambda h, a: h == "G" and a == 17),
    ),
    (Intersection((Members(house("S")), Members(house("G")))), []),
    (Difference(AllIds(), Members(house("G"))), expect(lambda h, a: h != "G")),
    (
        Difference(ScoreRange(AGE, -math.inf, math.inf, low_open=True), Members(house("S"))),
        expect(lambda h, a: a > -math.inf and h != "S"),
    ),
    (
        Difference(
            Union((Members(house("G")), Members(house("S")))),
            Intersection((ScoreRange(AGE, 0, 20), Members(house("G")))),
        ),
        expect(lambda h, a: (h in "GS") and not (0 <= a <= 20 and h == "G")),
    ),
    (
        Union((Intersection((AllIds(), Members(house("H")))), Difference(AllIds(), AllIds()))),
        expect(lambda h, a: h == "H"),
    ),
]

ALL_PLANS = [*SET_PLANS, *SCORE_RANGES]


# The record of the create-only, conditional and swap tests: fields, a stream,
# entries of both kinds and a claim, all of which a refused write must leave.


def wand(term: str) -> str:
    return f'eq:wand:"{term}"'


LENGTH = "range:wand_length"
HOLLY = UniqueClaim("wand", "holly")
OAK = UniqueClaim("wand", "oak")
ELDER = UniqueClaim("wand", "elder")
HARRY_FIELDS: Mapping[str, str] = {"name": envelope("Harry"), "wand": envelope("holly")}
HARRY_ENTRIES = frozenset({IndexEntry(wand("holly")), IndexEntry(LENGTH, 11.0)})

#: Expected fields that :data:`HARRY_FIELDS` do not match, each in one way.
NEAR_MISSES: dict[str, Mapping[str, str]] = {
    "a field differs": {"name": envelope("Harry"), "wand": envelope("holly ")},
    "a field is missing": {"name": envelope("Harry")},
    "a field is extra": {**HARRY_FIELDS, "house": envelope("G")},
    "a name differs": {"name": envelope("Harry"), "Wand": envelope("holly")},
}


def harry(record_id: str = "harry", **changes: Any) -> RecordWrite:
    """The write that stores Harry (``changes`` replace attributes of it)."""
    write = RecordWrite(
        PEOPLE, record_id, HARRY_FIELDS, {"diary": b"old"}, HARRY_ENTRIES, frozenset({HOLLY})
    )
    return dataclasses.replace(write, **changes)


def harry_with_elder(**changes: Any) -> RecordWrite:
    """A write of other fields, stream, entries and claim over Harry."""
    elder: dict[str, Any] = {
        "fields": {"name": envelope("Harry"), "wand": envelope("elder")},
        "streams": {"diary": b"new"},
        "entries": frozenset({IndexEntry(wand("elder")), IndexEntry(LENGTH, 15.0)}),
        "unique": frozenset({ELDER}),
    }
    return harry(**{**elder, **changes})


def oak_swap(record_id: str = "harry", expected: str = "holly") -> FieldSwap:
    """Harry's wand from ``expected`` to oak, with the entries and claims that change."""
    return FieldSwap(
        PEOPLE,
        record_id,
        "wand",
        envelope(expected),
        envelope("oak"),
        remove=frozenset({IndexEntry(wand(expected)), IndexEntry(LENGTH, 11.0)}),
        # the sorted entry is in both: only its score changes
        add=frozenset({IndexEntry(wand("oak")), IndexEntry(LENGTH, 12.5)}),
        release=frozenset({UniqueClaim("wand", expected)}),
        claim=frozenset({OAK}),
    )


def stored_state(storage: Storage, record_id: str = "harry") -> object:
    """A record's fields, ``diary`` stream, index entries and claims, to compare
    before and after a write that must change nothing."""
    loaded = storage.load_record(PEOPLE, record_id, ("diary",))
    record = None if loaded is None else (fields_of(loaded), dict(loaded.streams))
    return record, storage.read_index_entries(PEOPLE, [record_id])


class ProtocolConformance(BackendSuite):
    """Each method of :class:`~repocket.storage.Storage`, called directly."""

    @pytest.fixture
    def people(self, storage: Storage) -> dict[str, tuple[str, float]]:
        """The records of :data:`PEOPLE_DATA`, with their index entries."""
        storage.save_records(
            [make_write(i, entries=person_entries(i), new=True) for i in PEOPLE_DATA]
        )
        # Another collection with the same entry names must not leak in.
        storage.save_record(
            make_write("intruder", collection=PERSONNEL, entries=person_entries("bob"))
        )
        return PEOPLE_DATA

    # -- the class ---------------------------------------------------------------------

    def test_the_class_implements_every_protocol_method(self, storage: Storage) -> None:
        assert missing_protocol_methods(type(storage)) == []
        assert set(REQUIRED_METHODS) >= {"save_record", "load_records", "query_ids"}

    def test_ping_answers(self, storage: Storage) -> None:
        assert storage.ping() is None

    def test_describe_and_repr_name_the_storage(self, storage: Storage) -> None:
        description = storage.describe()
        assert isinstance(description, str) and description
        assert type(storage).__name__ in repr(storage)

    def test_native_client_is_available(self, storage: Storage) -> None:
        assert storage.native_client is not None

    # -- saving and loading ------------------------------------------------------------

    def test_a_saved_record_loads_with_its_fields_and_streams(self, storage: Storage) -> None:
        storage.save_record(
            make_write(
                "harry",
                {"name": envelope("Harry"), "house": envelope("Gryffindor")},
                streams={"diary": b"dear diary", "notes": b"\x00\xff"},
            )
        )
        loaded = storage.load_record(PEOPLE, "harry", ("diary", "notes"))
        assert loaded is not None and loaded.record_id == "harry"
        assert fields_of(loaded) == {"name": envelope("Harry"), "house": envelope("Gryffindor")}
        assert dict(loaded.streams) == {"diary": b"dear diary", "notes": b"\x00\xff"}

    def test_loading_a_missing_record_gives_none(self, storage: Storage) -> None:
        assert storage.load_record(PEOPLE, "nobody") is None
        assert storage.load_record(PEOPLE, "nobody", ("diary",)) is None

    def test_load_records_answers_each_request_in_order(self, storage: Storage) -> None:
        for collection in (PEOPLE, PETS):
            storage.save_record(
                make_write("a", {"kind": envelope(collection.name)}, collection=collection)
            )
        storage.save_record(make_write("b", streams={"diary": b"b's"}))
        requests = [
            LoadRequest(PETS, "a"),
            LoadRequest(PEOPLE, "missing"),
            LoadRequest(PEOPLE, "b", ("diary",)),
            LoadRequest(PEOPLE, "a"),
            LoadRequest(PEOPLE_ELSEWHERE, "a"),
            LoadRequest(PETS, "a"),
        ]
        loaded = storage.load_records(requests)
        assert len(loaded) == len(requests)
        assert fields_of(loaded[0]) == {"kind": envelope("Pet")}
        assert loaded[1] is None
        assert loaded[2] is not None and dict(loaded[2].streams) == {"diary": b"b's"}
        assert fields_of(loaded[3]) == {"kind": envelope("Person")}
        assert loaded[4] is None
        assert fields_of(loaded[5]) == {"kind": envelope("Pet")}

    def test_loading_nothing_is_an_empty_list(self, storage: Storage) -> None:
        assert storage.load_records([]) == []

    def test_a_stream_never_written_loads_as_empty_bytes(self, storage: Storage) -> None:
        storage.save_record(make_write("harry"))
        loaded = storage.load_record(PEOPLE, "harry", ("diary",))
        assert loaded is not None and dict(loaded.streams) == {"diary": b""}

    def test_only_the_requested_streams_are_loaded(self, storage: Storage) -> None:
        storage.save_record(make_write("harry", streams={"diary": b"d", "notes": b"n"}))
        loaded = storage.load_record(PEOPLE, "harry", ("notes",))
        assert loaded is not None and dict(loaded.streams) == {"notes": b"n"}
        loaded = storage.load_record(PEOPLE, "harry")
        assert loaded is not None and dict(loaded.streams) == {}

    def test_a_save_replaces_the_fields_it_names(self, storage: Storage) -> None:
        storage.save_record(
            make_write("harry", {"name": envelope("Harry"), "house": envelope("G")})
        )
        storage.save_record(
            make_write("harry", {"name": envelope("Harry"), "house": envelope("S")})
        )
        assert fields_of(storage.load_record(PEOPLE, "harry")) == {
            "name": envelope("Harry"),
            "house": envelope("S"),
        }
        assert storage.query_ids(PEOPLE, AllIds()) == ["harry"]

    def test_a_save_leaves_the_streams_it_does_not_name(self, storage: Storage) -> None:
        storage.save_record(make_write("harry", streams={"diary": b"one", "notes": b"two"}))
        storage.append_to_stream(PEOPLE, "harry", "diary", b"+")
        storage.save_record(make_write("harry", streams={"notes": b"three"}))
        loaded = storage.load_record(PEOPLE, "harry", ("diary", "notes"))
        assert loaded is not None
        assert dict(loaded.streams) == {"diary": b"one+", "notes": b"three"}

    def test_an_empty_stream_in_a_save_removes_the_stream(self, storage: Storage) -> None:
        storage.save_record(make_write("harry", streams={"diary": b"one", "notes": b"two"}))
        storage.save_record(make_write("harry", streams={"diary": b""}))
        loaded = storage.load_record(PEOPLE, "harry", ("diary", "notes"))
        assert loaded is not None and dict(loaded.streams) == {"diary": b"", "notes": b"two"}
        assert storage.delete_record(PEOPLE, "harry", ("diary", "notes")) == 2

    def test_a_new_write_creates_the_record(self, storage: Storage) -> None:
        storage.save_record(make_write("fresh", entries={IndexEntry(house("G"))}, new=True))
        assert fields_of(storage.load_record(PEOPLE, "fresh")) == {"name": envelope("fresh")}
        assert storage.query_ids(PEOPLE, Members(house("G"))) == ["fresh"]

    def test_save_records_saves_every_write(self, storage: Storage) -> None:
        writes = [
            make_write(f"p{i}", entries={IndexEntry(AGE, i)}, new=i % 2 == 0) for i in range(7)
        ]
        writes.append(make_write("pet", collection=PETS, unique={UniqueClaim("tag", "x")}))
        storage.save_records(writes)
        assert storage.query_ids(PEOPLE, AllIds()) == [f"p{i}" for i in range(7)]
        assert storage.query_ids(PEOPLE, ScoreRange(AGE, 2, 3)) == ["p2", "p3"]
        assert storage.read_index_entries(PETS, ["pet"]) == [
            (frozenset(), frozenset({UniqueClaim("tag", "x")}))
        ]
        storage.save_records([])

    def test_a_write_of_index_data_alone_keeps_the_fields(self, storage: Storage) -> None:
        # Model.objects.reindex() writes a loaded record's entries this way
        # (after drop_index(), with new=False: the record exists already).
        storage.save_record(
            make_write("harry", streams={"diary": b"d"}, entries={IndexEntry(house("G"))})
        )
        storage.save_record(make_write("harry", {}, entries={IndexEntry(house("S"))}))
        loaded = storage.load_record(PEOPLE, "harry", ("diary",))
        assert fields_of(loaded) == {"name": envelope("harry")}
        assert loaded is not None and dict(loaded.streams) == {"diary": b"d"}
        assert storage.query_ids(PEOPLE, Members(house("S"))) == ["harry"]
        assert storage.query_ids(PEOPLE, Members(house("G"))) == []

    def test_collections_are_kept_apart(self, storage: Storage) -> None:
        for collection in COLLECTIONS:
            storage.save_record(
                make_write(
                    "same-id",
                    {"from": envelope(collection.label)},
                    collection=collection,
                    streams={"diary": collection.label.encode()},
                    entries={IndexEntry(house("G")), IndexEntry(AGE, 1)},
                    unique={UniqueClaim("wand", "holly")},
                )
            )
        for collection in COLLECTIONS:
            loaded = storage.load_record(collection, "same-id", ("diary",))
            assert fields_of(loaded) == {"from": envelope(collection.label)}
            assert loaded is not None and loaded.streams["diary"] == collection.label.encode()
            assert storage.query_ids(collection, Members(house("G"))) == ["same-id"]
            assert storage.count_records(collection) == 1
        assert storage.delete_record(PEOPLE, "same-id", ("diary",)) == 2
        for collection in COLLECTIONS[1:]:
            assert storage.load_record(collection, "same-id") is not None
            assert storage.count_ids(collection, ScoreRange(AGE, 1, 1)) == 1

    # -- awkward inputs ----------------------------------------------------------------

    @pytest.mark.parametrize("record_id", AWKWARD_IDS)
    def test_an_awkward_id_is_kept_exactly(self, storage: Storage, record_id: str) -> None:
        storage.save_record(
            make_write("neighbour", entries={IndexEntry(house("G")), IndexEntry(AGE, 2)})
        )
        storage.save_record(
            make_write(
                record_id,
                streams={"diary": b"x"},
                entries={IndexEntry(house("G")), IndexEntry(AGE, 1)},
                unique={UniqueClaim("wand", "holly")},
            )
        )
        loaded = storage.load_record(PEOPLE, record_id, ("diary",))
        assert loaded is not None and loaded.record_id == record_id
        assert fields_of(loaded) == {"name": envelope(record_id)}
        assert dict(loaded.streams) == {"diary": b"x"}
        both = sorted(["neighbour", record_id])
        assert storage.query_ids(PEOPLE, AllIds()) == both
        assert storage.query_ids(PEOPLE, Members(house("G"))) == both
        assert storage.query_ids(PEOPLE, AllIds(), Order(AGE)) == [record_id, "neighbour"]
        assert storage.query_ids(PEOPLE, ScoreRange(AGE, 1, 1)) == [record_id]
        assert list(storage.iter_ids(PEOPLE, batch_size=1)) == both
        assert set(storage.iter_stored_ids(PEOPLE, batch_size=1)) == set(both)
        assert storage.read_index_entries(PEOPLE, [record_id]) == [
            (
                frozenset({IndexEntry(house("G")), IndexEntry(AGE, 1)}),
                frozenset({UniqueClaim("wand", "holly")}),
            )
        ]
        assert storage.append_to_stream(PEOPLE, record_id, "diary", b"y") == 2
        assert storage.delete_record(PEOPLE, record_id, ("diary",)) == 2
        assert storage.load_record(PEOPLE, record_id) is None
        assert storage.query_ids(PEOPLE, AllIds()) == ["neighbour"]

    @pytest.mark.parametrize("value", AWKWARD_TEXTS)
    def test_awkward_text_in_fields_entries_and_claims_is_kept_exactly(
        self, storage: Storage, value: str
    ) -> None:
        storage.save_record(
            make_write(
                "harry",
                {value: value, "other": value + value},
                streams={value: value.encode("utf-8")},
                entries={IndexEntry(value), IndexEntry(f"range:{value}", 1.5)},
                unique={UniqueClaim(value, value)},
            )
        )
        storage.save_record(make_write("ron", entries={IndexEntry(value + "!")}))
        loaded = storage.load_record(PEOPLE, "harry", (value,))
        assert fields_of(loaded) == {value: value, "other": value + value}
        assert loaded is not None and dict(loaded.streams) == {value: value.encode("utf-8")}
        assert storage.query_ids(PEOPLE, Members(value)) == ["harry"]
        assert storage.query_ids(PEOPLE, Members(value + "!")) == ["ron"]
        assert storage.query_ids(PEOPLE, ScoreRange(f"range:{value}", 1, 2)) == ["harry"]
        assert storage.read_index_entries(PEOPLE, ["harry"]) == [
            (
                frozenset({IndexEntry(value), IndexEntry(f"range:{value}", 1.5)}),
                frozenset({UniqueClaim(value, value)}),
            )
        ]
        with pytest.raises(UniqueViolation):
            storage.save_record(make_write("ron", unique={UniqueClaim(value, value)}))
        storage.save_record(make_write("ron", unique={UniqueClaim(value, value + " ")}))
        assert storage.delete_record(PEOPLE, "harry", (value,)) == (2 if value else 1)

    @pytest.mark.parametrize("data", AWKWARD_BYTES, ids=lambda data: repr(data[:12]))
    def test_stream_bytes_are_kept_exactly(self, storage: Storage, data: bytes) -> None:
        storage.save_record(make_write("harry", streams={"saved": data}))
        assert storage.append_to_stream(PEOPLE, "harry", "appended", data) == len(data)
        assert storage.append_to_stream(PEOPLE, "harry", "appended", data) == 2 * len(data)
        loaded = storage.load_record(PEOPLE, "harry", ("saved", "appended"))
        assert loaded is not None
        assert dict(loaded.streams) == {"saved": data, "appended": data + data}

    # -- deleting ----------------------------------------------------------------------

    def test_delete_counts_the_record_and_the_streams_holding_data(self, storage: Storage) -> None:
        storage.save_record(make_write("plain"))
        storage.save_record(make_write("one", streams={"diary": b"d"}))
        storage.save_record(make_write("two", streams={"diary": b"d", "notes": b"n"}))
        streams = ("diary", "notes", "never")
        assert storage.delete_record(PEOPLE, "plain", streams) == 1
        assert storage.delete_record(PEOPLE, "one", streams) == 2
        assert storage.delete_record(PEOPLE, "two", streams) == 3
        assert storage.query_ids(PEOPLE, AllIds()) == []

    def test_deleting_a_missing_record_counts_zero(self, storage: Storage) -> None:
        assert storage.delete_record(PEOPLE, "nobody", ("diary",)) == 0
        storage.save_record(make_write("harry"))
        assert storage.delete_record(PEOPLE, "harry", ()) == 1
        assert storage.delete_record(PEOPLE, "harry", ()) == 0

    def test_delete_removes_streams_entries_and_claims(self, storage: Storage) -> None:
        storage.save_record(
            make_write(
                "harry",
                streams={"diary": b"d"},
                entries={IndexEntry(house("G")), IndexEntry(AGE, 17)},
                unique={UniqueClaim("wand", "holly")},
            )
        )
        storage.delete_record(PEOPLE, "harry", ("diary",))
        assert storage.load_record(PEOPLE, "harry", ("diary",)) is None
        assert storage.query_ids(PEOPLE, Members(house("G"))) == []
        assert storage.query_ids(PEOPLE, ScoreRange(AGE, -math.inf, math.inf)) == []
        assert storage.count_records(PEOPLE) == 0
        assert storage.read_index_entries(PEOPLE, ["harry"]) == [None]
        storage.save_record(make_write("ron", unique={UniqueClaim("wand", "holly")}))
        storage.save_record(make_write("harry"))
        loaded = storage.load_record(PEOPLE, "harry", ("diary",))
        assert loaded is not None and dict(loaded.streams) == {"diary": b""}

    # -- appending ---------------------------------------------------------------------

    def test_append_returns_the_new_length(self, storage: Storage) -> None:
        storage.save_record(make_write("harry", streams={"diary": b"abc"}))
        assert storage.append_to_stream(PEOPLE, "harry", "diary", b"de") == 5
        assert storage.append_to_stream(PEOPLE, "harry", "diary", b"\xff") == 6
        loaded = storage.load_record(PEOPLE, "harry", ("diary",))
        assert loaded is not None and loaded.streams["diary"] == b"abcde\xff"

    def test_append_creates_a_missing_stream(self, storage: Storage) -> None:
        storage.save_record(make_write("harry"))
        assert storage.append_to_stream(PEOPLE, "harry", "diary", b"first") == 5
        assert storage.delete_record(PEOPLE, "harry", ("diary",)) == 2

    def test_appending_to_a_missing_record_raises_and_stores_nothing(
        self, storage: Storage
    ) -> None:
        with pytest.raises(DoesNotExist):
            storage.append_to_stream(PEOPLE, "nobody", "diary", b"x")
        storage.save_record(make_write("harry", streams={"diary": b"old"}))
        storage.delete_record(PEOPLE, "harry", ("diary",))
        with pytest.raises(DoesNotExist):
            storage.append_to_stream(PEOPLE, "harry", "diary", AWKWARD_BYTES[0])
        for record_id in ("nobody", "harry"):
            assert storage.load_record(PEOPLE, record_id, ("diary",)) is None
            assert storage.delete_record(PEOPLE, record_id, ("diary",)) == 0
        storage.save_record(make_write("harry"))  # a new record finds no stream left behind
        loaded = storage.load_record(PEOPLE, "harry", ("diary",))
        assert loaded is not None and loaded.streams["diary"] == b""

    def test_appending_nothing_stores_nothing(self, storage: Storage) -> None:
        storage.save_record(make_write("harry", streams={"diary": b"abc"}))
        assert storage.append_to_stream(PEOPLE, "harry", "diary", b"") == 3
        assert storage.append_to_stream(PEOPLE, "harry", "notes", b"") == 0
        loaded = storage.load_record(PEOPLE, "harry", ("diary", "notes"))
        assert loaded is not None and dict(loaded.streams) == {"diary": b"abc", "notes": b""}
        assert storage.delete_record(PEOPLE, "harry", ("diary", "notes")) == 2

    def test_concurrent_appends_lose_nothing(self, storage: Storage) -> None:
        storage.save_record(make_write("harry"))
        errors: list[BaseException] = []

        def append(worker: int) -> None:
            try:
                for i in range(50):
                    storage.append_to_stream(
                        PEOPLE, "harry", "diary", f"{worker}.{i:02d}|".encode()
                    )
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=append, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        loaded = storage.load_record(PEOPLE, "harry", ("diary",))
        assert loaded is not None
        chunks = loaded.streams["diary"].split(b"|")[:-1]
        assert sorted(chunks) == sorted(
            f"{w}.{i:02d}".encode() for w in range(4) for i in range(50)
        )
        for worker in range(4):  # each writer's chunks stay in its order
            mine = [c for c in chunks if c.startswith(f"{worker}.".encode())]
            assert mine == sorted(mine)

    # -- queries -----------------------------------------------------------------------

    @pytest.mark.parametrize("plan, expected", ALL_PLANS, ids=repr)
    def test_a_plan_denotes_its_ids_sorted_by_id(
        self, storage: Storage, people: object, plan: Plan, expected: list[str]
    ) -> None:
        assert storage.query_ids(PEOPLE, plan) == expected

    @pytest.mark.parametrize("plan, expected", ALL_PLANS, ids=repr)
    def test_count_ids_counts_what_a_plan_denotes(
        self, storage: Storage, people: object, plan: Plan, expected: list[str]
    ) -> None:
        assert storage.count_ids(PEOPLE, plan) == len(expected)

    @pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
    @pytest.mark.parametrize("plan, expected", SET_PLANS, ids=repr)
    def test_an_order_sorts_by_score_with_ties_by_id_in_the_same_direction(
        self, storage: Storage, people: object, plan: Plan, expected: list[str], descending: bool
    ) -> None:
        ordered = storage.query_ids(PEOPLE, plan, Order(AGE, descending))
        assert ordered == by_age(expected, descending)

    @pytest.mark.parametrize(
        "offset, limit",
        [(0, None), (0, 1), (0, 3), (2, 3), (3, None), (8, 5), (9, 1), (20, 5), (0, 100), (1, 0)],
    )
    @pytest.mark.parametrize("order", [None, Order(AGE), Order(AGE, descending=True)], ids=repr)
    def test_offset_and_limit_give_one_page(
        self, storage: Storage, people: object, order: Order | None, offset: int, limit: int | None
    ) -> None:
        everything = storage.query_ids(PEOPLE, AllIds(), order)
        assert len(everything) == len(PEOPLE_DATA)
        page = storage.query_ids(PEOPLE, AllIds(), order, offset, limit)
        assert page == everything[offset : None if limit is None else offset + limit]
        filtered = storage.query_ids(PEOPLE, Members(house("G")), order)
        page = storage.query_ids(PEOPLE, Members(house("G")), order, offset, limit)
        assert page == filtered[offset : None if limit is None else offset + limit]

    @pytest.mark.parametrize("batch_size", [1, 2, 3, 500])
    @pytest.mark.parametrize("order", [None, Order(AGE), Order(AGE, descending=True)], ids=repr)
    @pytest.mark.parametrize("plan, expected", SET_PLANS[:4], ids=repr)
    def test_iter_query_ids_yields_each_id_once_in_order(
        self,
        storage: Storage,
        people: object,
        plan: Plan,
        expected: list[str],
        order: Order | None,
        batch_size: int,
    ) -> None:
        ids = list(storage.iter_query_ids(PEOPLE, plan, order, batch_size))
        assert ids == (expected if order is None else by_age(expected, order.descending))

    def test_an_abandoned_iteration_leaves_the_storage_usable(
        self, storage: Storage, people: object
    ) -> None:
        iterator = storage.iter_query_ids(PEOPLE, Members(house("G")), Order(AGE), 1)
        assert next(iter(iterator)) == by_age(expect(lambda h, a: h == "G"))[0]
        del iterator
        assert storage.count_ids(PEOPLE, AllIds()) == len(PEOPLE_DATA)

    @pytest.mark.parametrize("batch_size", [1, 4, 500])
    def test_iter_ids_and_count_records_see_every_record(
        self, storage: Storage, people: object, batch_size: int
    ) -> None:
        assert list(storage.iter_ids(PEOPLE, batch_size)) == sorted(PEOPLE_DATA)
        assert storage.count_records(PEOPLE) == len(PEOPLE_DATA)
        assert list(storage.iter_ids(PETS, batch_size)) == []
        assert storage.count_records(PETS) == 0

    def test_a_save_moves_the_record_between_entries(
        self, storage: Storage, people: object
    ) -> None:
        storage.save_record(
            make_write("alice", entries={IndexEntry(house("S")), IndexEntry(AGE, 40)})
        )
        assert "alice" not in storage.query_ids(PEOPLE, Members(house("G")))
        assert "alice" in storage.query_ids(PEOPLE, Members(house("S")))
        assert storage.query_ids(PEOPLE, ScoreRange(AGE, 17, 17)) == ["bob", "gr\u00e2ce"]
        assert storage.query_ids(PEOPLE, ScoreRange(AGE, 31, 1e299)) == ["alice"]
        assert storage.query_ids(PEOPLE, AllIds(), Order(AGE, True), 0, 2) == ["erin", ""]
        assert storage.query_ids(PEOPLE, AllIds(), Order(AGE, True), 2, 1) == ["alice"]

    def test_a_save_without_entries_removes_them_all(
        self, storage: Storage, people: object
    ) -> None:
        storage.save_record(make_write("alice"))
        assert "alice" not in storage.query_ids(PEOPLE, Members(house("G")))
        assert "alice" not in storage.query_ids(PEOPLE, ScoreRange(AGE, -math.inf, math.inf))
        assert "alice" in storage.query_ids(PEOPLE, AllIds())
        assert storage.read_index_entries(PEOPLE, ["alice"]) == [(frozenset(), frozenset())]

    # -- index maintenance -------------------------------------------------------------

    def test_read_index_entries_gives_what_each_record_was_saved_with(
        self, storage: Storage, people: object
    ) -> None:
        storage.save_record(
            make_write("bob", entries=person_entries("bob"), unique={UniqueClaim("wand", "oak")})
        )
        ids = ["carol", "nobody", "bob", "carol", ""]
        assert storage.read_index_entries(PEOPLE, ids) == [
            (person_entries("carol"), frozenset()),
            None,
            (person_entries("bob"), frozenset({UniqueClaim("wand", "oak")})),
            (person_entries("carol"), frozenset()),
            (person_entries(""), frozenset()),
        ]
        assert storage.read_index_entries(PEOPLE, []) == []
        assert storage.read_index_entries(PETS, ["bob"]) == [None]

    def test_iter_stored_ids_finds_every_stored_record(
        self, storage: Storage, people: object
    ) -> None:
        storage.save_record(make_write("with-stream", streams={"diary": b"d"}))
        found = list(storage.iter_stored_ids(PEOPLE, batch_size=2))
        assert set(found) == {*PEOPLE_DATA, "with-stream"}
        assert set(storage.iter_stored_ids(PERSONNEL)) == {"intruder"}
        assert list(storage.iter_stored_ids(PETS)) == []

    def test_drop_index_keeps_the_records_and_forgets_their_index_data(
        self, storage: Storage, people: object
    ) -> None:
        storage.save_record(
            make_write("bob", entries=person_entries("bob"), unique={UniqueClaim("wand", "oak")})
        )
        storage.drop_index(PEOPLE)
        assert storage.query_ids(PEOPLE, Members(house("G"))) == []
        assert storage.query_ids(PEOPLE, ScoreRange(AGE, -math.inf, math.inf)) == []
        assert storage.count_ids(PEOPLE, Members(house("S"))) == 0
        assert storage.read_index_entries(PEOPLE, sorted(PEOPLE_DATA)) == [None] * len(PEOPLE_DATA)
        assert set(storage.iter_stored_ids(PEOPLE)) == set(PEOPLE_DATA)
        assert fields_of(storage.load_record(PEOPLE, "bob")) == {"name": envelope("bob")}
        storage.save_record(make_write("carol", unique={UniqueClaim("wand", "oak")}))
        # other collections keep theirs
        assert storage.query_ids(PERSONNEL, Members(house("G"))) == ["intruder"]

    def test_a_record_indexed_again_after_drop_index_is_found(
        self, storage: Storage, people: object
    ) -> None:
        storage.drop_index(PEOPLE)
        # index-only writes of stored records: not create-only
        storage.save_records([make_write(i, {}, entries=person_entries(i)) for i in PEOPLE_DATA])
        assert storage.query_ids(PEOPLE, AllIds()) == sorted(PEOPLE_DATA)
        assert storage.query_ids(PEOPLE, Members(house("G"))) == expect(lambda h, a: h == "G")
        assert storage.query_ids(PEOPLE, AllIds(), Order(AGE)) == by_age(PEOPLE_DATA)
        assert fields_of(storage.load_record(PEOPLE, "bob")) == {"name": envelope("bob")}

    def test_clear_removes_every_record_and_index(self, storage: Storage, people: object) -> None:
        storage.save_record(
            make_write(
                "pet", collection=PETS, streams={"diary": b"d"}, unique={UniqueClaim("tag", "x")}
            )
        )
        storage.clear()
        for collection in COLLECTIONS:
            assert storage.query_ids(collection, AllIds()) == []
            assert storage.count_records(collection) == 0
            assert list(storage.iter_stored_ids(collection)) == []
        assert storage.load_record(PETS, "pet", ("diary",)) is None
        assert storage.load_record(PEOPLE, "bob") is None
        assert storage.query_ids(PEOPLE, Members(house("G"))) == []
        assert storage.read_index_entries(PEOPLE, ["bob"]) == [None]
        storage.save_record(make_write("other", collection=PETS, unique={UniqueClaim("tag", "x")}))

    # -- unique claims -----------------------------------------------------------------

    def test_a_claim_held_by_another_record_is_refused_and_nothing_is_written(
        self, storage: Storage
    ) -> None:
        holly = UniqueClaim("wand", "holly")
        storage.save_record(make_write("harry", unique={holly}))
        before = make_write(
            "ron",
            {"name": envelope("Ron")},
            streams={"diary": b"old"},
            entries={IndexEntry(house("G"))},
        )
        storage.save_record(before)
        with pytest.raises(UniqueViolation) as info:
            storage.save_record(
                make_write(
                    "ron",
                    {"name": envelope("Ronald")},
                    streams={"diary": b"new"},
                    entries={IndexEntry(house("S"))},
                    unique={holly, UniqueClaim("wand", "willow")},
                )
            )
        assert info.value.claim == holly
        assert info.value.other_id == "harry"
        assert info.value.field == "wand"
        loaded = storage.load_record(PEOPLE, "ron", ("diary",))
        assert fields_of(loaded) == {"name": envelope("Ron")}
        assert loaded is not None and loaded.streams["diary"] == b"old"
        assert storage.query_ids(PEOPLE, Members(house("G"))) == ["ron"]
        assert storage.query_ids(PEOPLE, Members(house("S"))) == []
        assert storage.read_index_entries(PEOPLE, ["ron"]) == [
            (frozenset({IndexEntry(house("G"))}), frozenset())
        ]
        # the other claim of the refused write was not taken either
        storage.save_record(make_write("ginny", unique={UniqueClaim("wand", "willow")}))

    def test_a_refused_new_record_is_not_stored(self, storage: Storage) -> None:
        storage.save_record(make_write("harry", unique={UniqueClaim("wand", "holly")}))
        with pytest.raises(UniqueViolation):
            storage.save_record(
                make_write(
                    "ron", unique={UniqueClaim("wand", "holly")}, streams={"diary": b"x"}, new=True
                )
            )
        assert storage.load_record(PEOPLE, "ron", ("diary",)) is None
        assert storage.query_ids(PEOPLE, AllIds()) == ["harry"]
        assert storage.delete_record(PEOPLE, "ron", ("diary",)) == 0

    def test_a_record_may_save_its_own_claim_again(self, storage: Storage) -> None:
        holly = UniqueClaim("wand", "holly")
        storage.save_record(make_write("harry", unique={holly}))
        storage.save_record(make_write("harry", {"name": envelope("again")}, unique={holly}))
        assert fields_of(storage.load_record(PEOPLE, "harry")) == {"name": envelope("again")}

    def test_a_claim_is_released_when_its_record_drops_it(self, storage: Storage) -> None:
        storage.save_record(make_write("harry", unique={UniqueClaim("wand", "holly")}))
        storage.save_record(make_write("harry", unique={UniqueClaim("wand", "phoenix")}))
        storage.save_record(make_write("ron", unique={UniqueClaim("wand", "holly")}))
        with pytest.raises(UniqueViolation) as info:
            storage.save_record(make_write("ginny", unique={UniqueClaim("wand", "phoenix")}))
        assert info.value.other_id == "harry"

    def test_claims_are_per_field_and_per_collection(self, storage: Storage) -> None:
        storage.save_record(make_write("harry", unique={UniqueClaim("wand", "holly")}))
        storage.save_record(make_write("ron", unique={UniqueClaim("owl", "holly")}))
        storage.save_record(
            make_write("ginny", collection=PETS, unique={UniqueClaim("wand", "holly")})
        )
        storage.save_record(make_write("luna", unique={UniqueClaim("wand", "Holly")}))
        assert storage.count_records(PEOPLE) == 3

    def test_save_records_refuses_a_write_whose_claim_is_held(self, storage: Storage) -> None:
        storage.save_record(make_write("harry", unique={UniqueClaim("wand", "holly")}))
        with pytest.raises(UniqueViolation):
            storage.save_records(
                [
                    make_write("ron", new=True),
                    make_write("ginny", unique={UniqueClaim("wand", "holly")}),
                ]
            )
        assert storage.load_record(PEOPLE, "ginny") is None

    # -- create-only writes ------------------------------------------------------------

    @pytest.mark.parametrize("fields", NEAR_MISSES.values(), ids=list(NEAR_MISSES))
    def test_a_create_only_write_over_a_different_record_is_refused_and_writes_nothing(
        self, storage: Storage, fields: Mapping[str, str]
    ) -> None:
        storage.save_record(harry())
        before = stored_state(storage)
        with pytest.raises(ConflictError) as info:
            storage.save_record(harry_with_elder(fields=fields, new=True))
        assert info.value.key == storage.record_key(PEOPLE, "harry")
        assert PEOPLE.label in str(info.value) and "harry" in str(info.value)
        assert stored_state(storage) == before
        assert storage.query_ids(PEOPLE, Members(wand("holly"))) == ["harry"]
        assert storage.query_ids(PEOPLE, Members(wand("elder"))) == []
        assert storage.query_ids(PEOPLE, ScoreRange(LENGTH, 15, 15)) == []
        with pytest.raises(UniqueViolation):  # Harry still holds his claim
            storage.save_record(make_write("ron", unique={HOLLY}))
        storage.save_record(make_write("ron", unique={ELDER}))  # the refused one was not taken

    @pytest.mark.parametrize("value", AWKWARD_TEXTS)
    def test_a_create_only_write_retried_after_a_lost_reply_succeeds(
        self, storage: Storage, value: str
    ) -> None:
        write = make_write(
            value,
            {value: value, "other": envelope(value)},
            entries={IndexEntry(house("G")), IndexEntry(AGE, 3)},
            unique={UniqueClaim("wand", value)},
            new=True,
        )
        storage.save_record(write)
        storage.save_record(write)
        assert storage.query_ids(PEOPLE, AllIds()) == [value]
        assert storage.count_records(PEOPLE) == 1
        assert fields_of(storage.load_record(PEOPLE, value)) == {
            value: value,
            "other": envelope(value),
        }
        assert storage.query_ids(PEOPLE, Members(house("G"))) == [value]
        assert storage.read_index_entries(PEOPLE, [value]) == [(write.entries, write.unique)]

    def test_a_create_only_retry_does_not_write_again(self, storage: Storage) -> None:
        write = harry(new=True)
        storage.save_record(write)
        storage.append_to_stream(PEOPLE, "harry", "diary", b"+")
        storage.save_record(write)
        loaded = storage.load_record(PEOPLE, "harry", ("diary",))
        assert loaded is not None and loaded.streams["diary"] == b"old+"

    # -- conditional saves -------------------------------------------------------------

    def test_a_conditional_save_of_the_expected_fields_is_written(self, storage: Storage) -> None:
        storage.save_record(harry())
        storage.save_record(harry_with_elder(expected=HARRY_FIELDS))
        loaded = storage.load_record(PEOPLE, "harry", ("diary",))
        assert fields_of(loaded) == {"name": envelope("Harry"), "wand": envelope("elder")}
        assert loaded is not None and loaded.streams["diary"] == b"new"
        assert storage.query_ids(PEOPLE, Members(wand("elder"))) == ["harry"]
        assert storage.query_ids(PEOPLE, Members(wand("holly"))) == []
        assert storage.read_index_entries(PEOPLE, ["harry"]) == [
            (harry_with_elder().entries, frozenset({ELDER}))
        ]
        storage.save_record(make_write("ron", unique={HOLLY}))  # released

    def test_streams_are_not_part_of_the_expected_fields(self, storage: Storage) -> None:
        storage.save_record(harry())
        storage.append_to_stream(PEOPLE, "harry", "diary", b"+")
        storage.save_record(harry_with_elder(streams={}, expected=HARRY_FIELDS))
        loaded = storage.load_record(PEOPLE, "harry", ("diary",))
        assert fields_of(loaded)["wand"] == envelope("elder")
        assert loaded is not None and loaded.streams["diary"] == b"old+"

    def test_expected_fields_as_loaded_match_even_when_not_utf8(self, storage: Storage) -> None:
        storage.save_record(harry(fields={**HARRY_FIELDS, "raw": AWKWARD_BYTES[1]}))
        loaded = storage.load_record(PEOPLE, "harry")
        assert loaded is not None
        storage.save_record(harry_with_elder(expected=loaded.fields))
        loaded = storage.load_record(PEOPLE, "harry")
        assert loaded is not None and text(loaded.fields["wand"]) == envelope("elder")

    def test_an_expected_text_matches_the_same_text_given_as_bytes(self, storage: Storage) -> None:
        stored = {"name": envelope(AWKWARD_IDS[3]), "wand": envelope("holly")}
        storage.save_record(harry(fields=stored))
        expected = {name: value.encode("utf-8") for name, value in stored.items()}
        storage.save_record(harry_with_elder(expected=expected))
        assert fields_of(storage.load_record(PEOPLE, "harry"))["wand"] == envelope("elder")

    @pytest.mark.parametrize("expected", NEAR_MISSES.values(), ids=list(NEAR_MISSES))
    def test_a_conditional_save_of_a_changed_record_is_refused_and_writes_nothing(
        self, storage: Storage, expected: Mapping[str, str]
    ) -> None:
        storage.save_record(harry())
        before = stored_state(storage)
        with pytest.raises(ConflictError) as info:
            storage.save_record(harry_with_elder(expected=expected))
        assert info.value.key == storage.record_key(PEOPLE, "harry")
        assert stored_state(storage) == before
        assert storage.query_ids(PEOPLE, Members(wand("holly"))) == ["harry"]
        assert storage.query_ids(PEOPLE, Members(wand("elder"))) == []
        assert storage.query_ids(PEOPLE, ScoreRange(LENGTH, 15, 15)) == []
        with pytest.raises(UniqueViolation):  # Harry still holds his claim
            storage.save_record(make_write("ron", unique={HOLLY}))
        storage.save_record(make_write("ron", unique={ELDER}))  # the refused one was not taken

    def test_a_conditional_save_of_a_deleted_record_is_refused_and_writes_nothing(
        self, storage: Storage
    ) -> None:
        storage.save_record(harry())
        storage.delete_record(PEOPLE, "harry", ("diary",))
        with pytest.raises(ConflictError) as info:
            storage.save_record(harry_with_elder(expected=HARRY_FIELDS))
        assert info.value.key == storage.record_key(PEOPLE, "harry")
        assert stored_state(storage) == (None, [None])
        assert storage.query_ids(PEOPLE, AllIds()) == []
        assert storage.query_ids(PEOPLE, Members(wand("elder"))) == []
        assert storage.delete_record(PEOPLE, "harry", ("diary",)) == 0  # no stream either
        storage.save_record(make_write("ron", unique={ELDER}))

    # -- swapping one field ------------------------------------------------------------

    @pytest.mark.parametrize("record_id", AWKWARD_IDS)
    def test_swap_field_changes_the_field_its_entries_and_claims(
        self, storage: Storage, record_id: str
    ) -> None:
        storage.save_record(harry(record_id))
        assert storage.swap_field(oak_swap(record_id)) is None
        loaded = storage.load_record(PEOPLE, record_id, ("diary",))
        assert fields_of(loaded) == {"name": envelope("Harry"), "wand": envelope("oak")}
        assert loaded is not None and loaded.streams["diary"] == b"old"
        assert storage.query_ids(PEOPLE, Members(wand("oak"))) == [record_id]
        assert storage.query_ids(PEOPLE, Members(wand("holly"))) == []
        assert storage.query_ids(PEOPLE, ScoreRange(LENGTH, 12.5, 12.5)) == [record_id]
        assert storage.query_ids(PEOPLE, ScoreRange(LENGTH, 11, 11)) == []
        assert storage.read_index_entries(PEOPLE, [record_id]) == [
            (
                frozenset({IndexEntry(wand("oak")), IndexEntry(LENGTH, 12.5)}),
                frozenset({OAK}),
            )
        ]
        with pytest.raises(UniqueViolation) as info:
            storage.save_record(make_write("other", unique={OAK}))
        assert info.value.other_id == record_id
        storage.save_record(make_write("other", unique={HOLLY}))  # released

    @pytest.mark.parametrize("value", AWKWARD_TEXTS)
    def test_swap_field_of_a_field_holding_another_text_returns_it_and_writes_nothing(
        self, storage: Storage, value: str
    ) -> None:
        storage.save_record(harry(fields={"name": envelope("Harry"), "wand": value}))
        before = stored_state(storage)
        current = storage.swap_field(oak_swap())
        assert current is not None and text(current) == value
        assert stored_state(storage) == before
        assert storage.query_ids(PEOPLE, Members(wand("oak"))) == []
        storage.save_record(make_write("ron", unique={OAK}))  # not taken

    def test_swap_field_of_a_missing_record_raises_does_not_exist(self, storage: Storage) -> None:
        with pytest.raises(DoesNotExist):
            storage.swap_field(oak_swap("nobody"))
        storage.save_record(harry())
        storage.delete_record(PEOPLE, "harry", ("diary",))
        with pytest.raises(DoesNotExist):
            storage.swap_field(oak_swap())
        assert stored_state(storage) == (None, [None])
        assert stored_state(storage, "nobody") == (None, [None])
        assert storage.query_ids(PEOPLE, AllIds()) == []
        assert storage.query_ids(PEOPLE, Members(wand("oak"))) == []
        storage.save_record(make_write("ron", unique={OAK}))  # not taken

    def test_swap_field_to_a_claim_held_by_another_record_is_refused_and_writes_nothing(
        self, storage: Storage
    ) -> None:
        storage.save_record(make_write("ron", unique={OAK}))
        storage.save_record(harry())
        before = stored_state(storage)
        with pytest.raises(UniqueViolation) as info:
            storage.swap_field(oak_swap())
        assert info.value.claim == OAK and info.value.other_id == "ron"
        assert stored_state(storage) == before
        assert storage.query_ids(PEOPLE, Members(wand("oak"))) == []
        assert storage.query_ids(PEOPLE, Members(wand("holly"))) == ["harry"]
        with pytest.raises(UniqueViolation) as info:  # Harry still holds his claim
            storage.save_record(make_write("ginny", unique={HOLLY}))
        assert info.value.other_id == "harry"

    # -- record keys -------------------------------------------------------------------

    def test_record_and_stream_keys_tell_records_and_fields_apart(self, storage: Storage) -> None:
        records = {storage.record_key(c, i) for c in COLLECTIONS for i in ("a", "b")}
        streams = {
            storage.stream_key(c, i, f)
            for c in COLLECTIONS
            for i in ("a", "b")
            for f in ("diary", "notes")
        }
        assert all(isinstance(key, str) and key for key in records | streams)
        assert len(records) == 2 * len(COLLECTIONS)
        assert len(streams) == 4 * len(COLLECTIONS)
        assert not records & streams

    # -- capabilities ------------------------------------------------------------------

    def test_data_outlives_the_storage_object(self, storage: Storage) -> None:
        require(storage, "persistent")
        storage.save_record(
            make_write(
                "kept",
                streams={"diary": b"\x00kept"},
                entries={IndexEntry(house("G")), IndexEntry(AGE, 3)},
                unique={UniqueClaim("wand", "holly")},
            )
        )
        storage.append_to_stream(PEOPLE, "kept", "diary", b"+")
        storage.close()
        reopened = self.make_storage()
        try:
            loaded = reopened.load_record(PEOPLE, "kept", ("diary",))
            assert fields_of(loaded) == {"name": envelope("kept")}
            assert loaded is not None and loaded.streams["diary"] == b"\x00kept+"
            assert reopened.query_ids(PEOPLE, Members(house("G"))) == ["kept"]
            assert reopened.query_ids(PEOPLE, ScoreRange(AGE, 3, 3)) == ["kept"]
            with pytest.raises(UniqueViolation):
                reopened.save_record(make_write("other", unique={UniqueClaim("wand", "holly")}))
        finally:
            reopened.close()

    def test_readers_never_see_part_of_a_save(self, storage: Storage) -> None:
        require(storage, "atomic_saves")
        names = [f"f{i}" for i in range(8)]

        def version(n: int) -> RecordWrite:
            return make_write(
                "harry",
                {name: envelope(str(n)) for name in names},
                entries={IndexEntry(f"eq:n:{n}"), IndexEntry("range:n", n)},
                unique={UniqueClaim("n", str(n))},
            )

        storage.save_record(version(0))
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for n in range(1, 150):
                    storage.save_record(version(n))
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)
            finally:
                done.set()

        writer = threading.Thread(target=write)
        writer.start()
        reads = 0
        try:
            while True:
                finished = done.is_set()
                fields = fields_of(storage.load_record(PEOPLE, "harry"))
                assert len(set(fields.values())) == 1, fields
                terms = storage.read_index_entries(PEOPLE, ["harry"])[0]
                assert terms is not None
                entries, claims = terms
                (score,) = [e.score for e in entries if e.name == "range:n"]
                assert score is not None
                assert entries == {IndexEntry(f"eq:n:{score:g}"), IndexEntry("range:n", score)}
                assert claims == {UniqueClaim("n", f"{score:g}")}
                reads += 1
                if finished:
                    break
        finally:
            writer.join()
        assert errors == [] and reads > 0
        assert fields_of(storage.load_record(PEOPLE, "harry"))["f0"] == envelope("149")
        assert storage.query_ids(PEOPLE, Members("eq:n:149")) == ["harry"]
        assert storage.count_ids(PEOPLE, Members("eq:n:148")) == 0
