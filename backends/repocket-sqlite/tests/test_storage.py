"""The SQLite backend: URLs, discovery, errors, its layout, and the protocol's
fine print (ordering ties, score bounds, snapshots, atomic batches)."""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from repocket import ActiveRecord, attributes
from repocket.connections import configure
from repocket.errors import (
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
    RecordWrite,
    ScoreRange,
    Union,
    UniqueClaim,
    backend_for_url,
    get_backend,
)
from repocket_sqlite import SQLiteStorage, SQLiteURLError
from repocket_sqlite.storage import parse_url

PEOPLE = Collection("tests.people", "Person")


class Wizard(ActiveRecord):
    name = attributes.Unicode(index="prefix")
    house = attributes.Unicode()
    age = attributes.Integer(null=True)
    wand = attributes.Unicode(unique=True, null=True)
    diary = attributes.ByteStream()


class Owl(ActiveRecord):
    name = attributes.Unicode()
    owner = attributes.Pointer(Wizard)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "app.db"


@pytest.fixture
def storage(path: Path) -> Iterator[SQLiteStorage]:
    store = configure.from_url(f"sqlite:///{path}")
    assert isinstance(store, SQLiteStorage)
    yield store
    configure.reset()


def write(
    record_id: str,
    entries: dict[str, float | None] | None = None,
    unique: dict[str, str] | None = None,
    **fields: str,
) -> RecordWrite:
    return RecordWrite(
        PEOPLE,
        record_id,
        {"id": record_id, **fields},
        entries=frozenset(IndexEntry(name, score) for name, score in (entries or {}).items()),
        unique=frozenset(UniqueClaim(f, t) for f, t in (unique or {}).items()),
    )


def rows(storage: SQLiteStorage, sql: str, *params: object) -> list[tuple[object, ...]]:
    return list(storage.native_client.execute(sql, params))


def tables(storage: SQLiteStorage) -> dict[str, list[tuple[object, ...]]]:
    """Every row repocket keeps, table by table."""
    return {
        table: sorted(rows(storage, f"SELECT * FROM {table}"), key=repr)
        for table in ("records", "streams", "entries", "claims")
    }


# -- URLs and discovery --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///app.db", "app.db"),
        ("sqlite:///data/app.db", "data/app.db"),
        ("sqlite:////var/lib/app.db", "/var/lib/app.db"),
        ("sqlite:///with%20space.db", "with space.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
    ],
)
def test_urls_name_a_file_or_memory(url: str, expected: str) -> None:
    assert parse_url(url)[0] == expected


def test_url_query_parameters_and_options_configure_the_storage() -> None:
    store = SQLiteStorage.from_url("sqlite:///x.db?timeout=2.5&synchronous=NORMAL")
    assert (store.timeout, store.synchronous) == (2.5, "NORMAL")
    assert store.path == str(Path.cwd() / "x.db")  # relative to where it was configured
    assert SQLiteStorage.from_url("sqlite:///x.db?timeout=2.5", timeout=7).timeout == 7


@pytest.mark.parametrize("url", ["sqlite://somehost/app.db", "sqlite:///x.db?timeout=soon"])
def test_a_bad_url_is_refused(url: str) -> None:
    with pytest.raises(SQLiteURLError) as info:
        SQLiteStorage.from_url(url)
    assert isinstance(info.value, ValueError)


def test_the_backend_is_found_through_its_installed_entry_point() -> None:
    points = [ep for ep in metadata.entry_points(group="repocket.backends") if ep.name == "sqlite"]
    assert [ep.value for ep in points] == ["repocket_sqlite.storage:SQLiteStorage"]
    assert points[0].dist is not None and points[0].dist.metadata["Name"] == "repocket-sqlite"
    assert get_backend("sqlite") is SQLiteStorage
    assert isinstance(backend_for_url("sqlite://:memory:"), SQLiteStorage)


def test_native_client_describe_and_ping(storage: SQLiteStorage, path: Path) -> None:
    assert isinstance(configure.get_connection(), sqlite3.Connection)
    assert str(path) in storage.describe() and str(path) in repr(storage)
    storage.ping()
    assert storage.persistent and storage.atomic_saves
    mode = storage.native_client.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode.lower() == "wal"


# -- errors ----------------------------------------------------------------------------------


def test_a_file_that_cannot_be_opened_is_a_connection_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "app.db"
    store = SQLiteStorage.from_url(f"sqlite:///{missing}")  # opening is lazy
    with pytest.raises(StorageConnectionError) as info:
        store.ping()
    assert str(missing) in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not a database, just some text " * 100)
    store = SQLiteStorage(bogus)
    with pytest.raises(StorageError) as info:
        store.load_records([LoadRequest(PEOPLE, "1")])
    assert str(bogus) in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_a_lock_held_too_long_is_a_storage_error(path: Path) -> None:
    holder = sqlite3.connect(path, isolation_level=None)
    store = SQLiteStorage(path, timeout=0.2)
    store.ping()
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="locked") as info:
            store.save_record(write("1"))
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.save_record(write("1"))
    store.close()


# -- layout (what the redis-specific tests check on redis keys) -----------------------------


def test_fields_are_stored_as_the_documented_envelopes(storage: SQLiteStorage) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor", age=17)
    [(text,)] = rows(
        storage,
        "SELECT fields FROM records WHERE collection = ? AND id = ?",
        f"{__name__}:Wizard",
        str(harry.id),
    )
    fields = {name: json.loads(value) for name, value in json.loads(str(text)).items()}
    assert fields["name"] == {"type": "Unicode", "value": "Harry", "module": "repocket.attributes"}
    assert fields["age"]["value"] == 17
    assert "diary" not in fields


def test_a_bytestream_lives_in_the_streams_table(storage: SQLiteStorage) -> None:
    harry = Wizard.create(name="Harry", diary=b"first\n")
    assert harry.append_diary(b"second\n\x00\xff") == harry.save()["strings"]["diary"]
    [(content,)] = rows(
        storage, "SELECT content FROM streams WHERE id = ? AND field = 'diary'", str(harry.id)
    )
    assert content == b"first\nsecond\n\x00\xff"
    assert Wizard.objects.get(id=harry.id).diary == b"first\nsecond\n\x00\xff"
    harry.diary = b""
    harry.save()
    assert rows(storage, "SELECT * FROM streams") == []


def test_a_pointer_stores_the_target_record_key(storage: SQLiteStorage) -> None:
    harry = Wizard.create(name="Harry")
    hedwig = Owl.create(name="Hedwig", owner=harry)
    [(text,)] = rows(storage, "SELECT fields FROM records WHERE id = ?", str(hedwig.id))
    assert json.loads(json.loads(str(text))["owner"])["value"] == harry.save()["hash"]
    assert Owl.objects.get(id=hedwig.id).owner == harry


def test_delete_counts_and_removes_everything(storage: SQLiteStorage) -> None:
    harry = Wizard.create(name="Harry", wand="holly", diary=b"x")
    ron = Wizard.create(name="Ron")
    assert harry.delete() == 2  # the record and its stream
    assert ron.delete() == 1
    assert ron.delete() == 0
    for table in ("records", "streams", "entries", "claims"):
        assert rows(storage, f"SELECT * FROM {table}") == []


@pytest.mark.parametrize(
    "raw",
    [
        "not json at all",
        '["a", "list"]',
        '{"type": "Pickle", "value": "x", "module": "repocket.attributes"}',
        '{"type": "Unicode", "value": "x", "module": "os"}',
    ],
)
def test_a_bad_stored_envelope_names_key_and_field(storage: SQLiteStorage, raw: str) -> None:
    harry = Wizard.create(name="Harry")
    key = harry.save()["hash"]
    storage.native_client.execute(
        "UPDATE records SET fields = json_set(fields, '$.name', ?) WHERE id = ?",
        (raw, str(harry.id)),
    )
    with pytest.raises(EnvelopeError) as info:
        Wizard.objects.get(id=harry.id)
    assert (info.value.key, info.value.field) == (key, "name")


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"])
def test_a_bad_fields_column_is_an_envelope_error(storage: SQLiteStorage, raw: str) -> None:
    harry = Wizard.create(name="Harry")
    key = harry.save()["hash"]
    storage.native_client.execute(
        "UPDATE records SET fields = ? WHERE id = ?", (raw, str(harry.id))
    )
    with pytest.raises(EnvelopeError) as info:
        Wizard.objects.get(id=harry.id)
    assert info.value.key == key
    with pytest.raises(EnvelopeError):  # not overwritten blindly either
        harry.save()
    assert harry.delete() == 1


def test_reindex_rebuilds_entries_for_records_stored_without_them(storage: SQLiteStorage) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor", wand="holly")
    Wizard.create(name="Ron", house="Gryffindor")
    conn = storage.native_client
    conn.execute("DELETE FROM entries")
    conn.execute("DELETE FROM claims")
    conn.execute("UPDATE records SET indexed = 0")
    report = Wizard.objects.check()
    assert len(report.missing) == 2 and not report.orphans
    assert Wizard.objects.filter(house="Gryffindor").count() == 0
    assert Wizard.objects.reindex() == 2
    assert Wizard.objects.check().ok
    assert Wizard.objects.filter(house="Gryffindor").count() == 2
    assert Wizard.objects.get(wand="holly") == harry
    with pytest.raises(UniqueViolation):
        Wizard.create(name="Ginny", wand="holly")


def test_check_finds_stale_entries(storage: SQLiteStorage) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor")
    storage.native_client.execute(
        "UPDATE records SET fields = json_set(fields, '$.house', ?) WHERE id = ?",
        (
            json.dumps({"type": "Unicode", "value": "Hufflepuff", "module": "repocket.attributes"}),
            str(harry.id),
        ),
    )
    assert Wizard.objects.check().stale == [str(harry.id)]
    Wizard.objects.reindex()
    assert Wizard.objects.check().ok
    assert Wizard.objects.get(house="Hufflepuff") == Wizard.objects.get(id=harry.id)


def test_records_survive_reopening_the_file(path: Path) -> None:
    configure.from_url(f"sqlite:///{path}")
    harry = Wizard.create(name="Harry", house="Gryffindor", diary=b"x")
    configure.reset()
    configure.from_url(f"sqlite:///{path}")
    try:
        assert Wizard.objects.get(house="Gryffindor") == harry
    finally:
        configure.reset()


# -- the protocol's fine print ----------------------------------------------------------------


def test_order_ties_come_by_id_in_the_direction_of_the_sort(storage: SQLiteStorage) -> None:
    for record_id, score in [
        ("b", 1.0),
        ("a", 1.0),
        ("c", 2.0),
        ("d", -math.inf),
        ("e", math.inf),
    ]:
        storage.save_record(write(record_id, {"range:x": score, "eq:all": None}))
    up = Order("range:x")
    down = Order("range:x", descending=True)
    assert storage.query_ids(PEOPLE, AllIds(), up) == ["d", "a", "b", "c", "e"]
    assert storage.query_ids(PEOPLE, AllIds(), down) == ["e", "c", "b", "a", "d"]
    assert storage.query_ids(PEOPLE, Members("eq:all"), up) == ["d", "a", "b", "c", "e"]
    assert storage.query_ids(PEOPLE, Members("eq:all"), down) == ["e", "c", "b", "a", "d"]
    assert storage.query_ids(PEOPLE, Members("eq:all"), down, 1, 2) == ["c", "b"]
    assert list(storage.iter_query_ids(PEOPLE, Members("eq:all"), down, 2)) == [
        "e",
        "c",
        "b",
        "a",
        "d",
    ]


def test_score_ranges_honour_open_bounds_and_infinities(storage: SQLiteStorage) -> None:
    for record_id, score in [("n", -math.inf), ("a", 1.0), ("b", 2.0), ("i", math.inf)]:
        storage.save_record(write(record_id, {"range:x": score}))

    def ids(low: float, high: float, low_open: bool = False, high_open: bool = False) -> list[str]:
        return storage.query_ids(PEOPLE, ScoreRange("range:x", low, high, low_open, high_open))

    assert ids(-math.inf, math.inf) == ["a", "b", "i", "n"]
    assert ids(-math.inf, math.inf, True, True) == ["a", "b"]
    assert ids(1, 2) == ["a", "b"]
    assert ids(1, 2, low_open=True) == ["b"]
    assert ids(1, 2, high_open=True) == ["a"]
    assert ids(-math.inf, 1, low_open=True) == ["a"]


def test_set_operations(storage: SQLiteStorage) -> None:
    storage.save_record(write("1", {"eq:a": None, "eq:b": None}))
    storage.save_record(write("2", {"eq:a": None}))
    storage.save_record(write("3", {"eq:b": None}))
    a, b = Members("eq:a"), Members("eq:b")
    assert storage.query_ids(PEOPLE, Union((a, b))) == ["1", "2", "3"]
    assert storage.query_ids(PEOPLE, Intersection((a, b))) == ["1"]
    assert storage.query_ids(PEOPLE, Difference(AllIds(), a)) == ["3"]
    assert storage.query_ids(PEOPLE, Difference(Union((a, b)), Intersection((a, b)))) == ["2", "3"]
    assert storage.query_ids(PEOPLE, Union(())) == []
    assert storage.query_ids(PEOPLE, Intersection(())) == []
    assert storage.count_ids(PEOPLE, Union((a, b))) == 3
    assert storage.count_ids(PEOPLE, Union(())) == 0
    assert storage.query_ids(PEOPLE, AllIds(), None, 1) == ["2", "3"]
    assert storage.query_ids(PEOPLE, AllIds(), None, 0, 0) == []


def test_an_update_replaces_the_records_entries_and_claims(storage: SQLiteStorage) -> None:
    storage.save_record(write("1", {"eq:a": None, "range:x": 1.0}, {"wand": "holly"}))
    storage.save_record(write("1", {"eq:b": None, "range:x": 2.0}, {"wand": "oak"}))
    assert storage.read_index_entries(PEOPLE, ["1", "2"]) == [
        (
            frozenset({IndexEntry("eq:b"), IndexEntry("range:x", 2.0)}),
            frozenset({UniqueClaim("wand", "oak")}),
        ),
        None,
    ]
    storage.save_record(write("2", unique={"wand": "holly"}))  # freed by the update


def test_a_unique_violation_writes_nothing_of_the_batch(storage: SQLiteStorage) -> None:
    storage.save_record(write("1", unique={"wand": "holly"}))
    with pytest.raises(UniqueViolation) as info:
        storage.save_records([write("2", {"eq:a": None}), write("3", unique={"wand": "holly"})])
    assert (info.value.other_id, info.value.claim) == ("1", UniqueClaim("wand", "holly"))
    assert storage.query_ids(PEOPLE, AllIds()) == ["1"]
    assert storage.count_ids(PEOPLE, Members("eq:a")) == 0


def test_saves_keep_fields_they_do_not_name(storage: SQLiteStorage) -> None:
    storage.save_record(write("1", extra="kept"))
    storage.save_record(RecordWrite(PEOPLE, "1", {"id": "1"}))
    [record] = storage.load_records([LoadRequest(PEOPLE, "1")])
    assert record is not None and record.fields["extra"] == "kept"


def test_field_texts_that_are_not_utf8_come_back_as_bytes(storage: SQLiteStorage) -> None:
    raw = b"\xff\xfe not utf-8"
    storage.save_record(RecordWrite(PEOPLE, "1", {"id": "1", "bad": raw}))
    storage.save_record(write("1", extra="kept"))  # a later save keeps it as it was
    [record] = storage.load_records([LoadRequest(PEOPLE, "1")])
    assert record is not None
    assert record.fields == {"id": "1", "bad": raw, "extra": "kept"}


def test_an_index_only_write_of_a_missing_record_indexes_nothing(storage: SQLiteStorage) -> None:
    storage.save_record(RecordWrite(PEOPLE, "ghost", {}, entries=frozenset({IndexEntry("eq:a")})))
    assert storage.query_ids(PEOPLE, AllIds()) == []
    assert storage.query_ids(PEOPLE, Members("eq:a")) == []


def test_streams(storage: SQLiteStorage) -> None:
    storage.save_record(write("1"))
    assert storage.append_to_stream(PEOPLE, "1", "log", b"") == 0
    assert storage.append_to_stream(PEOPLE, "1", "log", b"ab") == 2
    assert storage.append_to_stream(PEOPLE, "1", "log", b"\x00\xff") == 4
    assert storage.append_to_stream(PEOPLE, "1", "log", b"") == 4
    [record] = storage.load_records([LoadRequest(PEOPLE, "1", ("log", "other"))])
    assert record is not None and record.streams == {"log": b"ab\x00\xff", "other": b""}
    storage.save_record(RecordWrite(PEOPLE, "1", {"id": "1"}, {"log": b""}))
    assert storage.delete_record(PEOPLE, "1", ["log", "other"]) == 1


def test_appending_to_a_missing_record_is_refused(storage: SQLiteStorage) -> None:
    for data in (b"x", b""):
        with pytest.raises(DoesNotExist) as info:
            storage.append_to_stream(PEOPLE, "ghost", "log", data)
        assert str(info.value) == (
            f"cannot append to {PEOPLE.stream_key('ghost', 'log')}: "
            f"{PEOPLE.label} record 'ghost' does not exist"
        )
    assert rows(storage, "SELECT * FROM streams") == []


#: Writes that every check refuses, over the records of ``refusals_setup``.
REFUSALS: dict[str, tuple[type[Exception], Any]] = {
    "create-only over another record": (
        ConflictError,
        lambda s: s.save_record(dataclasses.replace(write("1", nick="new"), new=True)),
    ),
    "create-only in a batch": (
        ConflictError,
        lambda s: s.save_records(
            [write("3", {"eq:a": None}), dataclasses.replace(write("1"), new=True)]
        ),
    ),
    "expected fields differ": (
        ConflictError,
        lambda s: s.save_record(
            dataclasses.replace(write("1", {"eq:b": None}), expected={"id": "1", "nick": "new"})
        ),
    ),
    "expected of a missing record": (
        ConflictError,
        lambda s: s.save_record(dataclasses.replace(write("9"), expected={"id": "9"})),
    ),
    "swap to a claim another holds": (
        UniqueViolation,
        lambda s: s.swap_field(
            FieldSwap(
                PEOPLE,
                "1",
                "nick",
                "old",
                "new",
                remove=frozenset({IndexEntry("eq:a")}),
                add=frozenset({IndexEntry("eq:b")}),
                release=frozenset({UniqueClaim("wand", "holly")}),
                claim=frozenset({UniqueClaim("wand", "holly2"), UniqueClaim("wand", "taken")}),
            )
        ),
    ),
    "swap of a missing record": (
        DoesNotExist,
        lambda s: s.swap_field(FieldSwap(PEOPLE, "9", "nick", "old", "new")),
    ),
    "append to a missing record": (
        DoesNotExist,
        lambda s: s.append_to_stream(PEOPLE, "9", "log", b"x"),
    ),
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=list(REFUSALS))
def test_a_refused_write_leaves_every_table_as_it_was(
    storage: SQLiteStorage, refusal: tuple[type[Exception], Any]
) -> None:
    error, attempt = refusal
    storage.save_record(
        dataclasses.replace(
            write("1", {"eq:a": None, "range:x": 1.0}, {"wand": "holly"}, nick="old"),
            streams={"log": b"kept"},
        )
    )
    storage.save_record(write("2", unique={"wand": "taken"}))
    before = tables(storage)
    with pytest.raises(error):
        attempt(storage)
    assert tables(storage) == before


def test_conflicts_name_the_record(storage: SQLiteStorage) -> None:
    storage.save_record(write("1"))
    with pytest.raises(ConflictError) as info:
        storage.save_record(dataclasses.replace(write("1", nick="x"), new=True))
    assert info.value.key == PEOPLE.record_key("1")
    assert str(info.value) == (
        f"cannot create {PEOPLE.label} record '1': a record with that id exists already, "
        f"with other fields; nothing was written"
    )
    with pytest.raises(ConflictError) as info:
        storage.save_record(dataclasses.replace(write("1"), expected={"id": "1", "nick": "x"}))
    assert str(info.value) == (
        f"{PEOPLE.label} record '1' changed since it was read (fields 'nick'); nothing was written"
    )
    storage.delete_record(PEOPLE, "1", [])
    with pytest.raises(ConflictError) as info:
        storage.save_record(dataclasses.replace(write("1"), expected={"id": "1"}))
    assert info.value.key == PEOPLE.record_key("1")
    assert "was deleted since it was read" in str(info.value)


def test_a_create_only_retry_matches_texts_given_as_bytes(storage: SQLiteStorage) -> None:
    raw = b"\xff\xfe not utf-8"
    first = RecordWrite(PEOPLE, "1", {"id": "1", "bad": raw}, new=True)
    storage.save_record(first)
    storage.save_record(first)
    storage.save_record(RecordWrite(PEOPLE, "2", {"id": "2"}, new=True))
    storage.save_record(RecordWrite(PEOPLE, "2", {"id": b"2"}, new=True))
    assert storage.count_records(PEOPLE) == 2


def test_swapping_a_field_the_record_lacks_answers_empty_text(storage: SQLiteStorage) -> None:
    storage.save_record(write("1"))
    before = tables(storage)
    assert storage.swap_field(FieldSwap(PEOPLE, "1", "nick", "old", "new")) == ""
    assert tables(storage) == before


def test_a_swap_keeps_the_other_fields_and_the_record_indexed(storage: SQLiteStorage) -> None:
    raw = b"\xff\xfe not utf-8"
    storage.save_record(RecordWrite(PEOPLE, "1", {"id": "1", "bad": raw, "nick": "old"}))
    assert storage.swap_field(FieldSwap(PEOPLE, "1", "nick", b"old", "new")) is None
    [record] = storage.load_records([LoadRequest(PEOPLE, "1")])
    assert record is not None and record.fields == {"id": "1", "bad": raw, "nick": "new"}
    assert rows(storage, "SELECT indexed FROM records") == [(1,)]


def test_iteration_reads_a_snapshot(storage: SQLiteStorage) -> None:
    for i in range(10):
        storage.save_record(write(f"{i:02}", {"eq:a": None}))
    ids = storage.iter_query_ids(PEOPLE, Members("eq:a"), None, 3)
    first = [next(ids) for _ in range(3)]
    storage.delete_record(PEOPLE, "05", [])
    storage.save_record(write("99", {"eq:a": None}))
    assert first + list(ids) == [f"{i:02}" for i in range(10)]
    assert rows(storage, "SELECT name FROM temp.sqlite_master") == []  # snapshot dropped


def test_iter_ids_and_stored_ids_page_through_every_record(storage: SQLiteStorage) -> None:
    storage.save_records([write(f"{i:03}") for i in range(25)])
    assert list(storage.iter_ids(PEOPLE, 7)) == [f"{i:03}" for i in range(25)]
    assert list(storage.iter_stored_ids(PEOPLE, 10)) == [f"{i:03}" for i in range(25)]
    assert storage.count_records(PEOPLE) == 25


def test_drop_index_keeps_records(storage: SQLiteStorage) -> None:
    storage.save_record(write("1", {"eq:a": None}, {"wand": "holly"}))
    storage.drop_index(PEOPLE)
    assert storage.query_ids(PEOPLE, AllIds()) == ["1"]
    assert storage.query_ids(PEOPLE, Members("eq:a")) == []
    assert storage.read_index_entries(PEOPLE, ["1"]) == [None]
    storage.save_record(write("2", unique={"wand": "holly"}))  # the claim went too


def test_clear_removes_everything(storage: SQLiteStorage) -> None:
    storage.save_record(write("1", {"eq:a": None}, {"wand": "holly"}))
    storage.append_to_stream(PEOPLE, "1", "log", b"x")
    storage.clear()
    for table in ("records", "streams", "entries", "claims"):
        assert rows(storage, f"SELECT * FROM {table}") == []


# -- expiring records ------------------------------------------------------------------------


def expiring(record_id: str, ttl: float | None, **kwargs: Any) -> RecordWrite:
    return dataclasses.replace(write(record_id, **kwargs), ttl=ttl)


def test_the_backend_supports_expiring_records() -> None:
    assert SQLiteStorage.supports_ttl


def test_an_expired_record_leaves_no_row_in_any_table(storage: SQLiteStorage) -> None:
    storage.save_record(
        dataclasses.replace(
            expiring("1", 0.05, entries={"eq:a": None, "range:x": 1.0}, unique={"wand": "holly"}),
            streams={"log": b"kept until it expires"},
        )
    )
    storage.save_record(write("2", {"eq:a": None}))
    assert storage.count_ids(PEOPLE, Members("eq:a")) == 2
    time.sleep(0.08)
    # a query finds the record due and deletes it first, with everything it held
    assert storage.count_ids(PEOPLE, Members("eq:a")) == 1
    assert rows(storage, "SELECT id FROM records") == [("2",)]
    assert rows(storage, "SELECT id FROM entries") == [("2",)]
    assert rows(storage, "SELECT * FROM streams") == rows(storage, "SELECT * FROM claims") == []


@pytest.mark.parametrize(
    "read",
    [
        lambda s: s.load_records([LoadRequest(PEOPLE, "1", ("log",))]) == [None],
        lambda s: s.query_ids(PEOPLE, AllIds()) == [],
        lambda s: s.query_ids(PEOPLE, ScoreRange("range:x", 0, 2), Order("range:x")) == [],
        lambda s: s.count_ids(PEOPLE, AllIds()) == 0,
        lambda s: list(s.iter_ids(PEOPLE)) == [],
        lambda s: list(s.iter_stored_ids(PEOPLE)) == [],
        lambda s: list(s.iter_query_ids(PEOPLE, Members("eq:a"), None, 1)) == [],
        lambda s: s.read_index_entries(PEOPLE, ["1"]) == [None],
        lambda s: s.missing_entries(PEOPLE, [("1", frozenset())]) == ["1"],
    ],
)
def test_an_expired_record_is_invisible_to_every_read(storage: SQLiteStorage, read: Any) -> None:
    storage.save_record(expiring("1", 0.03, entries={"eq:a": None, "range:x": 1.0}))
    time.sleep(0.05)
    assert read(storage)


def test_an_expired_records_claims_are_free_for_a_write(storage: SQLiteStorage) -> None:
    storage.save_record(expiring("1", 0.03, unique={"wand": "holly"}))
    time.sleep(0.05)
    storage.save_record(write("2", unique={"wand": "holly"}))  # no UniqueViolation
    assert rows(storage, "SELECT id FROM claims") == [("2",)]


def test_writes_to_an_expired_record_find_it_gone(storage: SQLiteStorage) -> None:
    storage.save_record(expiring("1", 0.03, nick="old"))
    time.sleep(0.05)
    with pytest.raises(DoesNotExist):
        storage.append_to_stream(PEOPLE, "1", "log", b"x")
    with pytest.raises(DoesNotExist):
        storage.swap_field(FieldSwap(PEOPLE, "1", "nick", "old", "new"))
    assert storage.set_expiry(PEOPLE, "1", (), 10) is False
    assert storage.delete_record(PEOPLE, "1", ["log"]) == 0
    with pytest.raises(DoesNotExist):
        storage.get_expiry(PEOPLE, "1")


def test_expires_at_is_kept_by_a_save_without_ttl_and_set_and_cleared(
    storage: SQLiteStorage,
) -> None:
    def expires_at() -> object:
        return rows(storage, "SELECT expires_at FROM records WHERE id = '1'")[0][0]

    storage.save_record(write("1"))
    assert expires_at() is None and storage.get_expiry(PEOPLE, "1") is None
    before = int(time.time() * 1000)
    storage.save_record(expiring("1", 30))
    at = expires_at()
    assert isinstance(at, int) and before + 30_000 <= at <= time.time() * 1000 + 30_000
    storage.save_record(write("1", nick="again"))
    assert expires_at() == at
    left = storage.get_expiry(PEOPLE, "1")
    assert left is not None and 29 < left <= 30
    assert storage.set_expiry(PEOPLE, "1", (), None) is True
    assert expires_at() is None
    assert storage.set_expiry(PEOPLE, "missing", (), 10) is False


def test_a_record_written_again_after_expiring_has_no_expiry(storage: SQLiteStorage) -> None:
    storage.save_record(expiring("1", 0.03, nick="old"))
    time.sleep(0.05)
    storage.save_record(write("1", nick="new"))
    assert storage.get_expiry(PEOPLE, "1") is None
    assert storage.load_record(PEOPLE, "1").fields == {"id": "1", "nick": "new"}  # type: ignore[union-attr]


def test_expire_due_deletes_the_due_records_and_counts_them(storage: SQLiteStorage) -> None:
    storage.save_records([expiring(f"{i}", 0.03, entries={"eq:a": None}) for i in range(3)])
    storage.save_record(expiring("9", 30, entries={"eq:a": None}))
    assert storage.expire_due(PEOPLE) == 0
    time.sleep(0.05)
    assert rows(storage, "SELECT count(*) FROM records") == [(4,)]  # not read yet
    assert storage.expire_due(PEOPLE) == 3
    assert storage.expire_due(PEOPLE) == 0
    assert rows(storage, "SELECT id FROM entries") == [("9",)]


def test_reads_do_not_wait_for_a_writer_when_nothing_is_due(path: Path) -> None:
    store = SQLiteStorage(path, timeout=0.2)
    store.save_record(expiring("1", 30, entries={"eq:a": None}))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock
    try:
        assert store.count_ids(PEOPLE, Members("eq:a")) == 1
        assert store.query_ids(PEOPLE, AllIds()) == ["1"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


# -- upgrading a file of the previous layout ----------------------------------------------------

#: The tables of layout version 1, as repocket-sqlite 0.1 created them.
LAYOUT_1 = """
CREATE TABLE repocket_schema (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE records (
    collection TEXT NOT NULL, id TEXT NOT NULL, fields TEXT NOT NULL,
    indexed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (collection, id)
);
CREATE TABLE streams (
    collection TEXT NOT NULL, id TEXT NOT NULL, field TEXT NOT NULL,
    content BLOB NOT NULL, PRIMARY KEY (collection, id, field)
);
CREATE TABLE entries (
    collection TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, score REAL,
    PRIMARY KEY (collection, name, id)
) WITHOUT ROWID;
CREATE INDEX entries_by_score ON entries (collection, name, score, id);
CREATE INDEX entries_by_record ON entries (collection, id, name, score);
CREATE TABLE claims (
    collection TEXT NOT NULL, field TEXT NOT NULL, term TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (collection, field, term)
) WITHOUT ROWID;
CREATE INDEX claims_by_record ON claims (collection, id);
INSERT INTO repocket_schema VALUES ('version', '1');
INSERT INTO records VALUES ('tests.people:Person', '1', '{"id": "1", "nick": "old"}', 1);
INSERT INTO entries VALUES ('tests.people:Person', '1', 'eq:a', NULL);
INSERT INTO claims VALUES ('tests.people:Person', 'wand', 'holly', '1');
INSERT INTO streams VALUES ('tests.people:Person', '1', 'log', X'6C6F67');
"""


def test_a_file_of_layout_1_is_upgraded_when_opened(path: Path) -> None:
    old = sqlite3.connect(path)
    old.executescript(LAYOUT_1)
    old.close()
    store = SQLiteStorage(path)
    try:
        record = store.load_record(PEOPLE, "1", ["log"])
        assert record is not None and record.fields == {"id": "1", "nick": "old"}
        assert record.streams == {"log": b"log"}
        assert store.query_ids(PEOPLE, Members("eq:a")) == ["1"]
        assert store.get_expiry(PEOPLE, "1") is None  # an old record does not expire
        assert rows(store, "SELECT value FROM repocket_schema") == [("2",)]
        indexes = rows(store, "SELECT name FROM sqlite_master WHERE type = 'index'")
        assert ("records_by_expiry",) in indexes
        # and it can expire now, with everything it holds
        assert store.set_expiry(PEOPLE, "1", ["log"], 0.03)
        time.sleep(0.05)
        assert store.count_ids(PEOPLE, AllIds()) == 0
        assert tables(store) == {"records": [], "streams": [], "entries": [], "claims": []}
    finally:
        store.close()
    reopened = SQLiteStorage(path)  # already upgraded: opens as it is
    try:
        assert rows(reopened, "SELECT value FROM repocket_schema") == [("2",)]
    finally:
        reopened.close()


def test_a_file_of_a_newer_layout_is_refused(path: Path) -> None:
    newer = sqlite3.connect(path)
    newer.executescript(LAYOUT_1.replace("'version', '1'", "'version', '99'"))
    newer.close()
    store = SQLiteStorage(path)
    with pytest.raises(StorageError, match="layout version 99"):
        store.ping()
    store.close()
    check = sqlite3.connect(path)
    columns = [info[1] for info in check.execute("PRAGMA table_info(records)")]
    check.close()
    assert "expires_at" not in columns  # left as it was


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///{path}"])
def test_threads_share_one_storage(url: str, path: Path) -> None:
    store = SQLiteStorage.from_url(url.format(path=path))
    errors: list[BaseException] = []

    store.save_record(write("shared"))

    def work(worker: int) -> None:
        try:
            for i in range(25):
                store.save_record(write(f"{worker}-{i:02}", {f"eq:w{worker}": None}))
                store.append_to_stream(PEOPLE, "shared", "log", b"x")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert store.count_records(PEOPLE) == 101  # and "shared"
    assert all(store.count_ids(PEOPLE, Members(f"eq:w{w}")) == 25 for w in range(4))
    assert store.append_to_stream(PEOPLE, "shared", "log", b"") == 100
    store.close()


def test_a_finished_threads_connection_is_closed(path: Path) -> None:
    store = SQLiteStorage(path)
    store.ping()
    threads = [threading.Thread(target=store.ping) for _ in range(5)]
    for thread in threads:
        thread.start()
        thread.join(30)
    gc.collect()
    assert len(store._handles) == 1  # only this thread's
    store.close()
    assert len(store._handles) == 0
    store.ping()  # reopens
    store.close()


def test_no_statement_of_a_save_or_an_indexed_query_walks_the_collection(
    storage: SQLiteStorage,
) -> None:
    """Every statement uses an index beyond the collection: no work grows with
    the number of records (without this, SQLite may pick an index that only
    narrows to the collection and walk all of it, making saves quadratic)."""
    Wizard.objects.bulk_create([Wizard(name=f"w{i}", house=f"h{i % 3}", age=i) for i in range(30)])
    conn = storage.native_client
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        harry = Wizard.create(name="Harry", house="Gryffindor", age=17, wand="holly", diary=b"x")
        harry.age = 18
        harry.wand = "oak"
        harry.save()
        harry.append_diary(b"y")
        assert Wizard.objects.get(id=harry.id) == harry
        assert Wizard.objects.get(wand="oak") == harry
        assert Wizard.objects.filter(house="h1").count() == 10
        assert len(Wizard.objects.filter(house="h1", age__gte=10)) == 7
        assert len(Wizard.objects.filter(house__in=["h1", "h2"]).exclude(age__lt=10)) == 14
        assert len(Wizard.objects.filter(house="h1", age__ne=1)) == 9
        assert [w.age for w in Wizard.objects.order_by("-age")[1:3]] == [28, 27]
        assert len(Wizard.objects.filter(name__startswith="w1")) == 11
        assert len(Wizard.objects.get_many([harry.id])) == 1
        assert harry.delete() == 2
        # the protocol's checked writes, called directly
        created = dataclasses.replace(write("n", {"eq:a": None}, {"wand": "n"}), new=True)
        storage.save_record(created)
        storage.save_record(created)  # a retry after a lost reply
        storage.save_record(dataclasses.replace(created, new=False, expected=created.fields))
        swap = FieldSwap(
            PEOPLE,
            "n",
            "id",
            "n",
            "y",
            remove=frozenset({IndexEntry("eq:a")}),
            add=frozenset({IndexEntry("eq:c")}),
            release=frozenset({UniqueClaim("wand", "n")}),
            claim=frozenset({UniqueClaim("wand", "m")}),
        )
        assert storage.swap_field(swap) is None
        assert storage.swap_field(swap) == "y"
        assert storage.append_to_stream(PEOPLE, "n", "log", b"x") == 1
        assert storage.append_to_stream(PEOPLE, "n", "log", b"") == 1
        # expiry: a save with a ttl, reading and changing it, and the deletion
        # of the due record that the next query makes first
        storage.save_record(dataclasses.replace(write("e", {"eq:a": None}), ttl=10))
        assert storage.get_expiry(PEOPLE, "e") is not None
        assert storage.set_expiry(PEOPLE, "e", ["log"], 0.001)
        time.sleep(0.01)
        assert storage.count_ids(PEOPLE, Members("eq:a")) == 0
        assert storage.expire_due(PEOPLE) == 0
    finally:
        conn.set_trace_callback(None)
    walks = []
    for sql in sorted(set(statements)):
        if sql.split()[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            continue
        # the traced text spells infinities "Inf", which SQL cannot read back
        sql = re.sub(r"(?<![\w'])Inf\b", "9e999", sql)
        for row in conn.execute("EXPLAIN QUERY PLAN " + sql):
            detail = row[3]
            scan = detail.startswith(
                ("SCAN entries", "SCAN records", "SCAN claims", "SCAN streams")
            )
            if scan or (detail.startswith("SEARCH") and detail.endswith("(collection=?)")):
                walks.append((sql, detail))
    assert not walks


def test_many_connections_opening_a_new_file_at_once(tmp_path: Path) -> None:
    # Switching a new file to WAL takes an exclusive lock that SQLite does not
    # wait for; every connection must still open, however they race.
    for attempt in range(10):
        store = SQLiteStorage(tmp_path / f"race-{attempt}.db")
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def open_and_write(
            worker: int,
            store: SQLiteStorage = store,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                barrier.wait(10)
                store.save_record(write(f"{worker}", {}))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_and_write, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert store.count_records(PEOPLE) == 8
        store.close()
