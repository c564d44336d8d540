"""The query engine: lookups, indexes, ordering, paging, unique fields,
reindexing and round-trip costs, on every backend."""

from __future__ import annotations

import datetime
import decimal
import json

import pytest

from repocket import ActiveRecord, attributes
from repocket.connections import configure
from repocket.errors import UniqueViolation, UnknownFieldError, ValidationError

from .models import Build, Project
from .roundtrips import count_round_trips

UTC = datetime.timezone.utc


class Wizard(ActiveRecord):
    """A model with every kind of index."""

    name = attributes.Unicode(index="prefix")
    house = attributes.Unicode()
    age = attributes.Integer(null=True)
    height = attributes.Float(null=True)
    gold = attributes.Decimal(null=True)
    born = attributes.DateTime(null=True)
    wand = attributes.Unicode(unique=True, null=True)
    notes = attributes.Unicode(index=False)
    spells = attributes.JSON()


@pytest.fixture
def wizards(storage):
    rows = [
        ("Harry Potter", "Gryffindor", 17, 1.75, "10.5", datetime.datetime(1980, 7, 31, tzinfo=UTC)),
        ("Hermione Granger", "Gryffindor", 18, 1.65, "250", datetime.datetime(1979, 9, 19, tzinfo=UTC)),
        ("Ron Weasley", "Gryffindor", 17, 1.85, "0.5", datetime.datetime(1980, 3, 1, tzinfo=UTC)),
        ("Draco Malfoy", "Slytherin", 17, 1.80, "9000", datetime.datetime(1980, 6, 5, tzinfo=UTC)),
        ("Luna Lovegood", "Ravenclaw", 16, None, None, None),
    ]
    return {name: Wizard.create(name=name, house=house, age=age, height=height,
                                gold=None if gold is None else decimal.Decimal(gold), born=born,
                                notes=f"notes on {name}", spells={"count": len(name)})
            for name, house, age, height, gold, born in rows}


def names(results) -> list[str]:
    return [record.name for record in results]


# -- lookups ------------------------------------------------------------------------------

def test_equality_on_an_undeclared_index_uses_the_default_index(wizards) -> None:
    assert sorted(names(Wizard.objects.filter(house="Gryffindor"))) == [
        "Harry Potter", "Hermione Granger", "Ron Weasley"]


def test_several_conditions_must_all_hold(wizards) -> None:
    assert names(Wizard.objects.filter(house="Gryffindor", age=18)) == ["Hermione Granger"]


def test_ne_in_and_exclude(wizards) -> None:
    assert sorted(names(Wizard.objects.filter(house__ne="Gryffindor"))) == [
        "Draco Malfoy", "Luna Lovegood"]
    assert sorted(names(Wizard.objects.filter(house__in=["Slytherin", "Ravenclaw"]))) == [
        "Draco Malfoy", "Luna Lovegood"]
    assert sorted(names(Wizard.objects.exclude(house="Gryffindor", age=17))) == [
        "Draco Malfoy", "Hermione Granger", "Luna Lovegood"]


def test_in_with_no_values_matches_nothing(wizards) -> None:
    assert list(Wizard.objects.filter(house__in=[])) == []


def test_range_lookups_on_integers(wizards) -> None:
    assert sorted(names(Wizard.objects.filter(age__gt=16, age__lt=18))) == [
        "Draco Malfoy", "Harry Potter", "Ron Weasley"]
    assert names(Wizard.objects.filter(age__gte=18)) == ["Hermione Granger"]
    assert names(Wizard.objects.filter(age__lte=16)) == ["Luna Lovegood"]


def test_range_lookups_on_floats_decimals_and_datetimes(wizards) -> None:
    assert sorted(names(Wizard.objects.filter(height__gte=1.8))) == ["Draco Malfoy", "Ron Weasley"]
    assert sorted(names(Wizard.objects.filter(gold__lt=decimal.Decimal("10.5")))) == [
        "Ron Weasley"]
    assert names(Wizard.objects.filter(gold__gt="1000")) == ["Draco Malfoy"]
    born_1980 = Wizard.objects.filter(born__gte=datetime.datetime(1980, 1, 1, tzinfo=UTC))
    assert sorted(names(born_1980)) == ["Draco Malfoy", "Harry Potter", "Ron Weasley"]


def test_none_matches_no_range_lookup_but_equals_none(wizards) -> None:
    assert "Luna Lovegood" not in names(Wizard.objects.filter(height__lt=100))
    assert names(Wizard.objects.filter(height=None)) == ["Luna Lovegood"]


def test_naive_bounds_do_not_match_aware_values(wizards) -> None:
    assert list(Wizard.objects.filter(born__gte=datetime.datetime(1900, 1, 1))) == []


def test_startswith_uses_the_prefix_index(wizards) -> None:
    assert sorted(names(Wizard.objects.filter(name__startswith="H"))) == [
        "Harry Potter", "Hermione Granger"]
    assert names(Wizard.objects.filter(name__startswith="Harry P")) == ["Harry Potter"]


def test_startswith_longer_than_the_indexed_prefixes_is_still_exact(storage) -> None:
    long_a = "x" * 40 + "a"
    Wizard.create(name=long_a)
    Wizard.create(name="x" * 40 + "b")
    assert names(Wizard.objects.filter(name__startswith="x" * 40 + "a")) == [long_a]
    assert Wizard.objects.filter(name__startswith="x" * 40 + "a").count() == 1


def test_lookups_on_unindexed_fields_work_by_reading_records(wizards) -> None:
    assert names(Wizard.objects.filter(notes="notes on Ron Weasley")) == ["Ron Weasley"]
    assert names(Wizard.objects.filter(spells={"count": 13})) == ["Luna Lovegood"]
    assert Wizard.objects.filter(notes__startswith="notes on H").count() == 2


def test_equal_numbers_match_whatever_their_form(storage) -> None:
    wizard = Wizard.create(gold=decimal.Decimal("5.00"), height=5.0, age=5)
    assert Wizard.objects.get(gold=5) == wizard
    assert Wizard.objects.get(gold="5.0") == wizard
    assert Wizard.objects.get(height=5) == wizard
    assert Wizard.objects.get(age=5.0) == wizard
    assert Wizard.objects.filter(height=-0.0).count() == 0
    Wizard.create(height=-0.0)
    assert Wizard.objects.filter(height=0.0).count() == 1


def test_integers_beyond_float_precision_are_compared_exactly(storage) -> None:
    big = 2**60
    Wizard.create(name="big", age=big)
    Wizard.create(name="bigger", age=big + 1)
    assert names(Wizard.objects.filter(age__gt=big)) == ["bigger"]
    assert names(Wizard.objects.filter(age=big + 1)) == ["bigger"]
    assert Wizard.objects.filter(age__lte=big).count() == 1
    assert names(Wizard.objects.order_by("-age")) == ["bigger", "big"]


def test_pointer_lookups(storage) -> None:
    p1, p2 = Project.create(name="a"), Project.create(name="b")
    b1 = Build.create(project=p1)
    Build.create(project=p2)
    assert [b.id for b in Build.objects.filter(project=p1)] == [b1.id]
    assert Build.objects.filter(project__in=[p1, p2.id]).count() == 2
    assert Build.objects.filter(project__ne=p1).count() == 1


def test_an_unknown_lookup_is_an_error(storage) -> None:
    with pytest.raises(UnknownFieldError, match="'contains' is not a lookup"):
        Wizard.objects.filter(name__contains="x")
    with pytest.raises(UnknownFieldError):
        Wizard.objects.filter(nickname__gt=3)


def test_a_lookup_that_does_not_apply_to_the_field_is_an_error(storage) -> None:
    with pytest.raises(ValidationError, match=r"Wizard\.house.*__gt"):
        Wizard.objects.filter(house__gt="A")
    with pytest.raises(ValidationError, match="__startswith applies to Unicode"):
        Wizard.objects.filter(age__startswith="1")
    with pytest.raises(ValidationError, match="takes a list"):
        Wizard.objects.filter(house__in="Gryffindor")
    with pytest.raises(ValidationError, match=r"Wizard\.age"):
        Wizard.objects.filter(age__gte="seventeen")


def test_declaring_an_index_a_type_cannot_have_is_a_definition_error() -> None:
    from repocket.errors import RepocketActiveRecordDefinitionError

    with pytest.raises(RepocketActiveRecordDefinitionError, match="JSON"):
        attributes.JSON(index=True)
    with pytest.raises(RepocketActiveRecordDefinitionError, match="prefix"):
        attributes.Integer(index="prefix")
    with pytest.raises(RepocketActiveRecordDefinitionError, match="unique"):
        attributes.Unicode(index=False, unique=True)


# -- ordering, paging, helpers ---------------------------------------------------------------

def test_order_by_a_range_field_on_the_server(wizards) -> None:
    assert names(Wizard.objects.order_by("height")) == [
        "Luna Lovegood", "Hermione Granger", "Harry Potter", "Draco Malfoy", "Ron Weasley"]
    assert names(Wizard.objects.order_by("-height")) == [
        "Ron Weasley", "Draco Malfoy", "Harry Potter", "Hermione Granger", "Luna Lovegood"]


def test_ties_come_by_ascending_id_in_both_directions(wizards) -> None:
    seventeen = sorted(str(w.id) for w in wizards.values() if w.age == 17)
    for spec in ("age", "-age"):
        ids = [str(w.id) for w in Wizard.objects.filter(age=17).order_by(spec)]
        assert ids == seventeen


def test_order_by_text_and_several_fields(wizards) -> None:
    assert names(Wizard.objects.order_by("-house", "name")) == [
        "Draco Malfoy", "Luna Lovegood", "Harry Potter", "Hermione Granger", "Ron Weasley"]


def test_slices_and_indexes(wizards) -> None:
    ordered = Wizard.objects.order_by("-gold")
    assert names(ordered[1:3]) == ["Hermione Granger", "Harry Potter"]
    assert ordered[0].name == "Draco Malfoy"
    assert ordered[-1].name == "Luna Lovegood"
    assert names(ordered[3:]) == ["Ron Weasley", "Luna Lovegood"]
    assert ordered[10:20] == []
    with pytest.raises(IndexError):
        ordered[5]  # noqa: B018


def test_first_exists_count(wizards) -> None:
    assert Wizard.objects.order_by("age").first().name == "Luna Lovegood"
    assert Wizard.objects.filter(house="Hufflepuff").first() is None
    assert Wizard.objects.filter(house="Ravenclaw").exists()
    assert not Wizard.objects.filter(house="Hufflepuff").exists()
    assert Wizard.objects.filter(house="Gryffindor").count() == 3
    assert len(Wizard.objects.filter(house="Gryffindor")) == 3


def test_get_on_a_unique_combination(wizards) -> None:
    assert Wizard.objects.get(house="Gryffindor", age=18).name == "Hermione Granger"
    with pytest.raises(Wizard.MultipleObjectsReturned):
        Wizard.objects.get(house="Gryffindor", age=17)
    with pytest.raises(Wizard.DoesNotExist):
        Wizard.objects.get(house="Hufflepuff")


def test_delete_on_a_query(wizards) -> None:
    assert Wizard.objects.filter(house="Gryffindor").delete() == 3
    assert Wizard.objects.count() == 2
    assert Wizard.objects.filter(house="Gryffindor").count() == 0
    assert Wizard.objects.check().ok


def test_get_many_keeps_order_and_marks_missing(wizards) -> None:
    harry, luna = wizards["Harry Potter"], wizards["Luna Lovegood"]
    missing = "00000000-0000-1000-8000-000000000000"
    found = Wizard.objects.get_many([luna.id, missing, str(harry.id)])
    assert [w.name if w else None for w in found] == ["Luna Lovegood", None, "Harry Potter"]


def test_bulk_create_saves_and_indexes_everything(storage) -> None:
    created = Wizard.objects.bulk_create(
        [Wizard(name=f"w{i}", house="Hufflepuff", age=i) for i in range(30)])
    assert all(w.id is not None for w in created)
    assert Wizard.objects.filter(house="Hufflepuff", age__gte=20).count() == 10
    assert Wizard.objects.check().ok


def test_bulk_create_validates_everything_before_writing(storage) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the unsaved pointer's error
        Build.objects.bulk_create([Build(), Build(project=Project(name="unsaved"))])
    assert Build.objects.count() == 0


# -- indexes stay exactly right ---------------------------------------------------------------

def test_updating_a_field_moves_its_index_entry(wizards) -> None:
    harry = wizards["Harry Potter"]
    harry.house = "Slytherin"
    harry.age = 40
    harry.save()
    assert "Harry Potter" not in names(Wizard.objects.filter(house="Gryffindor"))
    assert "Harry Potter" in names(Wizard.objects.filter(house="Slytherin"))
    assert names(Wizard.objects.filter(age__gte=40)) == ["Harry Potter"]
    assert Wizard.objects.check().ok


def test_an_instance_loaded_twice_updates_cleanly(wizards) -> None:
    first = Wizard.objects.get(name="Ron Weasley")
    second = Wizard.objects.get(name="Ron Weasley")
    first.house = "Hufflepuff"
    first.save()
    second.age = 99
    second.save()  # rewrites house too, from its own (older) copy
    assert Wizard.objects.filter(house="Hufflepuff").count() == 0
    assert Wizard.objects.get(age=99).house == "Gryffindor"
    assert Wizard.objects.check().ok


def test_deleting_removes_every_index_entry(wizards) -> None:
    wizards["Luna Lovegood"].delete()
    keys = [key.decode() for key in configure.get_connection().scan_iter(match="repocket::*")]
    assert not [key for key in keys if "Luna" in key or "Ravenclaw" in key]
    assert Wizard.objects.check().ok


def test_index_keys_never_collide_with_record_keys(wizards) -> None:
    for key in configure.get_connection().scan_iter(match="repocket:*"):
        text = key.decode()
        if not text.startswith("repocket::"):
            assert text.count(":") in (3, 5)  # record hash or ByteStream


# -- unique --------------------------------------------------------------------------------

def test_unique_values_are_refused_and_nothing_is_written(storage) -> None:
    Wizard.create(name="Harry", wand="holly")
    ron = Wizard(name="Ron", wand="holly")
    with pytest.raises(UniqueViolation) as info:
        ron.save()
    message = str(info.value)
    assert "Wizard.wand" in message and "'holly'" in message
    assert isinstance(info.value, ValueError)
    assert ron.id is None and Wizard.objects.count() == 1
    assert Wizard.objects.filter(name="Ron").count() == 0


def test_a_unique_value_is_freed_by_an_update_or_a_delete(storage) -> None:
    harry = Wizard.create(name="Harry", wand="holly")
    harry.wand = "phoenix"
    harry.save()
    ron = Wizard.create(name="Ron", wand="holly")
    ron.delete()
    Wizard.create(name="Ginny", wand="holly")
    assert Wizard.objects.get(wand="holly").name == "Ginny"


def test_several_records_may_lack_a_unique_value(storage) -> None:
    Wizard.create(name="a")
    Wizard.create(name="b")
    assert Wizard.objects.filter(wand=None).count() == 2


def test_saving_the_same_record_again_keeps_its_unique_value(storage) -> None:
    harry = Wizard.create(name="Harry", wand="holly")
    harry.save()
    Wizard.objects.get(wand="holly").save()
    assert Wizard.objects.get(wand="holly").name == "Harry"


# -- reindex and check -----------------------------------------------------------------------

def write_like_0_0_1(record_id: str, **values: object) -> None:
    """Store a record the way 0.0.1 did: the hash alone, with no index data."""
    key = f"repocket:{Wizard.__module__}:Wizard:{record_id}"
    fields = {"id": json.dumps({"type": "AutoUUID", "value": record_id,
                                "module": "repocket.attributes"})}
    for name, value in values.items():
        fields[name] = json.dumps({"type": "Unicode", "value": value,
                                   "module": "repocket.attributes"})
    configure.get_connection().hset(key, mapping=fields)


def test_reindex_indexes_records_written_without_index_data(storage) -> None:
    write_like_0_0_1("970773fa-4de1-11e5-86f4-6c4008a70392", name="Harry", house="Gryffindor")
    write_like_0_0_1("40997aa4-71fc-4ad3-b0d7-04c0fac6d6d8", name="Ron", house="Gryffindor")
    report = Wizard.objects.check()
    assert not report.ok and len(report.missing) == 2
    assert Wizard.objects.filter(house="Gryffindor").count() == 0
    assert Wizard.objects.reindex() == 2
    assert Wizard.objects.filter(house="Gryffindor").count() == 2
    assert Wizard.objects.check().ok


def test_check_finds_stale_and_orphaned_index_data(wizards) -> None:
    connection = configure.get_connection()
    harry = wizards["Harry Potter"]
    connection.hset(harry.save()["hash"], "house", json.dumps(
        {"type": "Unicode", "value": "Hufflepuff", "module": "repocket.attributes"}))
    connection.delete(wizards["Luna Lovegood"].save()["hash"])
    report = Wizard.objects.check()
    assert report.stale == [str(harry.id)]
    assert report.orphans == [str(wizards["Luna Lovegood"].id)]
    Wizard.objects.reindex()
    assert Wizard.objects.check().ok
    assert names(Wizard.objects.filter(house="Hufflepuff")) == ["Harry Potter"]


# -- round trips -----------------------------------------------------------------------------

def test_saving_a_new_record_is_one_round_trip_whatever_its_indexes(storage) -> None:
    wizard = Wizard(name="Harry", house="Gryffindor", age=17, height=1.7, gold=decimal.Decimal(1),
                    born=datetime.datetime(1980, 7, 31, tzinfo=UTC))
    with count_round_trips(storage) as trips:
        wizard.save()
    assert trips.count == 1


def test_saving_a_changed_record_is_two_round_trips(storage) -> None:
    wizard = Wizard.create(name="Harry", wand="holly")
    wizard.age = 18
    with count_round_trips(storage) as trips:
        wizard.save()
    assert trips.count == 2


def test_get_many_and_bulk_create_are_one_round_trip_per_batch(storage, monkeypatch) -> None:
    from repocket.manager import ResultSet

    monkeypatch.setattr(ResultSet, "batch_size", 10)
    wizards = [Wizard(name=f"w{i}", age=i) for i in range(25)]
    with count_round_trips(storage) as trips:
        Wizard.objects.bulk_create(wizards)
    assert trips.count == 3
    with count_round_trips(storage) as trips:
        assert len(Wizard.objects.get_many([w.id for w in wizards])) == 25
    assert trips.count == 3


@pytest.mark.parametrize("matches", [1, 20, 60])
def test_filter_costs_a_constant_number_of_round_trips(storage, matches: int) -> None:
    Wizard.objects.bulk_create([Wizard(name=f"w{i}", house="Gryffindor" if i < matches else "x",
                                       age=i) for i in range(100)])
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
    # is anything inexact (one check), the page's ids, the page's records
    assert trips.count == 3
