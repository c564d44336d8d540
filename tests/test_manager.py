"""``Model.objects`` and ResultSet, on every backend."""

from __future__ import annotations

import uuid

import pytest

from repocket.errors import (
    DoesNotExist,
    MultipleObjectsReturned,
    UnknownFieldError,
    ValidationError,
)
from repocket.manager import ResultSet

from .models import Build, Project, User
from .roundtrips import count_round_trips

HARRY_ID = "970773fa-4de1-11e5-86f4-6c4008a70392"
RON_ID = "40997aa4-71fc-4ad3-b0d7-04c0fac6d6d8"


@pytest.fixture
def gryffindors(storage):
    harry = User.create(id=HARRY_ID, name="Harry Potter", house_name="Gryffindor")
    ron = User.create(id=RON_ID, name="Ron Weasley", house_name="Gryffindor")
    draco = User.create(name="Draco Malfoy", house_name="Slytherin")
    return harry, ron, draco


# -- get -----------------------------------------------------------------------------------

def test_get_accepts_the_id_as_text_or_uuid(gryffindors) -> None:
    harry = gryffindors[0]
    assert User.objects.get(id=HARRY_ID) == harry
    assert User.objects.get(id=uuid.UUID(HARRY_ID)) == harry


def test_get_a_missing_record_raises_the_models_does_not_exist(storage) -> None:
    with pytest.raises(User.DoesNotExist) as info:
        User.objects.get(id=HARRY_ID)
    assert isinstance(info.value, DoesNotExist) and isinstance(info.value, LookupError)
    assert HARRY_ID in str(info.value) and "User" in str(info.value)


def test_get_with_an_unknown_field_is_an_error(storage) -> None:
    with pytest.raises(UnknownFieldError, match="nickname"):
        User.objects.get(nickname="Harry")


def test_get_with_a_malformed_id_is_a_validation_error(storage) -> None:
    with pytest.raises(ValidationError, match=r"User\.id.*'not-a-uuid'"):
        User.objects.get(id="not-a-uuid")


def test_get_without_lookup_is_an_error(storage) -> None:
    with pytest.raises(ValidationError, match="needs a lookup"):
        User.objects.get()


def test_get_by_other_fields_returns_the_single_match(gryffindors) -> None:
    assert User.objects.get(name="Draco Malfoy") == gryffindors[2]


def test_get_by_other_fields_matching_several_raises(gryffindors) -> None:
    with pytest.raises(User.MultipleObjectsReturned) as info:
        User.objects.get(house_name="Gryffindor")
    assert isinstance(info.value, MultipleObjectsReturned)


def test_get_by_id_and_another_field_needs_both_to_match(gryffindors) -> None:
    assert User.objects.get(id=HARRY_ID, name="Harry Potter").name == "Harry Potter"
    with pytest.raises(User.DoesNotExist):
        User.objects.get(id=HARRY_ID, name="Ron Weasley")


# -- filter / all ------------------------------------------------------------------------------

def test_filter_returns_the_matching_records(gryffindors) -> None:
    results = User.objects.filter(house_name="Gryffindor")
    assert isinstance(results, ResultSet)
    assert len(results) == 2
    assert sorted(user.name for user in results) == ["Harry Potter", "Ron Weasley"]


def test_filter_needs_every_condition(gryffindors) -> None:
    assert len(User.objects.filter(house_name="Gryffindor", name="Ron Weasley")) == 1
    assert len(User.objects.filter(house_name="Slytherin", name="Ron Weasley")) == 0


def test_filter_chains_conditions(gryffindors) -> None:
    results = User.objects.filter(house_name="Gryffindor").filter(name="Harry Potter")
    assert [user.name for user in results] == ["Harry Potter"]


def test_filter_with_an_unknown_field_is_an_error(storage) -> None:
    with pytest.raises(UnknownFieldError):
        User.objects.filter(nickname="x")


def test_filter_with_an_uncastable_value_is_an_error(storage) -> None:
    with pytest.raises(ValidationError, match=r"User\.id"):
        User.objects.filter(id="nope")


def test_filter_on_a_pointer_accepts_an_instance_or_an_id(storage) -> None:
    project, other = Project.create(name="a"), Project.create(name="b")
    build = Build.create(project=project)
    Build.create(project=other)
    assert list(Build.objects.filter(project=project)) == [build]
    assert list(Build.objects.filter(project=project.id)) == [build]
    assert list(Build.objects.filter(project=str(project.id))) == [build]


def test_filter_on_none_matches_empty_pointers(storage) -> None:
    Build.create(project=Project.create(name="a"))
    orphan = Build.create()
    assert list(Build.objects.filter(project=None)) == [orphan]


def test_all_returns_every_record(gryffindors) -> None:
    assert len(User.objects.all()) == 3
    assert all(isinstance(user, User) for user in User.objects.all())


def test_all_on_an_empty_model_is_empty(storage) -> None:
    assert list(Project.objects.all()) == []
    assert not Project.objects.all()


def test_deleted_records_disappear_from_queries(gryffindors) -> None:
    gryffindors[0].delete()
    assert [user.name for user in User.objects.filter(house_name="Gryffindor")] == ["Ron Weasley"]
    assert User.objects.count() == 2


def test_results_span_several_batches(storage, monkeypatch) -> None:
    monkeypatch.setattr(ResultSet, "batch_size", 3)
    created = {Project.create(name=f"p{i}").id for i in range(10)}
    assert {project.id for project in Project.objects.all()} == created
    assert len(Project.objects.filter(name="p7")) == 1


# -- ordering and the sequence protocol ------------------------------------------------------------

def test_order_by_descending_name(gryffindors) -> None:
    results = User.objects.filter(house_name="Gryffindor").order_by("-name")
    assert len(results) == 2
    assert results[0].name == "Ron Weasley"
    assert results[1].name == "Harry Potter"


def test_order_by_ascending_name(gryffindors) -> None:
    results = User.objects.filter(house_name="Gryffindor").order_by("name")
    assert [user.name for user in results] == ["Harry Potter", "Ron Weasley"]


def test_order_by_several_keys(gryffindors) -> None:
    User.create(name="Neville Longbottom", house_name="Gryffindor")
    results = User.objects.all().order_by("-house_name", "name")
    assert [(u.house_name, u.name) for u in results] == [
        ("Slytherin", "Draco Malfoy"),
        ("Gryffindor", "Harry Potter"),
        ("Gryffindor", "Neville Longbottom"),
        ("Gryffindor", "Ron Weasley"),
    ]


def test_order_by_puts_none_first(storage) -> None:
    first = Build.create()
    project = Project.create(name="x")
    second = Build.create(project=project)
    assert [b.id for b in Build.objects.all().order_by("project")] == [first.id, second.id]


def test_order_by_an_unknown_field_is_an_error(storage) -> None:
    with pytest.raises(UnknownFieldError):
        User.objects.all().order_by("-nickname")


def test_result_set_supports_slices_iteration_and_helpers(gryffindors) -> None:
    results = User.objects.all().order_by("name")
    assert [u.name for u in results[:2]] == ["Draco Malfoy", "Harry Potter"]
    assert results.first().name == "Draco Malfoy"
    assert results.count() == 3 and results.exists()
    assert User.objects.filter(name="nobody").first() is None


def test_result_set_is_lazy_and_reads_storage_on_each_use(gryffindors) -> None:
    results = User.objects.filter(house_name="Gryffindor")
    User.create(name="Neville Longbottom", house_name="Gryffindor")
    assert len(results) == 3  # ran now, not when filter() was called
    User.create(name="Ginny Weasley", house_name="Gryffindor")
    assert len(results) == 4  # a query, not a copy of earlier results


def test_manager_count_does_not_load_records(gryffindors) -> None:
    assert User.objects.count() == 3


def test_manager_is_not_reachable_from_instances(storage) -> None:
    with pytest.raises(AttributeError):
        User().objects  # noqa: B018


# -- round trips ------------------------------------------------------------------------------

def test_save_is_one_round_trip(storage) -> None:
    build = Build(project=Project.create(name="p"), stdout=b"x", stderr=b"y")
    with count_round_trips(storage) as trips:
        build.save()
    assert trips.count == 1


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


def test_delete_is_two_round_trips(storage) -> None:
    # one to read the record's index entries under WATCH, one MULTI/EXEC
    build = Build.create(stdout=b"x")
    with count_round_trips(storage) as trips:
        build.delete()
    assert trips.count == 2


def test_append_is_one_round_trip(storage) -> None:
    build = Build.create(stdout=b"x")
    with count_round_trips(storage) as trips:
        build.append_stdout(b"y")
    assert trips.count == 1
