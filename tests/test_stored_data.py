"""Bad data in storage gives a clear EnvelopeError naming the key and field, on every backend."""

from __future__ import annotations

import json

import pytest

from repocket.connections import configure
from repocket.errors import EnvelopeError

from .models import Build, Project, User


def corrupt(record, field: str, raw: bytes | str) -> str:
    key = record.save()["hash"]
    configure.get_connection().hset(key, field, raw)
    return key


@pytest.mark.parametrize("raw", [
    b"not json at all",
    b"\xff\xfe not utf-8",
    b'["a", "list"]',
    b'{"type": "Unicode", "module": "repocket.attributes"}',
    b'{"type": "Pickle", "value": "x", "module": "repocket.attributes"}',
    b'{"type": "Unicode", "value": "x", "module": "os"}',
])
def test_invalid_envelope_names_key_and_field(storage, raw: bytes) -> None:
    user = User.create(name="Harry")
    key = corrupt(user, "name", raw)
    with pytest.raises(EnvelopeError) as info:
        User.objects.get(id=user.id)
    assert key in str(info.value) and "'name'" in str(info.value)
    assert (info.value.key, info.value.field) == (key, "name")


def test_an_envelope_value_the_type_cannot_read_names_key_and_field(storage) -> None:
    user = User.create(name="Harry")
    key = corrupt(user, "id", json.dumps(
        {"type": "AutoUUID", "value": "not-a-uuid", "module": "repocket.attributes"}))
    with pytest.raises(EnvelopeError, match="'id'") as info:
        User.objects.get(id=user.id)
    assert key in str(info.value)


def test_a_pointer_to_another_models_record_is_refused(storage) -> None:
    user = User.create(name="Harry")
    build = Build.create(project=Project.create(name="p"))
    corrupt(build, "project", json.dumps(
        {"type": "Pointer", "value": user.save()["hash"], "module": "repocket.attributes"}))
    with pytest.raises(EnvelopeError, match="not a Project record"):
        Build.objects.get(id=build.id)


def test_a_pointer_value_that_is_not_a_key_is_refused(storage) -> None:
    build = Build.create()
    corrupt(build, "project", json.dumps(
        {"type": "Pointer", "value": "elsewhere", "module": "repocket.attributes"}))
    with pytest.raises(EnvelopeError, match="not a repocket record key"):
        Build.objects.get(id=build.id)


def test_a_value_stored_under_an_older_type_is_cast_to_the_field_type(storage) -> None:
    user = User.create(name="Harry")
    corrupt(user, "name", json.dumps(
        {"type": "Bytes", "value": "Harry Potter", "module": "repocket.attributes"}))
    assert User.objects.get(id=user.id).name == "Harry Potter"


def test_stored_fields_the_model_no_longer_has_are_ignored(storage) -> None:
    user = User.create(name="Harry")
    corrupt(user, "wand", json.dumps(
        {"type": "Unicode", "value": "holly", "module": "repocket.attributes"}))
    assert User.objects.get(id=user.id) == user


def test_a_field_missing_from_storage_loads_its_initial_value(storage) -> None:
    user = User.create(name="Harry", house_name="Gryffindor")
    configure.get_connection().hdel(user.save()["hash"], "house_name")
    assert User.objects.get(id=user.id).house_name == ""
