"""Conformance: ActiveRecord persistence, ByteStreams and Pointers."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest

from ... import ActiveRecord, attributes
from ...errors import UnsavedRecordError
from ...storage import Storage, StoredRecord
from ..models import BlogPost, Build, Project, User
from .base import BackendSuite

__all__ = ["RecordConformance"]

HARRY_ID = "970773fa-4de1-11e5-86f4-6c4008a70392"
MODULE = "repocket.testing.models"


def make_harry() -> User:
    return User.create(
        id=HARRY_ID,
        name="Harry Potter",
        email="harry@hogwards.uk",
        house_name="Gryffindor",
        password=b"somethingsecret",
        metadata={
            "known_tricks": ["Protego", "Expelliarmus", "Wingardium Leviosa", "Expecto Patronum"]
        },
    )


def stored_record(storage: Storage, record: ActiveRecord) -> StoredRecord:
    """What storage holds for a record, read through the protocol."""
    model = type(record)
    stored = storage.load_record(
        model._meta.collection,
        str(record._values[model._meta.primary_key]),
        model._meta.stream_fields,
    )
    assert stored is not None
    return stored


def text_of(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RecordConformance(BackendSuite):
    """``save()``, ``create()``, ``delete()``, ``append_<field>()`` and pointers."""

    # -- persistence -------------------------------------------------------------------

    def test_save_returns_the_hash_key_and_no_strings(self, storage: Storage) -> None:
        keys = make_harry().save()
        assert keys == {"hash": f"repocket:{MODULE}:User:{HARRY_ID}", "strings": {}}

    def test_save_stores_each_field_as_the_documented_envelope(self, storage: Storage) -> None:
        harry = make_harry()
        harry.save()
        stored = {
            name: text_of(value) for name, value in stored_record(storage, harry).fields.items()
        }
        assert set(stored) == {"id", "name", "house_name", "email", "password", "metadata"}
        assert stored["name"] == (
            '{"type": "Unicode", "value": "Harry Potter", "module": "repocket.attributes"}'
        )
        assert stored["email"] == (
            '{"type": "Bytes", "value": "harry@hogwards.uk", "module": "repocket.attributes"}'
        )
        assert stored["id"] == (
            '{"type": "AutoUUID", "value": "970773fa-4de1-11e5-86f4-6c4008a70392",'
            ' "module": "repocket.attributes"}'
        )
        assert json.loads(json.loads(stored["metadata"])["value"]) == harry.metadata

    def test_save_assigns_a_uuid7_id_when_none_was_given(self, storage: Storage) -> None:
        user = User(name="Harry")
        assert user.id is None
        user.save()
        saved_id: Any = user.id  # (for mypy, which would keep it None)
        assert isinstance(saved_id, uuid.UUID) and saved_id.version == 7

    def test_saving_only_some_fields_keeps_working(self, storage: Storage) -> None:
        User(email="1@test.com").save()
        post = BlogPost(title="no author")
        post.save()
        loaded = BlogPost.objects.get(id=post.id)
        assert loaded.author is None and loaded.title == "no author"
        assert User.objects.filter(email=b"1@test.com")[0].name == ""

    def test_create_saves_immediately(self, storage: Storage) -> None:
        harry = make_harry()
        assert User.objects.get(id=HARRY_ID) == harry

    def test_get_returns_an_equal_record_with_typed_values(self, storage: Storage) -> None:
        make_harry()
        harry = User.objects.get(id=HARRY_ID)
        assert harry.id == uuid.UUID(HARRY_ID) and harry["id"] == uuid.UUID(HARRY_ID)
        assert harry.email == b"harry@hogwards.uk"
        assert harry.metadata["known_tricks"][-1] == "Expecto Patronum"

    def test_updating_a_record_rewrites_it_in_place(self, storage: Storage) -> None:
        harry = make_harry()
        harry.house_name = "Slytherin"
        assert harry.save()["hash"].endswith(HARRY_ID)
        assert User.objects.get(id=HARRY_ID).house_name == "Slytherin"
        assert User.objects.count() == 1

    def test_auto_now_stamps_every_save(self, storage: Storage) -> None:
        post = BlogPost(title="x")
        # read as Any: to a type checker the field always holds a datetime
        assert post["created_at"] is None
        post.save()
        first = post.created_at
        assert first is not None and first.tzinfo is not None
        post.save()
        assert post.created_at >= first
        assert BlogPost.objects.get(id=post.id).created_at == post.created_at

    def test_auto_now_overrides_an_assigned_value(self, storage: Storage) -> None:
        long_ago = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
        post = BlogPost.create(created_at=long_ago)
        assert post.created_at > long_ago

    def test_delete_returns_one_for_a_record_without_streams(self, storage: Storage) -> None:
        harry = make_harry()
        assert harry.delete() == 1
        with pytest.raises(User.DoesNotExist):
            User.objects.get(id=HARRY_ID)

    def test_delete_counts_the_streams_that_hold_data(self, storage: Storage) -> None:
        build = Build.create(stdout=b"out")
        assert build.delete() == 2
        assert Build.create(stdout=b"out", stderr=b"err").delete() == 3

    def test_deleting_twice_removes_nothing_the_second_time(self, storage: Storage) -> None:
        harry = make_harry()
        harry.delete()
        assert harry.delete() == 0

    def test_deleting_a_never_saved_record_removes_nothing(self, storage: Storage) -> None:
        assert User(name="ghost").delete() == 0

    def test_a_failed_save_changes_nothing_on_the_instance(self, storage: Storage) -> None:
        post = BlogPost(title="x", author=User(name="unsaved"))
        with pytest.raises(UnsavedRecordError):
            post.save()
        assert post["id"] is None and post["created_at"] is None
        assert BlogPost.objects.count() == 0

    # -- ByteStream ----------------------------------------------------------------------

    def test_bytestream_is_stored_apart_from_the_fields(self, storage: Storage) -> None:
        post = BlogPost(body="the initial content\n")
        keys = post.save()
        body_key = keys["strings"]["body"]
        assert body_key == f"repocket:{MODULE}:BlogPost:{post.id}:field:body"
        stored = stored_record(storage, post)
        assert stored.streams["body"] == b"the initial content\n"
        assert "body" not in stored.fields

    def test_append_appends_in_storage_and_on_the_instance(self, storage: Storage) -> None:
        post = BlogPost.create(body="the initial content\n")
        body_key = post.append_body("more content\n")
        assert body_key == f"repocket:{MODULE}:BlogPost:{post.id}:field:body"
        assert stored_record(storage, post).streams["body"] == (
            b"the initial content\nmore content\n"
        )
        assert post.body == b"the initial content\nmore content\n"
        assert BlogPost.objects.get(id=post.id).body == b"the initial content\nmore content\n"

    def test_append_to_an_empty_stream_creates_it(self, storage: Storage) -> None:
        build = Build.create()
        build.append_stderr(b"\xff\x00binary")
        assert Build.objects.get(id=build.id).stderr == b"\xff\x00binary"

    def test_appending_nothing_to_an_empty_stream_stores_nothing(self, storage: Storage) -> None:
        build = Build.create()
        build.append_stderr(b"")
        assert build.stderr == b""
        assert Build.objects.get(id=build.id).stderr == b""
        assert build.save()["strings"] == {}
        assert build.delete() == 1

    def test_append_picks_up_bytes_another_writer_appended(self, storage: Storage) -> None:
        build = Build.create(stdout=b"a")
        other = Build.objects.get(id=build.id)
        other.append_stdout(b"b")
        build.append_stdout(b"c")
        assert build.stdout == b"abc"

    def test_saving_does_not_clobber_bytes_appended_elsewhere(self, storage: Storage) -> None:
        build = Build.create(stdout=b"a")
        Build.objects.get(id=build.id).append_stdout(b"b")
        build.ended_at = datetime.datetime(2020, 1, 1)
        build.save()
        assert Build.objects.get(id=build.id).stdout == b"ab"

    def test_append_on_an_unsaved_record_is_refused(self, storage: Storage) -> None:
        with pytest.raises(UnsavedRecordError, match="save"):
            Build().append_stdout(b"x")

    def test_append_after_an_unsaved_assignment_is_refused(self, storage: Storage) -> None:
        build = Build.create(stdout=b"a")
        build.stdout = b"replaced"
        with pytest.raises(UnsavedRecordError, match="changed since the last save"):
            build.append_stdout(b"x")

    def test_assigning_a_stream_and_saving_replaces_it(self, storage: Storage) -> None:
        build = Build.create(stdout=b"a")
        build.stdout = b"replaced"
        build.save()
        assert Build.objects.get(id=build.id).stdout == b"replaced"

    def test_emptying_a_stream_and_saving_removes_it(self, storage: Storage) -> None:
        build = Build.create(stdout=b"a", stderr=b"b")
        build.stdout = b""
        assert build.save()["strings"] == {
            "stderr": f"repocket:{MODULE}:Build:{build.id}:field:stderr"
        }
        assert Build.objects.get(id=build.id).stdout == b""
        assert build.delete() == 2

    # -- Pointer -------------------------------------------------------------------------

    def test_pointer_stores_the_target_hash_key(self, storage: Storage) -> None:
        project = Project.create(name="repocket")
        build = Build.create(project=project)
        raw = stored_record(storage, build).fields["project"]
        assert json.loads(raw)["value"] == f"repocket:{MODULE}:Project:{project.id}"

    def test_pointer_is_loaded_with_the_record(self, storage: Storage) -> None:
        project = Project.create(name="repocket", metadata={"stars": 1})
        build = Build.create(project=project)
        loaded = Build.objects.get(id=build.id)
        assert isinstance(loaded.project, Project)
        assert loaded.project == project

    def test_pointer_to_a_deleted_record_loads_as_none_with_a_warning(
        self, storage: Storage, caplog: pytest.LogCaptureFixture
    ) -> None:
        project = Project.create(name="gone")
        build = Build.create(project=project)
        project.delete()
        with caplog.at_level("WARNING", logger="repocket"):
            assert Build.objects.get(id=build.id).project is None
        assert "Build.project" in caplog.text and str(project.id) in caplog.text

    def test_pointer_to_an_unsaved_record_is_refused_and_nothing_is_written(
        self, storage: Storage
    ) -> None:
        build = Build(project=Project(name="unsaved"))
        with pytest.raises(UnsavedRecordError) as info:
            build.save()
        assert "Build.project" in str(info.value)
        assert Build.objects.count() == 0

    def test_pointer_by_model_name_resolves_lazily(self, storage: Storage) -> None:
        class Node(ActiveRecord):
            label = attributes.Unicode()
            parent = attributes.Pointer("Node", null=True)

        root = Node.create(label="root")
        child = Node.create(label="child", parent=root)
        assert Node.objects.get(id=child.id).parent.label == "root"

    def test_pointers_of_pointed_records_load_when_read(self, storage: Storage) -> None:
        class Node(ActiveRecord):
            label = attributes.Unicode()
            parent = attributes.Pointer("Node", null=True)

        a = Node.create(label="a")
        b = Node.create(label="b", parent=a)
        c = Node.create(label="c", parent=b)
        loaded = Node.objects.get(id=c.id)
        assert loaded.parent.parent.label == "a"
        assert loaded.parent.parent.parent is None
