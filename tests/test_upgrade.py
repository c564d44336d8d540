"""Upgrading data written by repocket 0.1.0 to the layout of engine v2.

repocket 0.1.0 kept, besides the record hashes and the shared index sets,
two keys *per record*: ``repocket::terms:<module>:<Model>:<id>`` (a JSON
string of the entries and claims the record was saved with) and a one-member
set ``repocket::index:<module>:<Model>:eq:id:"<id>"`` (the primary key was
indexed like any UUID field).  Engine v2 remembers entries in one hash per
model and never indexes the primary key.  The tests plant 0.1.0's keys with
raw commands, then check that the records load, that ``reindex()`` removes
the per-record keys and leaves one key per record, and that queries and
``check()`` are right afterwards; on the memory and the redis backend.
"""

from __future__ import annotations

import decimal
import json
import math
import uuid
from collections.abc import Iterable
from typing import Any

import pytest

from repocket.backends.layout import meta_patterns, record_patterns
from repocket.connections import configure
from repocket.errors import UniqueViolation
from repocket.indexes import entries_for
from repocket.keys import STREAM_INFIX
from repocket.storage import Storage
from repocket.testing.query_models import Wizard

MODULE = "repocket.testing.query_models"
MODEL = f"{MODULE}:Wizard"

# id, name, house, age, height, wand
ROWS: list[tuple[str, str, str, int | None, float | None, str | None]] = [
    ("4f0bd6d2-8e4c-11ee-9a3c-0242ac120002", "Harry Potter", "Gryffindor", 17, 1.75, "holly"),
    ("4f0bd6d3-8e4c-11ee-9a3c-0242ac120002", "Hermione Granger", "Gryffindor", 18, 1.65, "vine"),
    ("4f0bd6d4-8e4c-11ee-9a3c-0242ac120002", "Ron Weasley", "Gryffindor", 17, None, None),
    ("4f0bd6d5-8e4c-11ee-9a3c-0242ac120002", "Draco Malfoy", "Slytherin", 17, 1.8, "hawthorn"),
    ("4f0bd6d6-8e4c-11ee-9a3c-0242ac120002", "Luna Lovegood", "Ravenclaw", None, None, None),
]
IDS = [row[0] for row in ROWS]


def envelope(type_name: str, value: Any) -> str:
    """A field as 0.0.1 and 0.1.0 stored it."""
    return json.dumps({"type": type_name, "value": value, "module": "repocket.attributes"})


def number_term_0_1_0(value: float) -> str:
    """0.1.0's equality term of a (finite, non-zero) number: ``175E-2``."""
    sign, digits, exponent = decimal.Decimal(value).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0")
    exponent += len(digits) - len(text)
    return f"{'-' if sign else ''}{text}E{exponent}"


def entries_0_1_0(
    row: tuple[str, str, str, int | None, float | None, str | None],
) -> tuple[list[tuple[str, float | None]], list[tuple[str, str]]]:
    """The index entries (name, score) and unique claims (field, term) 0.1.0
    gave a Wizard: every field but ``notes`` and ``spells`` had an equality
    entry (the primary key too), numbers and datetimes a range entry (``-inf``
    for None), and ``name`` one prefix entry per prefix."""
    record_id, name, house, age, height, wand = row
    entries: list[tuple[str, float | None]] = [
        (f"eq:id:{json.dumps(record_id)}", None),
        (f"eq:name:{json.dumps(name)}", None),
        (f"eq:house:{json.dumps(house)}", None),
        (f"eq:wand:{json.dumps(wand)}", None),
    ]
    entries += [(f"prefix:name:{json.dumps(name[:n])}", None) for n in range(1, len(name) + 1)]
    for field, number in (("age", age), ("height", height), ("gold", None), ("born", None)):
        term = "null" if number is None else number_term_0_1_0(number)
        entries.append((f"eq:{field}:{term}", None))
        entries.append((f"range:{field}", -math.inf if number is None else float(number)))
    claims = [] if wand is None else [("wand", json.dumps(wand))]
    return entries, claims


def plant_0_1_0(client: Any) -> None:
    """Store ``ROWS`` with the keys repocket 0.1.0 wrote, with raw commands."""
    pipe = client.pipeline(transaction=False)
    for row in ROWS:
        record_id, name, house, age, height, wand = row
        pipe.hset(
            f"repocket:{MODEL}:{record_id}",
            mapping={
                "id": envelope("AutoUUID", record_id),
                "name": envelope("Unicode", name),
                "house": envelope("Unicode", house),
                "age": envelope("Integer", age),
                "height": envelope("Float", height),
                "gold": envelope("Decimal", None),
                "born": envelope("DateTime", None),
                "wand": envelope("Unicode", wand),
                "notes": envelope("Unicode", ""),
                "spells": envelope("JSON", None),
            },
        )
        entries, claims = entries_0_1_0(row)
        for entry_name, score in entries:
            key = f"repocket::index:{MODEL}:{entry_name}"
            if score is None:
                pipe.sadd(key, record_id)
            else:
                pipe.zadd(key, {record_id: score})
        for field, term in claims:
            pipe.hset(f"repocket::unique:{MODEL}", f"{field}:{term}", record_id)
        # 0.1.0's json.dumps wrote the -inf scores as -Infinity
        terms = {"entries": sorted([list(e) for e in entries]), "unique": sorted(claims)}
        pipe.set(f"repocket::terms:{MODEL}:{record_id}", json.dumps(terms))
        pipe.zadd(f"repocket::ids:{MODEL}", {record_id: 0})
    pipe.execute()


def model_keys(client: Any) -> set[str]:
    """Every key of the Wizard model (records and the data kept about them)."""
    collection = Wizard._collection
    found: set[str] = set()
    for pattern in (*record_patterns(collection), *meta_patterns(collection)):
        found.update(key.decode() for key in client.scan_iter(match=pattern, count=1000))
    return found


def matching(client: Any, pattern: str) -> list[str]:
    return sorted(key.decode() for key in client.scan_iter(match=pattern, count=1000))


def ids(records: Iterable[Wizard]) -> list[str]:
    return sorted(str(record.id) for record in records)


@pytest.fixture
def planted(storage: Storage) -> Any:
    """The storage's raw client, holding 0.1.0's data."""
    client = configure.get_connection()
    plant_0_1_0(client)
    return client


@pytest.fixture
def reindexed(planted: Any) -> Any:
    """0.1.0's data after ``reindex()``."""
    assert Wizard.objects.reindex() == len(ROWS)
    return planted


def test_a_record_of_0_1_0_loads_with_get(planted: Any) -> None:
    harry = Wizard.objects.get(id=IDS[0])
    assert harry.id == uuid.UUID(IDS[0])
    assert (harry.name, harry.house, harry.age, harry.height, harry.wand) == ROWS[0][1:]
    assert harry.gold is None and harry.spells is None


def test_check_reports_0_1_0_data_as_not_indexed_by_this_version(planted: Any) -> None:
    report = Wizard.objects.check()
    assert not report.ok
    assert sorted(report.stale + report.missing) == sorted(IDS)


def test_reindex_removes_the_per_record_keys_of_0_1_0(planted: Any) -> None:
    assert len(matching(planted, f"repocket::terms:{MODEL}:*")) == len(ROWS)
    assert len(matching(planted, f"repocket::index:{MODEL}:eq:id:*")) == len(ROWS)
    assert Wizard.objects.reindex() == len(ROWS)
    assert matching(planted, f"repocket::terms:{MODEL}:*") == []
    assert matching(planted, f"repocket::index:{MODEL}:eq:id:*") == []


def test_reindexed_data_has_one_key_per_record(reindexed: Any) -> None:
    keys = model_keys(reindexed)
    records = {key for key in keys if key.startswith(f"repocket:{MODEL}:")}
    assert records == {f"repocket:{MODEL}:{record_id}" for record_id in IDS}
    shared = keys - records
    # no key but a record's own hash is about one record
    assert [key for key in shared if any(record_id in key for record_id in IDS)] == []
    assert not any(STREAM_INFIX in key for key in keys)
    expected_entries: set[str] = set()
    for record in Wizard.objects.all():
        entries, _ = entries_for(Wizard, record._values)
        expected_entries.update(f"repocket::index:{MODEL}:{entry.name}" for entry in entries)
    structures = {f"repocket::{kind}:{MODEL}" for kind in ("ids", "terms", "unique")}
    assert shared == expected_entries | structures
    assert len(keys) == len(ROWS) + len(expected_entries) + len(structures)
    # the fixture emptied the database: everything in it is this model's
    assert reindexed.dbsize() == len(keys)


def test_check_is_ok_after_reindexing(reindexed: Any) -> None:
    report = Wizard.objects.check()
    assert report.ok
    assert report.checked == len(ROWS)


def test_count_is_right_after_reindexing(reindexed: Any) -> None:
    assert Wizard.objects.count() == len(ROWS)
    assert Wizard.objects.filter(house="Gryffindor").count() == 3


def test_filters_are_right_after_reindexing(reindexed: Any) -> None:
    assert ids(Wizard.objects.filter(house="Gryffindor")) == sorted(IDS[:3])
    assert ids(Wizard.objects.filter(age=17)) == sorted([IDS[0], IDS[2], IDS[3]])
    assert ids(Wizard.objects.filter(age__gte=18)) == [IDS[1]]
    assert ids(Wizard.objects.filter(height=None)) == sorted([IDS[2], IDS[4]])
    assert ids(Wizard.objects.filter(name__startswith="H")) == sorted(IDS[:2])
    assert ids(Wizard.objects.exclude(house="Gryffindor")) == sorted(IDS[3:])
    assert Wizard.objects.get(wand="hawthorn").id == uuid.UUID(IDS[3])
    assert [w.name for w in Wizard.objects.order_by("-height")[:2]] == [
        "Draco Malfoy",
        "Harry Potter",
    ]


def test_unique_values_stay_claimed_after_reindexing(reindexed: Any) -> None:
    with pytest.raises(UniqueViolation):
        Wizard.create(name="Impostor", wand="holly")


def test_saving_a_reindexed_record_moves_its_entries(reindexed: Any) -> None:
    ron = Wizard.objects.get(id=IDS[2])
    ron.house = "Hufflepuff"
    ron.age = 30
    ron.save()
    assert ids(Wizard.objects.filter(house="Hufflepuff")) == [IDS[2]]
    assert IDS[2] not in ids(Wizard.objects.filter(house="Gryffindor"))
    assert ids(Wizard.objects.filter(age=30)) == [IDS[2]]
    assert Wizard.objects.check().ok
