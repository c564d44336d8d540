"""Conformance: how writes behave when records collide or change underneath.

Create-only saves of generated ids, conditional saves
(``save(if_unchanged=True)``), ``increment()``, appends to a record another
writer deleted, and the ``pk`` / ``_meta`` accessors.  Other writers are
played by second instances of the same record, so every test runs in one
process on any backend.

Every test here carries the ``write_conformance`` keyword, so that
``pytest -k write`` selects them in any backend's run of the suite (``-k``
does not see the class a test is inherited from).
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

import pytest

from ... import ActiveRecord, attributes
from ...attributes import AutoUUID
from ...errors import (
    ConflictError,
    StorageConnectionError,
    StorageError,
    UniqueViolation,
    UnknownFieldError,
    UnsavedRecordError,
    ValidationError,
)
from ...storage import RecordWrite, Storage
from ..models import BlogPost, Build, User
from ..query_models import Counter, Wizard
from .base import BackendSuite, rewrite_stored_fields

__all__ = ["WriteConformance"]

# The id a test plants a record under before a new instance is given it.
TAKEN_ID = "0190f6b2-7d3e-7a41-8b2c-5d6e7f8091a2"


def give_next_id(monkeypatch: pytest.MonkeyPatch, record_id: str) -> None:
    """Make the next generated primary key ``record_id``: the collision a
    create-only save must detect (in real life, two writers drawing one id)."""
    monkeypatch.setattr(AutoUUID, "generate", staticmethod(lambda: uuid.UUID(record_id)))


def lose_replies(monkeypatch: pytest.MonkeyPatch, storage: Storage, applied: bool) -> None:
    """Make ``save_record`` fail with a connection error, after applying the
    write (``applied``: the reply was lost) or before (the request was)."""
    real = storage.save_record

    def failing_save(write: RecordWrite) -> None:
        if applied:
            real(write)
        raise StorageConnectionError("the connection dropped (simulated by the test)")

    monkeypatch.setattr(storage, "save_record", failing_save)


def ids(records: Any) -> list[str]:
    return sorted(str(record.id) for record in records)


class WriteConformance(BackendSuite):
    """Create-only and conditional saves, ``increment()``, appends, ``pk``."""

    # -- create-only saves of generated ids ------------------------------------------

    def test_create_only_save_refuses_an_id_held_by_another_record(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        User.create(id=TAKEN_ID, name="Harry Potter")
        newcomer = User(name="Draco Malfoy")
        give_next_id(monkeypatch, TAKEN_ID)
        with pytest.raises(ConflictError):
            newcomer.save()
        assert User.objects.get(id=TAKEN_ID).name == "Harry Potter"
        assert User.objects.count() == 1

    def test_a_refused_create_writes_no_index_entries_nor_claims(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        Wizard.create(id=TAKEN_ID, name="Harry Potter", house="Gryffindor", wand="holly")
        newcomer = Wizard(name="Draco Malfoy", house="Slytherin", wand="hawthorn")
        give_next_id(monkeypatch, TAKEN_ID)
        with pytest.raises(ConflictError):
            newcomer.save()
        assert Wizard.objects.filter(house="Slytherin").count() == 0
        assert Wizard.objects.filter(wand="hawthorn").count() == 0
        assert Wizard.objects.check().ok

    def test_a_refused_create_leaves_the_instance_unsaved(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        User.create(id=TAKEN_ID, name="Harry Potter")
        newcomer = User(name="Draco Malfoy")
        give_next_id(monkeypatch, TAKEN_ID)
        with pytest.raises(ConflictError):
            newcomer.save()
        assert newcomer.id is None
        monkeypatch.undo()
        # so the next save draws a new id and succeeds
        newcomer.save()
        assert str(newcomer.id) != TAKEN_ID
        assert User.objects.count() == 2

    def test_create_only_save_of_the_fields_already_stored_succeeds_once(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Identical fields under the id are what a retry of this very write
        # finds when the first attempt was applied but its reply was lost.
        User.create(id=TAKEN_ID, name="Harry Potter")
        newcomer = User(name="Harry Potter")
        give_next_id(monkeypatch, TAKEN_ID)
        newcomer.save()
        assert str(newcomer.id) == TAKEN_ID
        assert User.objects.count() == 1
        assert User.objects.get(id=TAKEN_ID) == newcomer

    def test_a_create_that_failed_after_sending_keeps_its_id_and_stamps(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        post = BlogPost(title="lost reply")
        lose_replies(monkeypatch, storage, applied=True)
        with pytest.raises(StorageError):
            post.save()
        assert post.id is not None and post.created_at is not None

    def test_a_create_retried_after_a_lost_reply_is_stored_once(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # BlogPost.created_at is stamped by every save: the retry must send
        # the first attempt's stamp, or it would not be the same write.
        post = BlogPost(title="lost reply")
        lose_replies(monkeypatch, storage, applied=True)
        with pytest.raises(StorageError):
            post.save()
        first_id, first_stamp = post.id, post.created_at
        monkeypatch.undo()
        post.save()
        assert (post.id, post.created_at) == (first_id, first_stamp)
        assert BlogPost.objects.count() == 1
        assert BlogPost.objects.get(id=first_id) == post

    def test_a_bulk_create_retried_after_a_lost_reply_stores_each_record_once(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        posts = [BlogPost(title=f"post {i}") for i in range(5)]
        real = storage.save_records

        def failing_batch(writes: Any) -> None:
            real(writes)  # applied, but the reply is lost
            raise StorageConnectionError("the connection dropped (simulated by the test)")

        monkeypatch.setattr(storage, "save_records", failing_batch)
        with pytest.raises(StorageError):
            BlogPost.objects.bulk_create(posts)
        first_ids = [post.id for post in posts]
        assert None not in first_ids
        monkeypatch.undo()
        BlogPost.objects.bulk_create(posts)
        assert [post.id for post in posts] == first_ids
        assert ids(BlogPost.objects.all()) == sorted(str(i) for i in first_ids)

    def test_a_create_retried_after_a_lost_request_is_stored_once(
        self, storage: Storage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        post = BlogPost(title="lost request")
        lose_replies(monkeypatch, storage, applied=False)
        with pytest.raises(StorageError):
            post.save()
        first_id = post.id
        monkeypatch.undo()
        post.save()
        assert post.id == first_id
        assert ids(BlogPost.objects.all()) == [str(first_id)]

    def test_a_user_set_id_is_saved_as_an_upsert(self, storage: Storage) -> None:
        User.create(id=TAKEN_ID, name="Harry Potter")
        User(id=TAKEN_ID, name="Draco Malfoy").save()
        assert User.objects.get(id=TAKEN_ID).name == "Draco Malfoy"
        assert User.objects.count() == 1

    def test_a_generated_id_is_a_uuid7_of_the_time_of_the_save(self, storage: Storage) -> None:
        before = time.time_ns() // 1_000_000
        user = User.create(name="Harry Potter")
        after = time.time_ns() // 1_000_000
        generated: Any = user.id  # (for mypy, which would keep it None)
        assert generated.version == 7
        assert before <= generated.int >> 80 <= after

    def test_ids_generated_by_bulk_create_are_distinct_uuid7s_of_its_time(
        self, storage: Storage
    ) -> None:
        before = time.time_ns() // 1_000_000
        users = User.objects.bulk_create([User(name=f"u{i}") for i in range(300)])
        after = time.time_ns() // 1_000_000
        ids: list[Any] = [user.id for user in users]
        assert len(set(ids)) == 300
        assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
        assert all(before <= i.int >> 80 <= after for i in ids)
        assert User.objects.count() == 300

    # -- conditional saves ---------------------------------------------------------------

    def test_conditional_save_of_an_unchanged_record_writes_it(self, storage: Storage) -> None:
        harry = Wizard.create(name="Harry Potter", house="Gryffindor")
        loaded = Wizard.objects.get(id=harry.id)
        loaded.house = "Slytherin"
        loaded.save(if_unchanged=True)
        assert Wizard.objects.get(id=harry.id).house == "Slytherin"
        assert ids(Wizard.objects.filter(house="Slytherin")) == [str(harry.id)]

    def test_conditional_save_after_another_instance_saved_is_refused(
        self, storage: Storage
    ) -> None:
        harry = Wizard.create(name="Harry Potter", house="Gryffindor")
        mine = Wizard.objects.get(id=harry.id)
        theirs = Wizard.objects.get(id=harry.id)
        theirs.house = "Ravenclaw"
        theirs.save()
        mine.house = "Slytherin"
        with pytest.raises(ConflictError):
            mine.save(if_unchanged=True)
        assert Wizard.objects.get(id=harry.id).house == "Ravenclaw"
        assert Wizard.objects.filter(house="Slytherin").count() == 0
        assert Wizard.objects.check().ok

    def test_conditional_save_after_the_record_was_deleted_is_refused(
        self, storage: Storage
    ) -> None:
        harry = Wizard.create(name="Harry Potter", house="Gryffindor")
        mine = Wizard.objects.get(id=harry.id)
        Wizard.objects.get(id=harry.id).delete()
        mine.house = "Slytherin"
        with pytest.raises(ConflictError):
            mine.save(if_unchanged=True)
        # the deleted record is not brought back
        assert Wizard.objects.count() == 0
        assert storage.load_record(Wizard._meta.collection, str(harry.id)) is None

    def test_a_refused_conditional_save_leaves_the_instance_as_it_was(
        self, storage: Storage
    ) -> None:
        post = BlogPost.create(title="first")
        mine = BlogPost.objects.get(id=post.id)
        post.title = "theirs"
        post.save()
        stamp = mine.created_at
        mine.title = "mine"
        with pytest.raises(ConflictError):
            mine.save(if_unchanged=True)
        # auto_now did not stamp a save that was refused
        assert (mine.title, mine.created_at) == ("mine", stamp)

    def test_conditional_first_save_refuses_an_id_held_by_a_record(self, storage: Storage) -> None:
        User.create(id=TAKEN_ID, name="Harry Potter")
        with pytest.raises(ConflictError):
            User(id=TAKEN_ID, name="Draco Malfoy").save(if_unchanged=True)
        assert User.objects.get(id=TAKEN_ID).name == "Harry Potter"

    def test_conditional_first_save_of_a_new_record_creates_it(self, storage: Storage) -> None:
        chosen = User(id=TAKEN_ID, name="Harry Potter")
        chosen.save(if_unchanged=True)
        generated = User(name="Ron Weasley")
        generated.save(if_unchanged=True)
        assert ids(User.objects.all()) == sorted([TAKEN_ID, str(generated.id)])

    def test_consecutive_conditional_saves_of_one_instance_succeed(self, storage: Storage) -> None:
        # each save stamps created_at anew: the instance must remember what
        # it stored, not what it loaded
        post = BlogPost.create(title="one")
        for title in ("two", "three", "four"):
            post.title = title
            post.save(if_unchanged=True)
        assert BlogPost.objects.get(id=post.id) == post

    def test_conditional_save_ignores_bytes_appended_to_a_stream(self, storage: Storage) -> None:
        build = Build.create(stdout=b"a")
        Build.objects.get(id=build.id).append_stdout(b"b")
        build.ended_at = datetime.datetime(2020, 1, 1)
        build.save(if_unchanged=True)
        stored = Build.objects.get(id=build.id)
        assert stored.ended_at == datetime.datetime(2020, 1, 1)
        assert stored.stdout == b"ab"

    def test_conditional_save_after_another_instance_incremented_is_refused(
        self, storage: Storage
    ) -> None:
        counter = Counter.create(name="visits")
        Counter.objects.get(id=counter.id).increment("hits")
        counter.name = "renamed"
        with pytest.raises(ConflictError):
            counter.save(if_unchanged=True)
        assert Counter.objects.get(id=counter.id).name == "visits"

    def test_conditional_save_after_its_own_increment_succeeds(self, storage: Storage) -> None:
        counter = Counter.create(name="visits")
        counter.increment("hits")
        counter.name = "renamed"
        counter.save(if_unchanged=True)
        stored = Counter.objects.get(id=counter.id)
        assert (stored.name, stored.hits) == ("renamed", 1)

    def test_conditional_saves_keep_a_field_the_model_no_longer_declares(
        self, storage: Storage
    ) -> None:
        # records written by an older version of the model hold fields it
        # has since dropped; they are part of what is compared, and stay
        retired = '{"type": "Unicode", "value": "wand", "module": "repocket.attributes"}'
        harry = User.create(name="Harry Potter")
        rewrite_stored_fields(harry, retired=retired)
        loaded = User.objects.get(id=harry.id)
        for house in ("Gryffindor", "Slytherin"):
            loaded.house_name = house
            loaded.save(if_unchanged=True)
        stored = storage.load_record(User._meta.collection, str(harry.id))
        assert stored is not None
        assert stored.fields["retired"] in (retired, retired.encode())
        assert User.objects.get(id=harry.id).house_name == "Slytherin"

    def test_plain_save_overwrites_a_concurrent_change(self, storage: Storage) -> None:
        harry = Wizard.create(name="Harry Potter", house="Gryffindor")
        mine = Wizard.objects.get(id=harry.id)
        theirs = Wizard.objects.get(id=harry.id)
        theirs.house = "Ravenclaw"
        theirs.save()
        mine.house = "Slytherin"
        mine.save()
        assert Wizard.objects.get(id=harry.id).house == "Slytherin"
        assert Wizard.objects.filter(house="Ravenclaw").count() == 0

    # -- increment() ---------------------------------------------------------------------

    def test_increment_of_an_integer_returns_and_stores_the_new_value(
        self, storage: Storage
    ) -> None:
        counter = Counter.create(name="visits", hits=10)
        assert counter.increment("hits", 5) == 15
        assert counter.hits == 15
        assert Counter.objects.get(id=counter.id).hits == 15

    def test_increment_adds_one_by_default(self, storage: Storage) -> None:
        counter = Counter.create(name="visits")
        counter.increment("hits")
        assert (counter.hits, Counter.objects.get(id=counter.id).hits) == (1, 1)

    def test_increment_by_a_negative_step_subtracts(self, storage: Storage) -> None:
        counter = Counter.create(name="visits", hits=10)
        assert counter.increment("hits", -12) == -2
        assert Counter.objects.get(id=counter.id).hits == -2

    def test_increment_of_an_integer_moves_its_index_entries(self, storage: Storage) -> None:
        harry = Wizard.create(name="Harry Potter", age=17)
        Wizard.create(name="Ron Weasley", age=17)
        harry.increment("age", 2)
        assert ids(Wizard.objects.filter(age=19)) == [str(harry.id)]
        assert str(harry.id) not in ids(Wizard.objects.filter(age=17))
        assert ids(Wizard.objects.filter(age__gt=18)) == [str(harry.id)]
        assert Wizard.objects.order_by("-age")[0].id == harry.id
        assert Wizard.objects.check().ok

    def test_increment_of_a_float_returns_and_stores_the_new_value(self, storage: Storage) -> None:
        counter = Counter.create(name="ratio", ratio=1.5)
        assert counter.increment("ratio", 0.25) == 1.75
        assert counter.ratio == 1.75
        assert Counter.objects.get(id=counter.id).ratio == 1.75

    def test_increment_of_a_float_moves_its_index_entries(self, storage: Storage) -> None:
        harry = Wizard.create(name="Harry Potter", height=1.5)
        Wizard.create(name="Ron Weasley", height=1.5)
        harry.increment("height", 0.25)
        assert ids(Wizard.objects.filter(height=1.75)) == [str(harry.id)]
        assert str(harry.id) not in ids(Wizard.objects.filter(height=1.5))
        assert ids(Wizard.objects.filter(height__gte=1.6)) == [str(harry.id)]
        assert Wizard.objects.check().ok

    def test_increment_adds_to_the_stored_value_not_the_instances(self, storage: Storage) -> None:
        counter = Counter.create(name="visits")
        stale = Counter.objects.get(id=counter.id)
        counter.increment("hits", 3)
        assert stale.increment("hits", 1) == 4
        assert Counter.objects.get(id=counter.id).hits == 4

    def test_increment_leaves_the_other_fields_as_stored(self, storage: Storage) -> None:
        counter = Counter.create(name="visits")
        theirs = Counter.objects.get(id=counter.id)
        theirs.name = "renamed"
        theirs.save()
        counter.increment("hits")
        assert Counter.objects.get(id=counter.id).name == "renamed"

    @pytest.mark.parametrize(
        ("field", "by"),
        [
            ("name", 1),  # a Unicode field
            ("id", 1),  # the primary key
            ("ratio", 1.0),  # holds None
            ("hits", 1.5),  # not a whole number for an Integer
            ("hits", "many"),  # not a number
        ],
    )
    def test_increment_refuses_what_it_cannot_add_and_writes_nothing(
        self, storage: Storage, field: str, by: Any
    ) -> None:
        counter = Counter.create(name="visits", hits=1)
        with pytest.raises(ValidationError) as info:
            counter.increment(field, by)
        assert info.value.field == field
        stored = Counter.objects.get(id=counter.id)
        assert stored == counter
        assert (stored.name, stored.hits, stored.ratio) == ("visits", 1, None)

    def test_increment_of_an_unknown_field_raises_unknown_field_error(
        self, storage: Storage
    ) -> None:
        counter = Counter.create(name="visits")
        with pytest.raises(UnknownFieldError):
            counter.increment("nope")

    def test_increment_of_a_never_saved_record_is_refused(self, storage: Storage) -> None:
        with pytest.raises(UnsavedRecordError):
            Counter(name="visits").increment("hits")
        assert Counter.objects.count() == 0

    def test_increment_of_a_record_deleted_elsewhere_raises_does_not_exist(
        self, storage: Storage
    ) -> None:
        counter = Counter.create(name="visits")
        Counter.objects.get(id=counter.id).delete()
        with pytest.raises(Counter.DoesNotExist):
            counter.increment("hits")
        # nothing is brought back: no record, no index entry
        assert storage.load_record(Counter._meta.collection, str(counter.id)) is None
        assert Counter.objects.count() == 0
        assert Counter.objects.filter(hits=1).count() == 0

    def test_increment_onto_a_unique_value_held_by_another_record_is_refused(
        self, storage: Storage
    ) -> None:
        first = Counter.create(name="first", ticket=1)
        second = Counter.create(name="second", ticket=2)
        with pytest.raises(UniqueViolation) as info:
            first.increment("ticket")
        assert info.value.other_id == str(second.id)
        assert first.ticket == 1
        assert Counter.objects.get(id=first.id).ticket == 1
        assert ids(Counter.objects.filter(ticket=2)) == [str(second.id)]
        assert Counter.objects.check().ok

    def test_increment_of_a_unique_field_moves_its_claim(self, storage: Storage) -> None:
        first = Counter.create(name="first", ticket=1)
        first.increment("ticket", 2)
        Counter.create(name="takes the old number", ticket=1)
        with pytest.raises(UniqueViolation):
            Counter.create(name="wants the new number", ticket=3)
        assert ids(Counter.objects.filter(ticket=3)) == [str(first.id)]
        assert Counter.objects.check().ok

    # -- appends ---------------------------------------------------------------------------

    def test_append_to_a_record_deleted_elsewhere_raises_does_not_exist(
        self, storage: Storage
    ) -> None:
        build = Build.create(stdout=b"a")
        Build.objects.get(id=build.id).delete()
        with pytest.raises(Build.DoesNotExist):
            build.append_stdout(b"b")

    def test_append_to_a_record_deleted_elsewhere_leaves_no_stream(self, storage: Storage) -> None:
        build = Build.create(stdout=b"a")
        Build.objects.get(id=build.id).delete()
        with pytest.raises(Build.DoesNotExist):
            build.append_stderr(b"b")
        # delete_record counts every stream holding data: none is left
        assert (
            storage.delete_record(Build._meta.collection, str(build.id), Build._meta.stream_fields)
            == 0
        )
        assert list(storage.iter_stored_ids(Build._meta.collection)) == []

    # -- pk and _meta ------------------------------------------------------------------------

    def test_pk_is_none_before_the_first_save(self, storage: Storage) -> None:
        assert User(name="Harry Potter").pk is None

    def test_pk_is_the_primary_key_value(self, storage: Storage) -> None:
        harry = User.create(name="Harry Potter")
        assert harry.pk == harry.id
        assert User.objects.get(id=harry.id).pk == harry.id

    def test_pk_follows_a_primary_key_with_another_name(self, storage: Storage) -> None:
        class Badge(ActiveRecord):
            serial = attributes.AutoUUID()
            label = attributes.Unicode()

        badge = Badge.create(label="prefect")
        assert isinstance(badge.pk, uuid.UUID)
        assert badge.pk == badge.serial
        assert Badge.objects.get(serial=badge.pk).label == "prefect"

    def test_meta_describes_the_models_fields(self, storage: Storage) -> None:
        meta = Build._meta
        assert list(meta.fields) == ["id", "project", "started_at", "ended_at", "stdout", "stderr"]
        assert meta.primary_key == "id"
        assert meta.stream_fields == ("stdout", "stderr")
        assert meta.pointer_fields == ("project",)
        assert meta.hash_fields == ("id", "project", "started_at", "ended_at")


# ``pytest -k write`` matches the attributes set on a test function.
for _name, _test in list(vars(WriteConformance).items()):
    if _name.startswith("test_"):
        _test.write_conformance = True
