"""Conformance: the query engine -- lookups, indexes, ordering, paging, unique
fields, reindexing -- on the shared ``Wizard`` model."""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Iterable

import pytest

from ...errors import UniqueViolation, UnknownFieldError, ValidationError
from ...storage import Storage
from ..models import Build, Project
from ..query_models import Event, Wizard
from .base import BackendSuite, rewrite_stored_fields, unindex

__all__ = ["QueryConformance", "create_wizards"]

UTC = datetime.timezone.utc


def names(results: Iterable[Wizard]) -> list[str]:
    return [record.name for record in results]


def create_wizards() -> dict[str, Wizard]:
    """Five wizards, by name; Luna has no height, gold nor birth date."""
    rows = [
        (
            "Harry Potter",
            "Gryffindor",
            17,
            1.75,
            "10.5",
            datetime.datetime(1980, 7, 31, tzinfo=UTC),
        ),
        (
            "Hermione Granger",
            "Gryffindor",
            18,
            1.65,
            "250",
            datetime.datetime(1979, 9, 19, tzinfo=UTC),
        ),
        ("Ron Weasley", "Gryffindor", 17, 1.85, "0.5", datetime.datetime(1980, 3, 1, tzinfo=UTC)),
        ("Draco Malfoy", "Slytherin", 17, 1.80, "9000", datetime.datetime(1980, 6, 5, tzinfo=UTC)),
        ("Luna Lovegood", "Ravenclaw", 16, None, None, None),
    ]
    return {
        name: Wizard.create(
            name=name,
            house=house,
            age=age,
            height=height,
            gold=None if gold is None else decimal.Decimal(gold),
            born=born,
            notes=f"notes on {name}",
            spells={"count": len(name)},
        )
        for name, house, age, height, gold, born in rows
    }


class QueryConformance(BackendSuite):
    """Lookups, indexes, ordering and paging through ``Model.objects``."""

    @pytest.fixture
    def wizards(self, storage: Storage) -> dict[str, Wizard]:
        return create_wizards()

    # -- lookups -------------------------------------------------------------

    def test_equality_on_an_undeclared_index_uses_the_default_index(
        self, wizards: dict[str, Wizard]
    ) -> None:
        assert sorted(names(Wizard.objects.filter(house="Gryffindor"))) == [
            "Harry Potter",
            "Hermione Granger",
            "Ron Weasley",
        ]

    def test_several_conditions_must_all_hold(self, wizards: dict[str, Wizard]) -> None:
        assert names(Wizard.objects.filter(house="Gryffindor", age=18)) == ["Hermione Granger"]

    def test_ne_in_and_exclude(self, wizards: dict[str, Wizard]) -> None:
        assert sorted(names(Wizard.objects.filter(house__ne="Gryffindor"))) == [
            "Draco Malfoy",
            "Luna Lovegood",
        ]
        assert sorted(names(Wizard.objects.filter(house__in=["Slytherin", "Ravenclaw"]))) == [
            "Draco Malfoy",
            "Luna Lovegood",
        ]
        assert sorted(names(Wizard.objects.exclude(house="Gryffindor", age=17))) == [
            "Draco Malfoy",
            "Hermione Granger",
            "Luna Lovegood",
        ]

    def test_in_with_no_values_matches_nothing(self, wizards: dict[str, Wizard]) -> None:
        assert list(Wizard.objects.filter(house__in=[])) == []

    def test_range_lookups_on_integers(self, wizards: dict[str, Wizard]) -> None:
        assert sorted(names(Wizard.objects.filter(age__gt=16, age__lt=18))) == [
            "Draco Malfoy",
            "Harry Potter",
            "Ron Weasley",
        ]
        assert names(Wizard.objects.filter(age__gte=18)) == ["Hermione Granger"]
        assert names(Wizard.objects.filter(age__lte=16)) == ["Luna Lovegood"]

    def test_range_lookups_on_floats_decimals_and_datetimes(
        self, wizards: dict[str, Wizard]
    ) -> None:
        assert sorted(names(Wizard.objects.filter(height__gte=1.8))) == [
            "Draco Malfoy",
            "Ron Weasley",
        ]
        assert sorted(names(Wizard.objects.filter(gold__lt=decimal.Decimal("10.5")))) == [
            "Ron Weasley"
        ]
        assert names(Wizard.objects.filter(gold__gt="1000")) == ["Draco Malfoy"]
        born_1980 = Wizard.objects.filter(born__gte=datetime.datetime(1980, 1, 1, tzinfo=UTC))
        assert sorted(names(born_1980)) == ["Draco Malfoy", "Harry Potter", "Ron Weasley"]

    def test_none_matches_no_range_lookup_but_equals_none(self, wizards: dict[str, Wizard]) -> None:
        assert "Luna Lovegood" not in names(Wizard.objects.filter(height__lt=100))
        assert names(Wizard.objects.filter(height=None)) == ["Luna Lovegood"]

    def test_naive_bounds_do_not_match_aware_values(self, wizards: dict[str, Wizard]) -> None:
        naive_bound = datetime.datetime(1900, 1, 1)
        # every birth date is aware: a naive bound could match nothing, which
        # is refused rather than returned as an empty result
        with pytest.raises(ValidationError, match=r"Wizard\.born holds only aware datetimes"):
            list(Wizard.objects.filter(born__gte=naive_bound))
        Wizard.create(name="Colin Creevey", house="Gryffindor", born="1981-09-01")
        assert names(Wizard.objects.filter(born__gte=naive_bound)) == ["Colin Creevey"]

    def test_startswith_uses_the_prefix_index(self, wizards: dict[str, Wizard]) -> None:
        assert sorted(names(Wizard.objects.filter(name__startswith="H"))) == [
            "Harry Potter",
            "Hermione Granger",
        ]
        assert names(Wizard.objects.filter(name__startswith="Harry P")) == ["Harry Potter"]

    def test_startswith_longer_than_the_indexed_prefixes_is_still_exact(
        self, storage: Storage
    ) -> None:
        long_a = "x" * 40 + "a"
        Wizard.create(name=long_a)
        Wizard.create(name="x" * 40 + "b")
        assert names(Wizard.objects.filter(name__startswith="x" * 40 + "a")) == [long_a]
        assert Wizard.objects.filter(name__startswith="x" * 40 + "a").count() == 1

    def test_lookups_on_unindexed_fields_work_by_reading_records(
        self, wizards: dict[str, Wizard]
    ) -> None:
        assert names(Wizard.objects.filter(notes="notes on Ron Weasley")) == ["Ron Weasley"]
        assert names(Wizard.objects.filter(spells={"count": 13})) == ["Luna Lovegood"]
        assert Wizard.objects.filter(notes__startswith="notes on H").count() == 2

    def test_equal_numbers_match_whatever_their_form(self, storage: Storage) -> None:
        wizard = Wizard.create(gold=decimal.Decimal("5.00"), height=5.0, age=5)
        assert Wizard.objects.get(gold=5) == wizard
        assert Wizard.objects.get(gold="5.0") == wizard
        assert Wizard.objects.get(height=5) == wizard
        assert Wizard.objects.get(age=5.0) == wizard
        assert Wizard.objects.filter(height=-0.0).count() == 0
        Wizard.create(height=-0.0)
        assert Wizard.objects.filter(height=0.0).count() == 1

    def test_integers_beyond_float_precision_are_compared_exactly(self, storage: Storage) -> None:
        big = 2**60
        Wizard.create(name="big", age=big)
        Wizard.create(name="bigger", age=big + 1)
        assert names(Wizard.objects.filter(age__gt=big)) == ["bigger"]
        assert names(Wizard.objects.filter(age=big + 1)) == ["bigger"]
        assert Wizard.objects.filter(age__lte=big).count() == 1
        assert names(Wizard.objects.order_by("-age")) == ["bigger", "big"]

    def test_pointer_lookups(self, storage: Storage) -> None:
        p1, p2 = Project.create(name="a"), Project.create(name="b")
        b1 = Build.create(project=p1)
        Build.create(project=p2)
        assert [b.id for b in Build.objects.filter(project=p1)] == [b1.id]
        assert Build.objects.filter(project__in=[p1, p2.id]).count() == 2
        assert Build.objects.filter(project__ne=p1).count() == 1

    def test_an_unknown_lookup_is_an_error(self, storage: Storage) -> None:
        with pytest.raises(UnknownFieldError, match="'contains' is not a lookup"):
            Wizard.objects.filter(name__contains="x")
        with pytest.raises(UnknownFieldError):
            Wizard.objects.filter(nickname__gt=3)

    def test_a_lookup_that_does_not_apply_to_the_field_is_an_error(self, storage: Storage) -> None:
        with pytest.raises(ValidationError, match=r"Wizard\.house.*__gt"):
            Wizard.objects.filter(house__gt="A")
        with pytest.raises(ValidationError, match="__startswith applies to Unicode"):
            Wizard.objects.filter(age__startswith="1")
        with pytest.raises(ValidationError, match="takes a list"):
            Wizard.objects.filter(house__in="Gryffindor")
        with pytest.raises(ValidationError, match=r"Wizard\.age"):
            Wizard.objects.filter(age__gte="seventeen")

    def test_aware_datetimes_near_year_1_and_9999_are_saved_and_found(
        self, storage: Storage
    ) -> None:
        early_at = datetime.datetime(
            1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=45))
        )
        late_at = datetime.datetime(
            9999, 12, 31, 23, 59, tzinfo=datetime.timezone(-datetime.timedelta(hours=5))
        )
        early, late = Event.create(at=early_at), Event.create(at=late_at)
        assert Event.objects.get(at=early_at) == early
        assert [e.id for e in Event.objects.order_by("at")] == [early.id, late.id]
        assert [e.id for e in Event.objects.filter(at__gt=early_at)] == [late.id]
        assert Event.objects.filter(at__lte=late_at).count() == 2

    # -- ordering, paging, helpers -------------------------------------------

    def test_order_by_a_range_field_on_the_server(self, wizards: dict[str, Wizard]) -> None:
        assert names(Wizard.objects.order_by("height")) == [
            "Luna Lovegood",
            "Hermione Granger",
            "Harry Potter",
            "Draco Malfoy",
            "Ron Weasley",
        ]
        assert names(Wizard.objects.order_by("-height")) == [
            "Ron Weasley",
            "Draco Malfoy",
            "Harry Potter",
            "Hermione Granger",
            "Luna Lovegood",
        ]

    def test_ties_come_by_id_in_the_direction_of_the_sort(self, wizards: dict[str, Wizard]) -> None:
        seventeen = sorted(str(w.id) for w in wizards.values() if w.age == 17)
        for spec, expected in (("age", seventeen), ("-age", seventeen[::-1])):
            ids = [str(w.id) for w in Wizard.objects.filter(age=17).order_by(spec)]
            assert ids == expected
            # the same rule when the sort is done in Python (two sort fields,
            # equal in both: the two Gryffindors of 17)
            both = [i for i in expected if wizards_by_id(wizards)[i].house == "Gryffindor"]
            query = Wizard.objects.filter(age=17, house="Gryffindor").order_by(spec, "house")
            assert [str(w.id) for w in query] == both
            # and when the whole model is read from the order index
            ids = [str(w.id) for w in Wizard.objects.order_by(spec) if w.age == 17]
            assert ids == expected

    def test_order_by_text_and_several_fields(self, wizards: dict[str, Wizard]) -> None:
        assert names(Wizard.objects.order_by("-house", "name")) == [
            "Draco Malfoy",
            "Luna Lovegood",
            "Harry Potter",
            "Hermione Granger",
            "Ron Weasley",
        ]

    def test_slices_and_indexes(self, wizards: dict[str, Wizard]) -> None:
        ordered = Wizard.objects.order_by("-gold")
        assert names(ordered[1:3]) == ["Hermione Granger", "Harry Potter"]
        assert ordered[0].name == "Draco Malfoy"
        assert ordered[-1].name == "Luna Lovegood"
        assert names(ordered[3:]) == ["Ron Weasley", "Luna Lovegood"]
        assert ordered[10:20] == []
        with pytest.raises(IndexError):
            ordered[5]

    def test_first_exists_count(self, wizards: dict[str, Wizard]) -> None:
        youngest = Wizard.objects.order_by("age").first()
        assert youngest is not None and youngest.name == "Luna Lovegood"
        assert Wizard.objects.filter(house="Hufflepuff").first() is None
        assert Wizard.objects.filter(house="Ravenclaw").exists()
        assert not Wizard.objects.filter(house="Hufflepuff").exists()
        assert Wizard.objects.filter(house="Gryffindor").count() == 3
        assert len(Wizard.objects.filter(house="Gryffindor")) == 3

    def test_get_on_a_unique_combination(self, wizards: dict[str, Wizard]) -> None:
        assert Wizard.objects.get(house="Gryffindor", age=18).name == "Hermione Granger"
        with pytest.raises(Wizard.MultipleObjectsReturned):
            Wizard.objects.get(house="Gryffindor", age=17)
        with pytest.raises(Wizard.DoesNotExist):
            Wizard.objects.get(house="Hufflepuff")

    def test_delete_on_a_query(self, wizards: dict[str, Wizard]) -> None:
        assert Wizard.objects.filter(house="Gryffindor").delete() == 3
        assert Wizard.objects.count() == 2
        assert Wizard.objects.filter(house="Gryffindor").count() == 0
        assert Wizard.objects.check().ok

    def test_get_many_keeps_order_and_marks_missing(self, wizards: dict[str, Wizard]) -> None:
        harry, luna = wizards["Harry Potter"], wizards["Luna Lovegood"]
        missing = "00000000-0000-1000-8000-000000000000"
        found = Wizard.objects.get_many([luna.id, missing, str(harry.id)])
        assert [w.name if w else None for w in found] == ["Luna Lovegood", None, "Harry Potter"]

    def test_bulk_create_saves_and_indexes_everything(self, storage: Storage) -> None:
        created = Wizard.objects.bulk_create(
            [Wizard(name=f"w{i}", house="Hufflepuff", age=i) for i in range(30)]
        )
        assert all(w.id is not None for w in created)
        assert Wizard.objects.filter(house="Hufflepuff", age__gte=20).count() == 10
        assert Wizard.objects.check().ok

    def test_bulk_create_validates_everything_before_writing(self, storage: Storage) -> None:
        with pytest.raises(Exception):  # noqa: B017 - the unsaved pointer's error
            Build.objects.bulk_create([Build(), Build(project=Project(name="unsaved"))])
        assert Build.objects.count() == 0

    # -- indexes stay exactly right ------------------------------------------

    def test_updating_a_field_moves_its_index_entry(self, wizards: dict[str, Wizard]) -> None:
        harry = wizards["Harry Potter"]
        harry.house = "Slytherin"
        harry.age = 40
        harry.save()
        assert "Harry Potter" not in names(Wizard.objects.filter(house="Gryffindor"))
        assert "Harry Potter" in names(Wizard.objects.filter(house="Slytherin"))
        assert names(Wizard.objects.filter(age__gte=40)) == ["Harry Potter"]
        assert Wizard.objects.check().ok

    def test_an_instance_loaded_twice_updates_cleanly(self, wizards: dict[str, Wizard]) -> None:
        first = Wizard.objects.get(name="Ron Weasley")
        second = Wizard.objects.get(name="Ron Weasley")
        first.house = "Hufflepuff"
        first.save()
        second.age = 99
        second.save()  # rewrites house too, from its own (older) copy
        assert Wizard.objects.filter(house="Hufflepuff").count() == 0
        assert Wizard.objects.get(age=99).house == "Gryffindor"
        assert Wizard.objects.check().ok

    # -- unique --------------------------------------------------------------

    def test_unique_values_are_refused_and_nothing_is_written(self, storage: Storage) -> None:
        Wizard.create(name="Harry", wand="holly")
        ron = Wizard(name="Ron", wand="holly")
        with pytest.raises(UniqueViolation) as info:
            ron.save()
        message = str(info.value)
        assert "Wizard.wand" in message and "'holly'" in message
        assert isinstance(info.value, ValueError)
        assert ron.id is None and Wizard.objects.count() == 1
        assert Wizard.objects.filter(name="Ron").count() == 0

    def test_a_unique_value_is_freed_by_an_update_or_a_delete(self, storage: Storage) -> None:
        harry = Wizard.create(name="Harry", wand="holly")
        harry.wand = "phoenix"
        harry.save()
        ron = Wizard.create(name="Ron", wand="holly")
        ron.delete()
        Wizard.create(name="Ginny", wand="holly")
        assert Wizard.objects.get(wand="holly").name == "Ginny"

    def test_several_records_may_lack_a_unique_value(self, storage: Storage) -> None:
        Wizard.create(name="a")
        Wizard.create(name="b")
        assert Wizard.objects.filter(wand=None).count() == 2

    def test_saving_the_same_record_again_keeps_its_unique_value(self, storage: Storage) -> None:
        harry = Wizard.create(name="Harry", wand="holly")
        harry.save()
        Wizard.objects.get(wand="holly").save()
        assert Wizard.objects.get(wand="holly").name == "Harry"

    # -- index maintenance --------------------------------------------------------------

    def test_deleting_removes_the_records_index_entries(
        self, storage: Storage, wizards: dict[str, Wizard]
    ) -> None:
        luna = wizards["Luna Lovegood"]
        luna.delete()
        assert storage.read_index_entries(Wizard._meta.collection, [str(luna.id)]) == [None]
        assert Wizard.objects.filter(house="Ravenclaw").count() == 0
        assert Wizard.objects.filter(name__startswith="Luna").count() == 0
        assert Wizard.objects.filter(age__lte=16).count() == 0
        assert Wizard.objects.check().ok

    def test_reindex_indexes_records_stored_without_index_data(self, storage: Storage) -> None:
        Wizard.create(id="970773fa-4de1-11e5-86f4-6c4008a70392", name="Harry", house="Gryffindor")
        Wizard.create(id="40997aa4-71fc-4ad3-b0d7-04c0fac6d6d8", name="Ron", house="Gryffindor")
        unindex(Wizard)
        report = Wizard.objects.check()
        assert not report.ok and len(report.missing) == 2
        assert Wizard.objects.filter(house="Gryffindor").count() == 0
        assert Wizard.objects.reindex() == 2
        assert Wizard.objects.filter(house="Gryffindor").count() == 2
        assert Wizard.objects.check().ok

    def test_check_finds_stale_index_data(self, wizards: dict[str, Wizard]) -> None:
        harry = wizards["Harry Potter"]
        rewrite_stored_fields(
            harry,
            house=json.dumps(
                {"type": "Unicode", "value": "Hufflepuff", "module": "repocket.attributes"}
            ),
        )
        report = Wizard.objects.check()
        assert report.stale == [str(harry.id)]
        assert report.missing == [] and report.orphans == []
        assert names(Wizard.objects.filter(house="Hufflepuff")) == []
        Wizard.objects.reindex()
        assert Wizard.objects.check().ok
        assert names(Wizard.objects.filter(house="Hufflepuff")) == ["Harry Potter"]

    def test_reindex_keeps_unique_values_claimed(self, wizards: dict[str, Wizard]) -> None:
        wizards["Harry Potter"].wand = "holly"
        wizards["Harry Potter"].save()
        assert Wizard.objects.reindex() == 5
        with pytest.raises(UniqueViolation):
            Wizard.create(name="Ron", wand="holly")
        assert Wizard.objects.get(wand="holly").name == "Harry Potter"


def wizards_by_id(wizards: dict[str, Wizard]) -> dict[str, Wizard]:
    """The wizards fixture keyed by id text."""
    return {str(w.id): w for w in wizards.values()}
