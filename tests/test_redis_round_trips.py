"""Round trips and commands to the server, counted (never timed) on the
redis backend and on the memory backend, which runs the same code on fakeredis.

Every write of a record is one server-side script: one round trip, one
command (``EVALSHA``).

These depend on how the redis backend talks to its server, so they are not
part of the conformance suite; ``tests/roundtrips.py`` counts the requests
redis-py sends.
"""

from __future__ import annotations

import datetime
import decimal

import pytest

from repocket.testing.query_models import Wizard

from .models import Build, Project
from .roundtrips import count_round_trips

UTC = datetime.timezone.utc


# -- records ---------------------------------------------------------------------------------


def test_save_is_one_round_trip_and_one_command(storage) -> None:
    build = Build(project=Project.create(name="p"), stdout=b"x", stderr=b"y")
    with count_round_trips(storage) as trips:
        build.save()
    assert (trips.count, trips.names) == (1, ["EVALSHA"])


def test_get_is_one_round_trip_including_streams(storage) -> None:
    build = Build.create(stdout=b"out", stderr=b"err")
    with count_round_trips(storage) as trips:
        loaded = Build.objects.get(id=build.id)
    assert trips.count == 1
    assert (loaded.stdout, loaded.stderr) == (b"out", b"err")


def test_get_with_a_pointer_costs_one_more_round_trip(storage) -> None:
    build = Build.create(project=Project.create(name="p"))
    with count_round_trips(storage) as trips:
        assert Build.objects.get(id=build.id).project.name == "p"
    assert trips.count == 2


def test_loading_many_records_with_pointers_costs_a_constant_number_of_round_trips(storage) -> None:
    projects = [Project.create(name=f"p{i}") for i in range(5)]
    for i in range(40):
        Build.create(project=projects[i % 5], stdout=b"x")
    with count_round_trips(storage) as trips:
        builds = [build for build in Build.objects.all()]
        assert {b.project.name for b in builds} == {f"p{i}" for i in range(5)}
    # one page of ids, one load of the records, one load of all their pointers
    assert len(builds) == 40 and trips.count == 3


def test_delete_is_one_round_trip_and_one_command(storage) -> None:
    build = Build.create(stdout=b"x")
    with count_round_trips(storage) as trips:
        assert build.delete() == 2
    assert (trips.count, trips.names) == (1, ["EVALSHA"])


def test_append_is_one_round_trip_and_one_command(storage) -> None:
    build = Build.create(stdout=b"x")
    with count_round_trips(storage) as trips:
        build.append_stdout(b"y")
    assert (trips.count, trips.names) == (1, ["EVALSHA"])


def test_increment_of_a_current_value_is_one_round_trip_and_one_command(storage) -> None:
    wizard = Wizard.create(name="Harry", age=17)
    with count_round_trips(storage) as trips:
        assert wizard.increment("age", 2) == 19
    assert (trips.count, trips.names) == (1, ["EVALSHA"])


def test_increment_of_a_stale_value_costs_one_more_round_trip(storage) -> None:
    wizard = Wizard.create(name="Harry", age=17)
    Wizard.objects.get(id=wizard.id).increment("age", 10)
    with count_round_trips(storage) as trips:
        assert wizard.increment("age", 1) == 28
    assert (trips.count, trips.names) == (2, ["EVALSHA", "EVALSHA"])


def test_a_conditional_save_is_one_round_trip_and_one_command(storage) -> None:
    wizard = Wizard.create(name="Harry", age=17)
    wizard.age = 18
    with count_round_trips(storage) as trips:
        wizard.save(if_unchanged=True)
    assert (trips.count, trips.names) == (1, ["EVALSHA"])


def test_scripts_are_loaded_again_after_script_flush(storage) -> None:
    wizard = Wizard.create(name="Harry", age=17)
    storage.native_client.script_flush()
    wizard.age = 18
    wizard.save()
    assert Wizard.objects.get(id=wizard.id).age == 18
    assert Wizard.objects.filter(age=18).count() == 1
    storage.native_client.script_flush()
    Wizard.objects.bulk_create([Wizard(name=f"w{i}", age=40) for i in range(3)])
    assert Wizard.objects.filter(age=40).count() == 3
    storage.native_client.script_flush()
    assert wizard.increment("age") == 19
    storage.native_client.script_flush()
    assert wizard.delete() == 1
    assert Wizard.objects.count() == 3


# -- queries ---------------------------------------------------------------------------------


def test_saving_a_new_record_is_one_round_trip_whatever_its_indexes(storage) -> None:
    wizard = Wizard(
        name="Harry",
        house="Gryffindor",
        age=17,
        height=1.7,
        gold=decimal.Decimal(1),
        born=datetime.datetime(1980, 7, 31, tzinfo=UTC),
    )
    with count_round_trips(storage) as trips:
        wizard.save()
    assert (trips.count, trips.names) == (1, ["EVALSHA"])


def test_saving_a_changed_record_is_one_round_trip_and_one_command(storage) -> None:
    wizard = Wizard.create(name="Harry", wand="holly")
    wizard.age = 18
    with count_round_trips(storage) as trips:
        wizard.save()
    assert (trips.count, trips.names) == (1, ["EVALSHA"])


def test_get_many_and_bulk_create_are_one_round_trip_per_batch(storage, monkeypatch) -> None:
    from repocket.manager import Manager
    from repocket.resultset import ResultSet

    monkeypatch.setattr(ResultSet, "batch_size", 10)
    monkeypatch.setattr(Manager, "get_many_batch_size", 10)
    wizards = [Wizard(name=f"w{i}", age=i, wand=f"wand {i}") for i in range(25)]
    with count_round_trips(storage) as trips:
        Wizard.objects.bulk_create(wizards)
    # unique claims (wand) are checked by the scripts: still one pipeline per
    # batch, holding one script per chunk of up to SAVE_BATCH records
    assert trips.count == 3
    assert trips.names == ["EVALSHA"] * 3
    monkeypatch.setattr("repocket.backends.redis.SAVE_BATCH", 4)
    more = [Wizard(name=f"x{i}", age=i, wand=f"wand x{i}") for i in range(10)]
    with count_round_trips(storage) as trips:
        Wizard.objects.bulk_create(more)
    assert (trips.count, trips.names) == (1, ["EVALSHA"] * 3)  # 4 + 4 + 2 records
    with count_round_trips(storage) as trips:
        assert len(Wizard.objects.get_many([w.id for w in wizards])) == 25
    assert (trips.count, trips.names) == (3, ["HGETALL"] * 25)


@pytest.mark.parametrize("matches", [1, 20, 60])
def test_filter_costs_a_constant_number_of_round_trips(storage, matches: int) -> None:
    Wizard.objects.bulk_create(
        [
            Wizard(name=f"w{i}", house="Gryffindor" if i < matches else "x", age=i)
            for i in range(100)
        ]
    )
    with count_round_trips(storage) as trips:
        found = [w for w in Wizard.objects.filter(house="Gryffindor", age__gte=0)]
    assert len(found) == matches
    assert trips.count == 2  # evaluate the query, load the matches
    with count_round_trips(storage) as trips:
        assert Wizard.objects.filter(house="Gryffindor").count() == matches
    assert trips.count == 1


def test_a_page_ordered_by_a_range_field_loads_only_that_page(storage) -> None:
    Wizard.objects.bulk_create([Wizard(name=f"w{i}", age=i) for i in range(200)])
    with count_round_trips(storage) as trips:
        page = Wizard.objects.order_by("-age")[20:30]
    assert [w.age for w in page] == list(range(179, 169, -1))
    # one read script: the check that no score is inexact, the page's ids
    # and their records
    assert trips.count == 1
    assert trips.names == ["EVALSHA"]


def test_list_of_a_result_set_reads_storage_once(storage) -> None:
    # list() asks iter() and then len(); len() loads, and the iterator then
    # reads what it loaded instead of querying again
    Wizard.objects.bulk_create([Wizard(name=f"w{i}", house="Gryffindor") for i in range(30)])
    with count_round_trips(storage) as trips:
        found = list(Wizard.objects.filter(house="Gryffindor"))
    assert len(found) == 30
    assert trips.count == 1  # one read script: the set's ids and their records


def test_a_range_filter_is_one_query_and_one_load(storage) -> None:
    Wizard.objects.bulk_create([Wizard(name=f"w{i}", age=i) for i in range(200)])
    with count_round_trips(storage) as trips:
        found = [w.age for w in Wizard.objects.filter(age__gte=50, age__lt=60)]
    assert sorted(found) == list(range(50, 60))
    assert trips.count == 1  # one read script
