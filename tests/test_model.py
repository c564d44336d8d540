"""ActiveRecord behaviour, on every backend (the ``storage`` fixture)."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest

from repocket import ActiveRecord, attributes
from repocket.connections import configure
from repocket.errors import (
    DoesNotExist,
    RepocketActiveRecordDefinitionError,
    UnknownFieldError,
    UnsavedRecordError,
    ValidationError,
)

from .models import BlogPost, Build, Everything, Project, User

HARRY_ID = "970773fa-4de1-11e5-86f4-6c4008a70392"


def make_harry() -> User:
    return User.create(
        id=HARRY_ID, name="Harry Potter", email="harry@hogwards.uk", house_name="Gryffindor",
        password=b"somethingsecret",
        metadata={"known_tricks": ["Protego", "Expelliarmus", "Wingardium Leviosa",
                                   "Expecto Patronum"]})


# -- class definition ------------------------------------------------------------

def test_model_without_autouuid_gets_an_implicit_id_first() -> None:
    assert list(Project._fields)[0] == "id"
    assert isinstance(Project.id, attributes.AutoUUID)


def test_fields_keep_definition_order() -> None:
    assert list(User._fields) == ["id", "name", "house_name", "email", "password", "metadata"]


def test_two_autouuids_are_a_definition_error() -> None:
    with pytest.raises(RepocketActiveRecordDefinitionError, match="more than one AutoUUID"):
        class Twice(ActiveRecord):
            first = attributes.AutoUUID()
            second = attributes.AutoUUID()


def test_an_id_field_that_is_not_autouuid_is_a_definition_error() -> None:
    with pytest.raises(RepocketActiveRecordDefinitionError, match="Odd.id"):
        class Odd(ActiveRecord):
            id = attributes.Unicode()


def test_a_field_hiding_the_model_api_is_a_definition_error() -> None:
    with pytest.raises(RepocketActiveRecordDefinitionError, match="save"):
        class Hiding(ActiveRecord):
            save = attributes.Unicode()


def test_each_model_has_its_own_does_not_exist_in_the_error_tree() -> None:
    assert issubclass(User.DoesNotExist, DoesNotExist)
    assert issubclass(User.DoesNotExist, LookupError)
    assert User.DoesNotExist is not Project.DoesNotExist
    assert not issubclass(User.DoesNotExist, Project.DoesNotExist)


def test_a_subclass_model_inherits_fields_and_its_does_not_exist_is_the_parents() -> None:
    class Wizard(User):
        wand = attributes.Unicode()

    assert list(Wizard._fields) == ["id", "name", "house_name", "email", "password",
                                    "metadata", "wand"]
    assert issubclass(Wizard.DoesNotExist, User.DoesNotExist)


def test_field_on_the_class_is_the_attribute_itself() -> None:
    assert isinstance(User.name, attributes.Unicode)
    assert User.name.name == "name"


def test_bytestream_fields_get_an_append_method() -> None:
    assert callable(Build.append_stdout)
    assert callable(Build.append_stderr)
    assert not hasattr(User, "append_name")


# -- construction and values -------------------------------------------------------

def test_unknown_keyword_names_the_model_and_lists_valid_fields() -> None:
    with pytest.raises(UnknownFieldError) as info:
        User(nickname="Potter")
    message = str(info.value)
    assert "User" in message and "'nickname'" in message
    assert "name, house_name, email, password, metadata" in message


def test_fields_not_given_hold_their_empty_values() -> None:
    user = User()
    assert (user.id, user.name, user.email, user.metadata) == (None, "", b"", None)
    assert Build().stdout == b"" and Build().project is None


def test_default_callables_are_called_per_instance() -> None:
    class Tagged(ActiveRecord):
        tags = attributes.JSON(default=list)
        level = attributes.Integer(default=3)

    first, second = Tagged(), Tagged()
    first.tags.append("x")
    assert second.tags == [] and first.level == 3


def test_assigning_none_to_a_non_null_field_is_a_validation_error() -> None:
    user = User(name="Harry")
    with pytest.raises(ValidationError, match=r"User\.name does not accept None"):
        user.name = None
    assert user.name == "Harry"


def test_null_true_fields_accept_none() -> None:
    class Optional(ActiveRecord):
        note = attributes.Unicode(null=True)

    assert Optional(note=None).note is None


def test_uncastable_value_names_model_field_and_value() -> None:
    with pytest.raises(ValidationError) as info:
        Everything(number="abc")
    assert "Everything.number" in str(info.value) and "'abc'" in str(info.value)
    assert (info.value.model, info.value.field, info.value.value) == (
        "Everything", "number", "abc")


def test_item_access_reads_and_writes_fields() -> None:
    user = User(name="Harry")
    assert user["name"] == "Harry"
    user["name"] = "Ron"
    assert user.name == "Ron"


def test_item_access_to_an_unknown_field_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        User()["nickname"]
    with pytest.raises(UnknownFieldError):
        User()["nickname"] = 1


def test_matches_needs_every_pair_to_match() -> None:
    user = User(name="Harry Potter", house_name="Gryffindor")
    assert user.matches({"name": "Harry Potter", "house_name": "Gryffindor"})
    # 0.0.1 let the last pair decide; a mismatch anywhere must fail.
    assert not user.matches({"name": "Draco", "house_name": "Gryffindor"})
    assert not user.matches({"house_name": "Gryffindor", "name": "Draco"})


def test_matches_casts_values_to_the_field_type() -> None:
    user = User(id=HARRY_ID)
    assert user.matches({"id": HARRY_ID})
    assert user.matches({"id": uuid.UUID(HARRY_ID)})
    assert not user.matches({"id": "not-a-uuid"})


def test_matches_an_unknown_field_is_an_error() -> None:
    with pytest.raises(UnknownFieldError):
        User().matches({"nickname": "x"})


def test_equal_values_make_equal_records() -> None:
    assert User(id=HARRY_ID, name="Harry") == User(id=HARRY_ID, name="Harry")
    assert User(id=HARRY_ID, name="Harry") != User(id=HARRY_ID, name="Ron")


def test_comparing_with_a_non_model_is_false_and_records_are_unhashable() -> None:
    assert (User(name="Harry") == {"name": "Harry"}) is False
    assert User(name="Harry") != "Harry"
    with pytest.raises(TypeError):
        hash(User())


def test_records_of_different_models_are_not_equal() -> None:
    assert Project(id=HARRY_ID) != User(id=HARRY_ID)


def test_repr_shows_model_and_values() -> None:
    text = repr(User(id=HARRY_ID, name="Harry Potter"))
    assert text.startswith("User(id=UUID('970773fa-4de1-11e5-86f4-6c4008a70392'), ")
    assert "name='Harry Potter'" in text


def test_to_dict_simple_gives_json_safe_values() -> None:
    user = User(id=HARRY_ID, name="Harry", email=b"harry@hogwards.uk", metadata={"a": [1]})
    data = user.to_dict(simple=True)
    assert data == {"id": HARRY_ID, "name": "Harry", "house_name": "",
                    "email": "harry@hogwards.uk", "password": "", "metadata": '{"a": [1]}'}
    json.dumps(data)


def test_to_dict_not_simple_gives_envelopes() -> None:
    data = User(name="Harry").to_dict(simple=False)
    assert data["name"] == {"type": "Unicode", "value": "Harry", "module": "repocket.attributes"}


# -- persistence -------------------------------------------------------------------------

def test_save_returns_the_hash_key_and_no_strings(storage) -> None:
    keys = make_harry().save()
    assert keys == {"hash": f"repocket:tests.models:User:{HARRY_ID}", "strings": {}}


def test_save_stores_each_field_as_the_documented_envelope(storage) -> None:
    harry = make_harry()
    raw = configure.get_connection().hgetall(harry.save()["hash"])
    stored = {k.decode(): v.decode() for k, v in raw.items()}
    assert set(stored) == {"id", "name", "house_name", "email", "password", "metadata"}
    assert stored["name"] == ('{"type": "Unicode", "value": "Harry Potter", '
                              '"module": "repocket.attributes"}')
    assert stored["email"] == ('{"type": "Bytes", "value": "harry@hogwards.uk", '
                               '"module": "repocket.attributes"}')
    assert stored["id"] == ('{"type": "AutoUUID", "value": "970773fa-4de1-11e5-86f4-6c4008a70392",'
                            ' "module": "repocket.attributes"}')
    assert json.loads(json.loads(stored["metadata"])["value"]) == harry.metadata


def test_save_assigns_a_uuid1_id_when_none_was_given(storage) -> None:
    user = User(name="Harry")
    assert user.id is None
    user.save()
    assert isinstance(user.id, uuid.UUID) and user.id.version == 1


def test_saving_only_some_fields_keeps_working(storage) -> None:
    User(email="1@test.com").save()
    post = BlogPost(title="no author")
    post.save()
    loaded = BlogPost.objects.get(id=post.id)
    assert loaded.author is None and loaded.title == "no author"
    assert User.objects.filter(email=b"1@test.com")[0].name == ""


def test_create_saves_immediately(storage) -> None:
    harry = make_harry()
    assert User.objects.get(id=HARRY_ID) == harry


def test_get_returns_an_equal_record_with_typed_values(storage) -> None:
    make_harry()
    harry = User.objects.get(id=HARRY_ID)
    assert harry.id == uuid.UUID(HARRY_ID) and harry["id"] == uuid.UUID(HARRY_ID)
    assert harry.email == b"harry@hogwards.uk"
    assert harry.metadata["known_tricks"][-1] == "Expecto Patronum"


def test_updating_a_record_rewrites_it_in_place(storage) -> None:
    harry = make_harry()
    harry.house_name = "Slytherin"
    assert harry.save()["hash"].endswith(HARRY_ID)
    assert User.objects.get(id=HARRY_ID).house_name == "Slytherin"
    assert User.objects.count() == 1


def test_auto_now_stamps_every_save(storage) -> None:
    post = BlogPost(title="x")
    assert post.created_at is None
    post.save()
    first = post.created_at
    assert first is not None and first.tzinfo is not None
    post.save()
    assert post.created_at >= first
    assert BlogPost.objects.get(id=post.id).created_at == post.created_at


def test_auto_now_overrides_an_assigned_value(storage) -> None:
    long_ago = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    post = BlogPost.create(created_at=long_ago)
    assert post.created_at > long_ago


def test_delete_returns_one_for_a_record_without_streams(storage) -> None:
    harry = make_harry()
    assert harry.delete() == 1
    with pytest.raises(User.DoesNotExist):
        User.objects.get(id=HARRY_ID)


def test_delete_counts_the_streams_that_hold_data(storage) -> None:
    build = Build.create(stdout=b"out")
    assert build.delete() == 2
    assert Build.create(stdout=b"out", stderr=b"err").delete() == 3


def test_deleting_twice_removes_nothing_the_second_time(storage) -> None:
    harry = make_harry()
    harry.delete()
    assert harry.delete() == 0


def test_deleting_a_never_saved_record_removes_nothing(storage) -> None:
    assert User(name="ghost").delete() == 0


def test_a_failed_save_changes_nothing_on_the_instance(storage) -> None:
    post = BlogPost(title="x", author=User(name="unsaved"))
    with pytest.raises(UnsavedRecordError):
        post.save()
    assert post.id is None and post.created_at is None
    assert BlogPost.objects.count() == 0


# -- ByteStream --------------------------------------------------------------------------

def test_bytestream_is_stored_in_its_own_string_key(storage) -> None:
    post = BlogPost(body="the initial content\n")
    keys = post.save()
    body_key = keys["strings"]["body"]
    assert body_key == f"repocket:tests.models:BlogPost:{post.id}:field:body"
    assert configure.get_connection().get(body_key) == b"the initial content\n"
    assert b"body" not in configure.get_connection().hgetall(keys["hash"])


def test_append_appends_in_storage_and_on_the_instance(storage) -> None:
    post = BlogPost.create(body="the initial content\n")
    body_key = post.append_body("more content\n")
    assert body_key == f"repocket:tests.models:BlogPost:{post.id}:field:body"
    assert configure.get_connection().get(body_key) == b"the initial content\nmore content\n"
    assert post.body == b"the initial content\nmore content\n"
    assert BlogPost.objects.get(id=post.id).body == b"the initial content\nmore content\n"


def test_append_to_an_empty_stream_creates_it(storage) -> None:
    build = Build.create()
    build.append_stderr(b"\xff\x00binary")
    assert Build.objects.get(id=build.id).stderr == b"\xff\x00binary"


def test_append_picks_up_bytes_another_writer_appended(storage) -> None:
    build = Build.create(stdout=b"a")
    other = Build.objects.get(id=build.id)
    other.append_stdout(b"b")
    build.append_stdout(b"c")
    assert build.stdout == b"abc"


def test_saving_does_not_clobber_bytes_appended_elsewhere(storage) -> None:
    build = Build.create(stdout=b"a")
    Build.objects.get(id=build.id).append_stdout(b"b")
    build.ended_at = datetime.datetime(2020, 1, 1)
    build.save()
    assert Build.objects.get(id=build.id).stdout == b"ab"


def test_append_on_an_unsaved_record_is_refused(storage) -> None:
    with pytest.raises(UnsavedRecordError, match="save"):
        Build().append_stdout(b"x")


def test_append_after_an_unsaved_assignment_is_refused(storage) -> None:
    build = Build.create(stdout=b"a")
    build.stdout = b"replaced"
    with pytest.raises(UnsavedRecordError, match="changed since the last save"):
        build.append_stdout(b"x")


def test_assigning_a_stream_and_saving_replaces_it(storage) -> None:
    build = Build.create(stdout=b"a")
    build.stdout = b"replaced"
    build.save()
    assert Build.objects.get(id=build.id).stdout == b"replaced"


# -- Pointer ----------------------------------------------------------------------------

def test_pointer_stores_the_target_hash_key(storage) -> None:
    project = Project.create(name="repocket")
    build = Build.create(project=project)
    raw = configure.get_connection().hget(build.save()["hash"], "project")
    assert json.loads(raw)["value"] == f"repocket:tests.models:Project:{project.id}"


def test_pointer_is_loaded_with_the_record(storage) -> None:
    project = Project.create(name="repocket", metadata={"stars": 1})
    build = Build.create(project=project)
    loaded = Build.objects.get(id=build.id)
    assert isinstance(loaded.project, Project)
    assert loaded.project == project


def test_pointer_to_a_deleted_record_loads_as_none_with_a_warning(storage, caplog) -> None:
    project = Project.create(name="gone")
    build = Build.create(project=project)
    project.delete()
    with caplog.at_level("WARNING", logger="repocket"):
        assert Build.objects.get(id=build.id).project is None
    assert "Build.project" in caplog.text and str(project.id) in caplog.text


def test_pointer_to_an_unsaved_record_is_refused_and_nothing_is_written(storage) -> None:
    build = Build(project=Project(name="unsaved"))
    with pytest.raises(UnsavedRecordError) as info:
        build.save()
    assert "Build.project" in str(info.value)
    assert Build.objects.count() == 0


def test_pointer_to_the_wrong_model_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match=r"Build\.project.*Project"):
        Build(project=User(name="Harry"))


def test_pointer_by_model_name_resolves_lazily(storage) -> None:
    class Node(ActiveRecord):
        label = attributes.Unicode()
        parent = attributes.Pointer("Node", null=True)

    root = Node.create(label="root")
    child = Node.create(label="child", parent=root)
    assert Node.objects.get(id=child.id).parent.label == "root"


def test_pointers_of_pointed_records_load_when_read(storage) -> None:
    class Node(ActiveRecord):
        label = attributes.Unicode()
        parent = attributes.Pointer("Node", null=True)

    a = Node.create(label="a")
    b = Node.create(label="b", parent=a)
    c = Node.create(label="c", parent=b)
    loaded = Node.objects.get(id=c.id)
    assert loaded.parent.parent.label == "a"
    assert loaded.parent.parent.parent is None
