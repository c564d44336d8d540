"""ActiveRecord behaviour that involves no storage: class definitions, values,
comparisons.  What a model does with storage is tested on every backend by the
conformance suite (``repocket.testing.suite``; ``tests/test_suite_*.py``)."""

from __future__ import annotations

import json
import uuid

import pytest

from repocket import ActiveRecord, attributes
from repocket.errors import (
    DoesNotExist,
    RepocketActiveRecordDefinitionError,
    UnknownFieldError,
    ValidationError,
)

from .models import Build, Everything, Project, User

HARRY_ID = "970773fa-4de1-11e5-86f4-6c4008a70392"


# -- class definition ------------------------------------------------------------


def test_model_without_autouuid_gets_an_implicit_id_first() -> None:
    assert next(iter(Project._fields)) == "id"
    assert isinstance(Project.id, attributes.AutoUUID)


def test_fields_keep_definition_order() -> None:
    assert list(User._fields) == ["id", "name", "house_name", "email", "password", "metadata"]


def test_two_autouuids_are_a_definition_error() -> None:
    with pytest.raises(RepocketActiveRecordDefinitionError, match="more than one AutoUUID"):

        class Twice(ActiveRecord):
            first = attributes.AutoUUID()
            second = attributes.AutoUUID()


def test_an_id_field_that_is_not_autouuid_is_a_definition_error() -> None:
    with pytest.raises(RepocketActiveRecordDefinitionError, match=r"Odd\.id"):

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

    assert list(Wizard._fields) == [
        "id",
        "name",
        "house_name",
        "email",
        "password",
        "metadata",
        "wand",
    ]
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
    assert (info.value.model, info.value.field, info.value.value) == ("Everything", "number", "abc")


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
    assert data == {
        "id": HARRY_ID,
        "name": "Harry",
        "house_name": "",
        "email": "harry@hogwards.uk",
        "password": "",
        "metadata": {"a": [1]},
    }
    json.dumps(data)


def test_to_dict_not_simple_gives_envelopes() -> None:
    data = User(name="Harry").to_dict(simple=False)
    assert data["name"] == {"type": "Unicode", "value": "Harry", "module": "repocket.attributes"}


# -- pointers and indexes --------------------------------------------------------------


def test_pointer_to_the_wrong_model_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match=r"Build\.project.*Project"):
        Build(project=User(name="Harry"))


def test_declaring_an_index_a_type_cannot_have_is_a_definition_error() -> None:
    with pytest.raises(RepocketActiveRecordDefinitionError, match="JSON"):
        attributes.JSON(index=True)
    with pytest.raises(RepocketActiveRecordDefinitionError, match="prefix"):
        attributes.Integer(index="prefix")
    with pytest.raises(RepocketActiveRecordDefinitionError, match="unique"):
        attributes.Unicode(index=False, unique=True)
