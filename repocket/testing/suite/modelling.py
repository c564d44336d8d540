"""Conformance: modelling features -- Boolean fields, ``Q`` conditions,
``values()`` / ``values_list()`` / ``last()``, ``get_or_create()`` and
``update_or_create()``."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from ... import ActiveRecord, attributes
from ...connections import configure
from ...errors import (
    MultipleObjectsReturned,
    ProtectedError,
    RepocketActiveRecordDefinitionError,
    UniqueViolation,
    UnknownFieldError,
    UnsupportedError,
    ValidationError,
)
from ...query import F, Q
from ...storage import Storage
from ..feature_models import Label, Loan, Member, Session, Shelf, Volume
from .base import BackendSuite, require

__all__ = ["ModellingConformance"]


def storage_keys(record: Any) -> list[str]:
    """The record's hash and stream keys that the storage still holds."""
    storage = configure.storage()
    meta = type(record)._meta
    stored = storage.load_record(meta.collection, str(record.pk), meta.stream_fields)
    if stored is None:
        return []
    return [storage.record_key(meta.collection, str(record.pk))]


class ModellingConformance(BackendSuite):
    """Features users expect from a Django-style mapper, on every backend."""

    @pytest.fixture
    def members(self, storage: Storage) -> list[Member]:
        rows = [
            ("Harry", "Gryffindor", 17, True, None),
            ("Ron", "Gryffindor", 17, False, False),
            ("Hermione", "Gryffindor", 18, True, True),
            ("Draco", "Slytherin", 17, False, None),
            ("Luna", "Ravenclaw", 16, True, False),
            ("Cedric", "Hufflepuff", None, False, None),
        ]
        return [
            Member.create(
                name=name,
                email=f"{name.lower()}@hogwarts.example",
                house=house,
                age=age,
                active=active,
                admin=admin,
            )
            for name, house, age, active, admin in rows
        ]

    @staticmethod
    def names(records: object) -> list[str]:
        return sorted(r.name for r in records)  # type: ignore[attr-defined]

    # -- Boolean ---------------------------------------------------------------

    def test_a_boolean_reads_back_as_a_bool(self, members: list[Member]) -> None:
        loaded = Member.objects.get(id=members[0].id)
        assert loaded.active is True
        assert loaded.admin is None
        assert Member.objects.get(id=members[1].id).active is False

    def test_a_boolean_is_stored_as_its_own_envelope(self, members: list[Member]) -> None:
        stored = configure.storage().load_record(Member._meta.collection, str(members[0].id))
        assert stored is not None
        text = stored.fields["active"]
        text = text.decode() if isinstance(text, bytes) else text
        assert text == '{"type": "Boolean", "value": true, "module": "repocket.attributes"}'

    def test_a_boolean_never_given_holds_false(self, storage: Storage) -> None:
        member = Member.create(name="Neville", email="neville@hogwarts.example")
        assert member.active is False
        assert Member.objects.get(id=member.id).active is False

    def test_filter_on_a_boolean(self, members: list[Member]) -> None:
        assert self.names(Member.objects.filter(active=True)) == ["Harry", "Hermione", "Luna"]
        assert self.names(Member.objects.filter(active=False)) == ["Cedric", "Draco", "Ron"]
        assert Member.objects.filter(active=1).count() == 3
        assert self.names(Member.objects.filter(admin=None)) == ["Cedric", "Draco", "Harry"]
        assert self.names(Member.objects.exclude(active=True)) == ["Cedric", "Draco", "Ron"]

    def test_a_boolean_refuses_other_values(self, storage: Storage) -> None:
        member = Member(name="Peeves", email="peeves@hogwarts.example")
        for bad in ("yes", 2, 0.5, None):
            with pytest.raises(ValidationError) as caught:
                member.active = bad  # type: ignore[assignment]  # what a checker refuses
            assert caught.value.field == "active"
            assert caught.value.model == "Member"

    # -- Q ---------------------------------------------------------------------

    def test_q_or(self, members: list[Member]) -> None:
        found = Member.objects.filter(Q(house="Slytherin") | Q(age__gte=18))
        assert self.names(found) == ["Draco", "Hermione"]
        assert found.count() == 2

    def test_q_and_not(self, members: list[Member]) -> None:
        found = Member.objects.filter(Q(house="Gryffindor") & ~Q(active=True))
        assert self.names(found) == ["Ron"]

    def test_q_with_keywords_and_exclude(self, members: list[Member]) -> None:
        found = Member.objects.filter(Q(active=True) | Q(admin=False), house="Gryffindor")
        assert self.names(found) == ["Harry", "Hermione", "Ron"]
        rest = Member.objects.exclude(Q(house="Gryffindor") | Q(age=None))
        assert self.names(rest) == ["Draco", "Luna"]

    def test_q_ordered_and_sliced(self, members: list[Member]) -> None:
        found = Member.objects.filter(Q(house="Gryffindor") | Q(house="Ravenclaw"))
        assert [r.name for r in found.order_by("-age", "name")[:3]] == ["Hermione", "Harry", "Ron"]
        assert found.order_by("age").first().name == "Luna"  # type: ignore[union-attr]

    def test_q_with_an_unknown_field_is_an_error(self, storage: Storage) -> None:
        with pytest.raises(UnknownFieldError):
            Member.objects.filter(Q(nope=1) | Q(name="x"))

    def test_filter_refuses_a_positional_argument_that_is_not_a_q(self, storage: Storage) -> None:
        with pytest.raises(TypeError, match="Q objects and keyword lookups"):
            Member.objects.filter({"house": "Gryffindor"})  # type: ignore[arg-type]

    def test_a_result_sets_repr_shows_its_q_conditions(self, storage: Storage) -> None:
        text = repr(Member.objects.filter(Q(active=True) | ~Q(age__gt=3), house="G"))
        assert text == "<ResultSet of Member where house='G', (active=True | ~age__gt=3)>"

    # -- values, values_list, last -----------------------------------------------

    def test_values(self, members: list[Member]) -> None:
        rows = Member.objects.filter(house="Gryffindor").order_by("name").values("name", "age")
        assert rows == [
            {"name": "Harry", "age": 17},
            {"name": "Hermione", "age": 18},
            {"name": "Ron", "age": 17},
        ]
        everything = Member.objects.filter(name="Luna").values()
        assert set(everything[0]) == set(Member._meta.fields)

    def test_values_list(self, members: list[Member]) -> None:
        query = Member.objects.filter(house="Gryffindor").order_by("name")
        assert query.values_list("name", "active") == [
            ("Harry", True),
            ("Hermione", True),
            ("Ron", False),
        ]
        assert query.values_list("name", flat=True) == ["Harry", "Hermione", "Ron"]
        with pytest.raises(ValidationError):
            query.values_list("name", "age", flat=True)
        with pytest.raises(UnknownFieldError):
            query.values_list("nope")

    def test_values_give_a_pointers_target_id(self, members: list[Member]) -> None:
        harry, ron = members[0], members[1]
        ron.mentor = harry
        ron.save()
        assert Member.objects.filter(name="Ron").values_list("mentor", flat=True) == [harry.id]
        assert Member.objects.filter(name="Harry").values("mentor") == [{"mentor": None}]
        # the stored id, as lookups see it, even once the target is deleted
        harry.delete()
        assert Member.objects.filter(name="Ron").values("mentor") == [{"mentor": harry.id}]
        assert Member.objects.filter(mentor=harry.id).values_list("name", flat=True) == ["Ron"]

    def test_last(self, members: list[Member]) -> None:
        assert Member.objects.order_by("name").last().name == "Ron"  # type: ignore[union-attr]
        assert Member.objects.order_by("-age", "name").last().name == "Cedric"  # type: ignore[union-attr]
        unordered = Member.objects.filter(house="Gryffindor").last()
        assert unordered is not None
        assert str(unordered.id) == max(str(m.id) for m in members[:3])
        assert Member.objects.filter(house="Durmstrang").last() is None

    # -- get_or_create, update_or_create -------------------------------------------

    def test_get_or_create_finds_an_existing_record(self, members: list[Member]) -> None:
        found, created = Member.objects.get_or_create(
            email="harry@hogwarts.example", defaults={"name": "Someone else"}
        )
        assert created is False
        assert found == members[0]

    def test_get_or_create_creates_with_the_defaults(self, members: list[Member]) -> None:
        made, created = Member.objects.get_or_create(
            email="ginny@hogwarts.example", defaults={"name": "Ginny", "age": 16}
        )
        assert created is True
        assert Member.objects.get(email="ginny@hogwarts.example") == made
        assert (made.name, made.age) == ("Ginny", 16)

    def test_get_or_create_refused_by_a_record_the_lookups_miss_raises_unique_violation(
        self, members: list[Member]
    ) -> None:
        with pytest.raises(UniqueViolation) as caught:
            Member.objects.get_or_create(name="Impostor", email="harry@hogwarts.example")
        assert caught.value.field == "email"
        assert Member.objects.filter(name="Impostor").count() == 0

    def test_get_or_create_takes_a_pointer_as_an_id(self, members: list[Member]) -> None:
        harry = members[0]
        made, created = Member.objects.get_or_create(
            mentor=harry.id, defaults={"name": "Teddy", "email": "teddy@hogwarts.example"}
        )
        assert created is True
        assert Member.objects.get(id=made.id).mentor == harry
        again, created = Member.objects.get_or_create(mentor=str(harry.id))
        assert (again, created) == (made, False)

    def test_get_or_create_with_several_matches_raises(self, members: list[Member]) -> None:
        with pytest.raises(MultipleObjectsReturned):
            Member.objects.get_or_create(house="Gryffindor")

    def test_get_or_create_on_a_unique_field_creates_one_record_under_a_race(
        self, storage: Storage
    ) -> None:
        workers = 6
        barrier = threading.Barrier(workers)
        results: list[tuple[Member, bool]] = []
        failures: list[BaseException] = []

        def work() -> None:
            try:
                barrier.wait(timeout=10)
                results.append(
                    Member.objects.get_or_create(
                        email="race@hogwarts.example", defaults={"name": "Racer"}
                    )
                )
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not failures
        assert len(results) == workers
        assert sum(created for _, created in results) == 1
        assert len({str(record.id) for record, _ in results}) == 1
        assert Member.objects.filter(email="race@hogwarts.example").count() == 1

    def test_update_or_create(self, members: list[Member]) -> None:
        updated, created = Member.objects.update_or_create(
            email="ron@hogwarts.example", defaults={"age": 18, "active": True}
        )
        assert created is False
        assert updated.id == members[1].id
        loaded = Member.objects.get(id=members[1].id)
        assert (loaded.age, loaded.active, loaded.name) == (18, True, "Ron")
        made, created = Member.objects.update_or_create(
            email="fred@hogwarts.example", defaults={"name": "Fred"}
        )
        assert created is True
        assert Member.objects.get(email="fred@hogwarts.example") == made
        assert made.name == "Fred"

    # -- update() and F() ---------------------------------------------------------

    def test_update_sets_the_fields_and_returns_the_count(self, members: list[Member]) -> None:
        assert Member.objects.filter(house="Gryffindor").update(active=False, admin=True) == 3
        assert self.names(Member.objects.filter(active=True)) == ["Luna"]
        assert self.names(Member.objects.filter(admin=True)) == ["Harry", "Hermione", "Ron"]
        assert Member.objects.filter(house="Durmstrang").update(active=True) == 0
        assert Member.objects.check().ok

    def test_update_with_f_adds_to_the_stored_value(self, members: list[Member]) -> None:
        assert Member.objects.filter(house="Gryffindor").update(age=F("age") + 2) == 3
        assert sorted(Member.objects.filter(house="Gryffindor").values_list("age", flat=True)) == [
            19,
            19,
            20,
        ]
        Member.objects.filter(name="Cedric").update(age=F("age") - 1)
        assert Member.objects.get(name="Cedric").age is None  # None stays None
        assert self.names(Member.objects.filter(age__gte=19)) == ["Harry", "Hermione", "Ron"]
        assert Member.objects.check().ok

    def test_update_of_a_unique_field_to_one_value_for_several_writes_nothing(
        self, members: list[Member]
    ) -> None:
        with pytest.raises(UniqueViolation) as caught:
            Member.objects.filter(house="Gryffindor").update(email="same@hogwarts.example")
        assert caught.value.field == "email"
        assert Member.objects.filter(email="same@hogwarts.example").count() == 0
        assert Member.objects.get(name="Harry").email == "harry@hogwarts.example"

    def test_update_to_a_value_another_record_holds_writes_nothing(
        self, members: list[Member]
    ) -> None:
        with pytest.raises(UniqueViolation):
            Member.objects.filter(name="Ron").update(email="harry@hogwarts.example")
        assert Member.objects.get(name="Ron").email == "ron@hogwarts.example"
        assert Member.objects.filter(name="Ron").update(email="ronald@hogwarts.example") == 1
        assert Member.objects.get(email="ronald@hogwarts.example").name == "Ron"
        assert Member.objects.check().ok

    def test_update_refuses_what_it_cannot_set(self, members: list[Member]) -> None:
        for changes in (
            {"id": members[0].id},
            {"name": F("name") + 1},
            {"email": F("email")},
            {"active": "maybe"},
        ):
            with pytest.raises(ValidationError):
                Member.objects.update(**changes)
        with pytest.raises(UnknownFieldError):
            Member.objects.update(nope=1)
        assert Member.objects.get(name="Harry").active is True

    def test_concurrent_f_updates_lose_nothing(self, storage: Storage) -> None:
        counter = Member.create(name="Counter", email="counter@hogwarts.example", age=0)
        workers, rounds = 4, 25
        barrier = threading.Barrier(workers)
        failures: list[BaseException] = []

        def work() -> None:
            try:
                barrier.wait(timeout=10)
                for _ in range(rounds):
                    Member.objects.filter(name="Counter").update(age=F("age") + 1)
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures
        assert Member.objects.get(id=counter.id).age == workers * rounds

    # -- relations: related_name and on_delete -----------------------------------

    @pytest.fixture
    def library(self, storage: Storage) -> dict[str, Any]:
        shelf = Shelf.create(name="Fiction")
        other = Shelf.create(name="Science")
        first = Volume.create(title="Dune", shelf=shelf)
        second = Volume.create(title="Dune Messiah", shelf=shelf, sequel_of=first)
        third = Volume.create(title="Cosmos", shelf=other)
        label = Label.create(text="classic", volume=first)
        kept = Label.create(text="popular", volume=third)
        return {
            "shelf": shelf,
            "other": other,
            "first": first,
            "second": second,
            "third": third,
            "label": label,
            "kept": kept,
        }

    def test_related_name_is_the_query_of_the_holders(self, library: dict[str, Any]) -> None:
        shelf = library["shelf"]
        assert [v.title for v in shelf.volumes.order_by("title")] == ["Dune", "Dune Messiah"]
        assert shelf.volumes.count() == 2
        assert shelf.volumes.filter(title="Dune").first() == library["first"]
        assert [v.title for v in library["first"].sequels] == ["Dune Messiah"]
        assert library["first"].labels.count() == 1

    def test_cascade_deletes_the_holders_and_theirs(self, library: dict[str, Any]) -> None:
        library["shelf"].delete()
        assert Shelf.objects.filter(name="Fiction").count() == 0
        assert [v.title for v in Volume.objects.all()] == ["Cosmos"]
        # the label of a cascaded volume is set to None, the other kept
        assert Label.objects.get(id=library["label"].id).volume is None
        assert Label.objects.get(id=library["kept"].id).volume == library["third"]
        for model in (Shelf, Volume, Label):
            assert model.objects.check().ok

    def test_set_null_clears_the_pointer(self, library: dict[str, Any]) -> None:
        assert library["first"].labels.count() == 1
        Volume.objects.get(id=library["third"].id).delete()
        kept = Label.objects.get(id=library["kept"].id)
        assert kept.volume is None
        assert Label.objects.filter(volume=None).count() == 1
        assert Label.objects.check().ok

    def test_protect_refuses_and_deletes_nothing(self, library: dict[str, Any]) -> None:
        Loan.create(borrower="Ada", shelf=library["shelf"])
        with pytest.raises(ProtectedError) as caught:
            library["shelf"].delete()
        assert caught.value.model == "Loan"
        assert caught.value.count == 1
        assert Shelf.objects.count() == 2
        assert Volume.objects.count() == 3
        assert Label.objects.filter(volume=None).count() == 0

    def test_a_self_referencing_cycle_is_deleted_once(self, storage: Storage) -> None:
        shelf = Shelf.create(name="Loop")
        volume = Volume.create(title="Ouroboros", shelf=shelf)
        volume.sequel_of = volume
        volume.save()
        assert volume.delete() == 1
        assert Volume.objects.count() == 0
        assert Volume.objects.check().ok

    def test_a_query_delete_applies_protect_to_the_matches_together(
        self, library: dict[str, Any]
    ) -> None:
        Loan.create(borrower="Ada", shelf=library["shelf"])
        with pytest.raises(ProtectedError):
            Shelf.objects.filter(name="Fiction").delete()  # the loan is not deleted
        assert Shelf.objects.count() == 2
        assert Volume.objects.count() == 3
        # a volume and its sequel, deleted together: both go, once each
        removed = Volume.objects.filter(shelf=library["shelf"]).delete()
        assert removed == 2
        assert [v.title for v in Volume.objects.all()] == ["Cosmos"]
        assert Label.objects.get(id=library["label"].id).volume is None
        assert Volume.objects.check().ok

    def test_do_nothing_stays_the_default(self, storage: Storage) -> None:
        member = Member.create(name="Mentor", email="mentor@hogwarts.example")
        pupil = Member.create(name="Pupil", email="pupil@hogwarts.example", mentor=member)
        member.delete()
        assert Member.objects.get(id=pupil.id).mentor is None  # a dangling soft key

    # -- stable key namespaces, changing models --------------------------------

    @staticmethod
    def declare(module: str, namespace: str | None, **fields: Any) -> Any:
        """A model class ``Wand`` declared in ``module`` (as if it lived there)."""
        body: dict[str, Any] = {"__module__": module, "__qualname__": "Wand", **fields}
        if namespace is not None:
            body["Meta"] = type("Meta", (), {"namespace": namespace})
        metaclass: Any = type(ActiveRecord)
        return metaclass("Wand", (ActiveRecord,), body)

    def test_a_namespace_pins_the_module_part_of_the_keys(self, storage: Storage) -> None:
        old = self.declare("shop.models", "shop", wood=attributes.Unicode())
        wand = old.create(wood="holly")
        key = storage.record_key(old._meta.collection, str(wand.id))
        assert "shop:Wand" in key  # (a sharded layout adds a tag around it)
        assert "shop.models" not in key
        assert old._meta.collection.module == "shop"
        # the model moves to another module: same namespace, same data
        moved = self.declare("shop.catalog.models", "shop", wood=attributes.Unicode())
        assert moved.objects.get(id=wand.id).wood == "holly"
        assert moved.objects.filter(wood="holly").count() == 1

    def test_without_a_namespace_the_keys_name_the_module(self, storage: Storage) -> None:
        model = self.declare("shop.models", None, wood=attributes.Unicode())
        assert model._meta.collection.module == "shop.models"

    def test_a_model_can_ask_for_its_own_number_of_shards(self, storage: Storage) -> None:
        body: dict[str, Any] = {
            "__module__": "shop.models",
            "__qualname__": "Rune",
            "Meta": type("Meta", (), {"shards": 3}),
            "mark": attributes.Unicode(),
            "power": attributes.Integer(),
        }
        metaclass: Any = type(ActiveRecord)
        rune = metaclass("Rune", (ActiveRecord,), body)
        made = rune.objects.bulk_create([rune(mark=f"m{i % 4}", power=i) for i in range(40)])
        assert rune.objects.count() == 40
        assert rune.objects.filter(mark="m1").count() == 10
        assert [r.power for r in rune.objects.order_by("-power")[:3]] == [39, 38, 37]
        assert rune.objects.get(id=made[5].id).power == 5
        assert rune.objects.check().ok
        if isinstance(getattr(storage, "shards", None), int):  # a sharded key layout
            key = storage.record_key(rune._meta.collection, str(made[0].id))
            assert "{shop.models:Rune:" in key  # tagged: the model's shards
        for bad in (0, -1, True, "4"):
            body["Meta"] = type("Meta", (), {"shards": bad})
            with pytest.raises(RepocketActiveRecordDefinitionError):
                metaclass("Rune", (ActiveRecord,), body)

    def test_a_bad_namespace_is_refused(self, storage: Storage) -> None:
        for bad in ("", "a:b", "x{1}", 5):
            with pytest.raises(RepocketActiveRecordDefinitionError):
                self.declare("shop.models", bad, wood=attributes.Unicode())  # type: ignore[arg-type]

    def test_a_field_the_model_no_longer_declares_is_kept_and_reported(
        self, storage: Storage
    ) -> None:
        before = self.declare(
            "shop.models", "shop", wood=attributes.Unicode(), core=attributes.Unicode()
        )
        wand = before.create(wood="holly", core="phoenix feather")
        after = self.declare("shop.models", "shop", wood=attributes.Unicode())
        loaded = after.objects.get(id=wand.id)
        loaded.wood = "yew"
        loaded.save()
        stored = storage.load_record(after._meta.collection, str(wand.id))
        assert stored is not None
        assert set(stored.fields) == {"id", "wood", "core"}
        report = after.objects.check()
        assert report.ok
        assert report.undeclared_fields == {"core": 1}
        # a conditional save still sees the record as unchanged
        loaded.wood = "elder"
        loaded.save(if_unchanged=True)
        # declaring the field again brings the value back
        again = self.declare(
            "shop.models", "shop", wood=attributes.Unicode(), core=attributes.Unicode()
        )
        assert again.objects.get(id=wand.id).core == "phoenix feather"

    # -- expiring records (backends with supports_ttl) -------------------------------

    def test_an_expired_record_disappears_at_once_with_its_index_entries(
        self, members: list[Member]
    ) -> None:
        require(configure.storage(), "supports_ttl")
        harry = members[0]
        harry.append_notes(b"scar")
        harry.expire(0.15)
        assert Member.objects.filter(house="Gryffindor").count() == 3
        time.sleep(0.2)
        assert Member.objects.filter(house="Gryffindor").count() == 2
        assert Member.objects.count() == 5
        assert harry.id not in [m.id for m in Member.objects.all()]
        assert harry.id not in Member.objects.order_by("name").values_list("id", flat=True)
        assert [m.name for m in Member.objects.filter(house="Gryffindor").order_by("name")[:1]] == [
            "Hermione"
        ]
        with pytest.raises(Member.DoesNotExist):
            Member.objects.get(id=harry.id)
        assert Member.objects.get_many([harry.id]) == [None]
        report = Member.objects.check()
        assert report.ok, report
        # its unique value is free again
        Member.create(name="Harry II", email="harry@hogwarts.example")
        stored = storage_keys(harry)
        assert stored == []  # the hash and the stream are gone

    def test_save_with_a_ttl_and_ttl_and_persist(self, storage: Storage) -> None:
        require(storage, "supports_ttl")
        member = Member(name="Moaning Myrtle", email="myrtle@hogwarts.example")
        member.save(ttl=30)
        left = member.ttl()
        assert left is not None and 29 < left <= 30
        member.name = "Myrtle"
        member.save()  # a plain save keeps the expiry
        kept = member.ttl()
        assert kept is not None and 29 < kept <= 30
        member.persist()
        assert member.ttl() is None
        assert Member.objects.get(id=member.id).name == "Myrtle"
        member.expire(0.1)
        time.sleep(0.15)
        with pytest.raises(Member.DoesNotExist):
            member.ttl()
        with pytest.raises(Member.DoesNotExist):
            member.expire(10)

    def test_a_record_saved_again_after_expiring_is_a_new_record(self, storage: Storage) -> None:
        require(storage, "supports_ttl")
        member = Member.create(name="Nick", email="nick@hogwarts.example", house="Gryffindor")
        member.expire(0.1)
        time.sleep(0.15)
        member.save()  # the instance writes the record again, without expiry
        assert member.ttl() is None
        assert Member.objects.filter(house="Gryffindor").count() == 1
        assert Member.objects.check().ok

    def test_a_models_meta_ttl_applies_to_every_save(self, storage: Storage) -> None:
        require(storage, "supports_ttl")
        session = Session.create(token="abc")
        left = session.ttl()
        assert left is not None and 0 < left <= Session.Meta.ttl
        Session.objects.bulk_create([Session(token=f"t{i}") for i in range(3)])
        assert all(s.ttl() is not None for s in Session.objects.all())
        assert session.ttl() is not None

    def test_a_backend_without_expiry_refuses_it_and_writes_nothing(
        self, members: list[Member]
    ) -> None:
        if type(configure.storage()).supports_ttl:
            pytest.skip("the backend supports expiring records")
        with pytest.raises(UnsupportedError):
            members[0].expire(10)
        member = Member(name="Myrtle", email="myrtle@hogwarts.example")
        with pytest.raises(UnsupportedError):
            member.save(ttl=10)
        with pytest.raises(UnsupportedError):
            Session.create(token="abc")
        with pytest.raises(UnsupportedError):
            Session.objects.bulk_create([Session(token="abc")])
        assert Member.objects.filter(name="Myrtle").count() == 0
        assert Session.objects.count() == 0

    def test_saving_or_expiring_at_the_moment_of_expiry_leaves_no_ghost(
        self, storage: Storage
    ) -> None:
        require(storage, "supports_ttl")
        # a 1 ms expiry, then at once a plain save or a new expiry: whatever
        # side of the instant each lands on, the index must match the records
        for round_ in range(60):
            member = Member(name=f"ghost {round_}", email=f"ghost{round_}@hogwarts.example")
            member.save(ttl=0.001)
            try:
                if round_ % 2:
                    member.save()
                else:
                    member.expire(30)
            except Member.DoesNotExist:
                pass  # it expired before expire() ran
        time.sleep(0.01)
        stored = [m for m in Member.objects.all()]
        assert Member.objects.count() == len(stored)
        assert all(Member.objects.get_many([m.id for m in stored]))
        assert Member.objects.check().ok
        for member in stored:  # each holds its unique value, the others do not
            Member.objects.get(email=member.email)

    def test_an_expired_records_unique_value_is_free_at_once_in_any_shard(
        self, storage: Storage
    ) -> None:
        require(storage, "supports_ttl")
        for round_ in range(12):
            email = f"owl{round_}@hogwarts.example"
            Member(name="first", email=email).save(ttl=0.01)
            time.sleep(0.02)
            # no query in between: the save itself must find the value free
            Member.create(name="second", email=email)
            assert Member.objects.get(email=email).name == "second"
        assert Member.objects.check().ok

    def test_update_and_reindex_keep_an_expiry(self, storage: Storage) -> None:
        require(storage, "supports_ttl")
        session = Session.create(token="abc")
        session.expire(5)
        Session.objects.filter(token="abc").update(token="abd")
        left = session.ttl()
        assert left is not None and left <= 5  # not renewed to Meta.ttl (60)
        Session.objects.reindex()
        session.expire(0.05)
        time.sleep(0.1)
        assert Session.objects.count() == 0
        assert Session.objects.check().ok

    def test_a_bad_ttl_is_refused(self, members: list[Member]) -> None:
        for bad in (0, -1, float("nan"), float("inf"), True, "10", 1e14):
            with pytest.raises(ValidationError):
                members[0].expire(bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            members[0].save(ttl=0)
