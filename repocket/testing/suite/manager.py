"""Conformance: ``Model.objects`` (get, filter, all, ordering) and ResultSet."""

from __future__ import annotations

import uuid

import pytest

from ...errors import (
    DoesNotExist,
    MultipleObjectsReturned,
    UnknownFieldError,
    ValidationError,
)
from ...resultset import ResultSet
from ...storage import Storage
from ..models import Build, Project, User
from .base import BackendSuite

__all__ = ["ManagerConformance"]

HARRY_ID = "970773fa-4de1-11e5-86f4-6c4008a70392"
RON_ID = "40997aa4-71fc-4ad3-b0d7-04c0fac6d6d8"


class ManagerConformance(BackendSuite):
    """``Model.objects.get/filter/all/count`` and the ResultSet they return."""

    @pytest.fixture
    def gryffindors(self, storage: Storage) -> tuple[User, User, User]:
        harry = User.create(id=HARRY_ID, name="Harry Potter", house_name="Gryffindor")
        ron = User.create(id=RON_ID, name="Ron Weasley", house_name="Gryffindor")
        draco = User.create(name="Draco Malfoy", house_name="Slytherin")
        return harry, ron, draco

    # -- get -----------------------------------------------------------------

    def test_get_accepts_the_id_as_text_or_uuid(self, gryffindors: tuple[User, User, User]) -> None:
        harry = gryffindors[0]
        assert User.objects.get(id=HARRY_ID) == harry
        assert User.objects.get(id=uuid.UUID(HARRY_ID)) == harry

    def test_get_a_missing_record_raises_the_models_does_not_exist(self, storage: Storage) -> None:
        with pytest.raises(User.DoesNotExist) as info:
            User.objects.get(id=HARRY_ID)
        assert isinstance(info.value, DoesNotExist) and isinstance(info.value, LookupError)
        assert HARRY_ID in str(info.value) and "User" in str(info.value)

    def test_get_with_an_unknown_field_is_an_error(self, storage: Storage) -> None:
        with pytest.raises(UnknownFieldError, match="nickname"):
            User.objects.get(nickname="Harry")

    def test_get_with_a_malformed_id_is_a_validation_error(self, storage: Storage) -> None:
        with pytest.raises(ValidationError, match=r"User\.id.*'not-a-uuid'"):
            User.objects.get(id="not-a-uuid")

    def test_get_without_lookup_is_an_error(self, storage: Storage) -> None:
        with pytest.raises(ValidationError, match="needs a lookup"):
            User.objects.get()

    def test_get_by_other_fields_returns_the_single_match(
        self, gryffindors: tuple[User, User, User]
    ) -> None:
        assert User.objects.get(name="Draco Malfoy") == gryffindors[2]

    def test_get_by_other_fields_matching_several_raises(
        self, gryffindors: tuple[User, User, User]
    ) -> None:
        with pytest.raises(User.MultipleObjectsReturned) as info:
            User.objects.get(house_name="Gryffindor")
        assert isinstance(info.value, MultipleObjectsReturned)

    def test_get_by_id_and_another_field_needs_both_to_match(
        self, gryffindors: tuple[User, User, User]
    ) -> None:
        assert User.objects.get(id=HARRY_ID, name="Harry Potter").name == "Harry Potter"
        with pytest.raises(User.DoesNotExist):
            User.objects.get(id=HARRY_ID, name="Ron Weasley")

    # -- filter / all --------------------------------------------------------

    def test_filter_returns_the_matching_records(
        self, gryffindors: tuple[User, User, User]
    ) -> None:
        results = User.objects.filter(house_name="Gryffindor")
        assert isinstance(results, ResultSet)
        assert len(results) == 2
        assert sorted(user.name for user in results) == ["Harry Potter", "Ron Weasley"]

    def test_filter_needs_every_condition(self, gryffindors: tuple[User, User, User]) -> None:
        assert len(User.objects.filter(house_name="Gryffindor", name="Ron Weasley")) == 1
        assert len(User.objects.filter(house_name="Slytherin", name="Ron Weasley")) == 0

    def test_filter_chains_conditions(self, gryffindors: tuple[User, User, User]) -> None:
        results = User.objects.filter(house_name="Gryffindor").filter(name="Harry Potter")
        assert [user.name for user in results] == ["Harry Potter"]

    def test_filter_with_an_unknown_field_is_an_error(self, storage: Storage) -> None:
        with pytest.raises(UnknownFieldError):
            User.objects.filter(nickname="x")

    def test_filter_with_an_uncastable_value_is_an_error(self, storage: Storage) -> None:
        with pytest.raises(ValidationError, match=r"User\.id"):
            User.objects.filter(id="nope")

    def test_filter_on_a_pointer_accepts_an_instance_or_an_id(self, storage: Storage) -> None:
        project, other = Project.create(name="a"), Project.create(name="b")
        build = Build.create(project=project)
        Build.create(project=other)
        assert list(Build.objects.filter(project=project)) == [build]
        assert list(Build.objects.filter(project=project.id)) == [build]
        assert list(Build.objects.filter(project=str(project.id))) == [build]

    def test_filter_on_none_matches_empty_pointers(self, storage: Storage) -> None:
        Build.create(project=Project.create(name="a"))
        orphan = Build.create()
        assert list(Build.objects.filter(project=None)) == [orphan]

    def test_all_returns_every_record(self, gryffindors: tuple[User, User, User]) -> None:
        assert len(User.objects.all()) == 3
        assert all(isinstance(user, User) for user in User.objects.all())

    def test_all_on_an_empty_model_is_empty(self, storage: Storage) -> None:
        assert list(Project.objects.all()) == []
        assert not Project.objects.all()

    def test_deleted_records_disappear_from_queries(
        self, gryffindors: tuple[User, User, User]
    ) -> None:
        gryffindors[0].delete()
        assert [user.name for user in User.objects.filter(house_name="Gryffindor")] == [
            "Ron Weasley"
        ]
        assert User.objects.count() == 2

    def test_results_span_several_batches(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(ResultSet, "batch_size", 3)
        created = {Project.create(name=f"p{i}").id for i in range(10)}
        assert {project.id for project in Project.objects.all()} == created
        assert len(Project.objects.filter(name="p7")) == 1

    # -- ordering and the sequence protocol ----------------------------------

    def test_order_by_descending_name(self, gryffindors: tuple[User, User, User]) -> None:
        results = User.objects.filter(house_name="Gryffindor").order_by("-name")
        assert len(results) == 2
        assert results[0].name == "Ron Weasley"
        assert results[1].name == "Harry Potter"

    def test_order_by_ascending_name(self, gryffindors: tuple[User, User, User]) -> None:
        results = User.objects.filter(house_name="Gryffindor").order_by("name")
        assert [user.name for user in results] == ["Harry Potter", "Ron Weasley"]

    def test_order_by_several_keys(self, gryffindors: tuple[User, User, User]) -> None:
        User.create(name="Neville Longbottom", house_name="Gryffindor")
        results = User.objects.all().order_by("-house_name", "name")
        assert [(u.house_name, u.name) for u in results] == [
            ("Slytherin", "Draco Malfoy"),
            ("Gryffindor", "Harry Potter"),
            ("Gryffindor", "Neville Longbottom"),
            ("Gryffindor", "Ron Weasley"),
        ]

    def test_order_by_puts_none_first(self, storage: Storage) -> None:
        first = Build.create()
        project = Project.create(name="x")
        second = Build.create(project=project)
        assert [b.id for b in Build.objects.all().order_by("project")] == [first.id, second.id]

    def test_order_by_an_unknown_field_is_an_error(self, storage: Storage) -> None:
        with pytest.raises(UnknownFieldError):
            User.objects.all().order_by("-nickname")

    def test_result_set_supports_slices_iteration_and_helpers(
        self, gryffindors: tuple[User, User, User]
    ) -> None:
        results = User.objects.all().order_by("name")
        assert [u.name for u in results[:2]] == ["Draco Malfoy", "Harry Potter"]
        first = results.first()
        assert first is not None and first.name == "Draco Malfoy"
        assert results.count() == 3 and results.exists()
        assert User.objects.filter(name="nobody").first() is None

    def test_result_set_is_lazy_and_len_keeps_what_it_loaded(
        self, gryffindors: tuple[User, User, User]
    ) -> None:
        results = User.objects.filter(house_name="Gryffindor")
        User.create(name="Neville Longbottom", house_name="Gryffindor")
        assert len(results) == 3  # ran now, not when filter() was called
        User.create(name="Ginny Weasley", house_name="Gryffindor")
        assert len(results) == 3  # len() loaded the matches and kept them
        assert [u.name for u in results] == [u.name for u in list(results)]
        assert results.count() == 3
        assert User.objects.filter(house_name="Gryffindor").count() == 4  # a new query

    def test_iterating_without_len_streams_and_keeps_nothing(
        self, gryffindors: tuple[User, User, User]
    ) -> None:
        results = User.objects.filter(house_name="Gryffindor")
        assert len([u for u in results]) == 2
        User.create(name="Ginny Weasley", house_name="Gryffindor")
        assert len([u for u in results]) == 3

    def test_manager_count_does_not_load_records(
        self, gryffindors: tuple[User, User, User]
    ) -> None:
        assert User.objects.count() == 3

    def test_manager_is_not_reachable_from_instances(self, storage: Storage) -> None:
        with pytest.raises(AttributeError):
            User().objects  # noqa: B018
