"""What repocket stores on redis, read with ``configure.get_connection()``: the
key layout and envelopes of the 0.0.1 documentation, the index keys, and
records written by 0.0.1; on the redis backend and on the memory backend.

Backend-independent behaviour is tested on every backend by the conformance
suite (``repocket.testing.suite``); these tests check the redis layout itself.
"""

from __future__ import annotations

import json

import pytest

from repocket.backends.layout import shard_of
from repocket.connections import configure
from repocket.testing.query_models import Wizard
from repocket.testing.suite.queries import create_wizards, names

from .models import BlogPost, Build, Project, User

HARRY_ID = "970773fa-4de1-11e5-86f4-6c4008a70392"


@pytest.fixture
def wizards(storage):
    return create_wizards()


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


def test_save_stores_each_field_as_the_documented_envelope(storage) -> None:
    harry = make_harry()
    raw = configure.get_connection().hgetall(harry.save()["hash"])
    stored = {k.decode(): v.decode() for k, v in raw.items()}
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


def test_bytestream_is_stored_in_its_own_string_key(storage) -> None:
    post = BlogPost(body="the initial content\n")
    keys = post.save()
    body_key = keys["strings"]["body"]
    assert body_key == f"repocket:repocket.testing.models:BlogPost:{post.id}:field:body"
    assert configure.get_connection().get(body_key) == b"the initial content\n"
    assert b"body" not in configure.get_connection().hgetall(keys["hash"])


def test_append_appends_in_storage_and_on_the_instance(storage) -> None:
    post = BlogPost.create(body="the initial content\n")
    body_key = post.append_body("more content\n")
    assert body_key == f"repocket:repocket.testing.models:BlogPost:{post.id}:field:body"
    assert configure.get_connection().get(body_key) == b"the initial content\nmore content\n"
    assert post.body == b"the initial content\nmore content\n"
    assert BlogPost.objects.get(id=post.id).body == b"the initial content\nmore content\n"


def test_pointer_stores_the_target_hash_key(storage) -> None:
    project = Project.create(name="repocket")
    build = Build.create(project=project)
    raw = configure.get_connection().hget(build.save()["hash"], "project")
    assert json.loads(raw)["value"] == f"repocket:repocket.testing.models:Project:{project.id}"


# -- index keys ------------------------------------------------------------------------------


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


def write_like_0_0_1(record_id: str, **values: object) -> None:
    """Store a record the way 0.0.1 did: the hash alone, with no index data."""
    key = f"repocket:{Wizard.__module__}:Wizard:{record_id}"
    fields = {
        "id": json.dumps({"type": "AutoUUID", "value": record_id, "module": "repocket.attributes"})
    }
    for name, value in values.items():
        fields[name] = json.dumps(
            {"type": "Unicode", "value": value, "module": "repocket.attributes"}
        )
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
    connection.hset(
        harry.save()["hash"],
        "house",
        json.dumps({"type": "Unicode", "value": "Hufflepuff", "module": "repocket.attributes"}),
    )
    connection.delete(wizards["Luna Lovegood"].save()["hash"])
    report = Wizard.objects.check()
    assert report.stale == [str(harry.id)]
    assert report.orphans == [str(wizards["Luna Lovegood"].id)]
    Wizard.objects.reindex()
    assert Wizard.objects.check().ok
    assert names(Wizard.objects.filter(house="Hufflepuff")) == ["Harry Potter"]


@pytest.mark.parametrize("shards", [1, 4])
def test_an_expiring_record_is_kept_in_its_shards_expiry_index(shards: int) -> None:
    # the scripts name the expiry index after the shard's id index; the
    # layout module names it too: the two must agree
    storage = configure.from_url(f"memory://?shards={shards}")
    try:
        harry = Wizard.create(name="Harry", house="Gryffindor", age=17)
        harry.expire(60)
        shard = shard_of(Wizard._meta.collection, str(harry.pk), shards)
        client = storage.native_client
        assert client.zscore(shard.expiry_key, str(harry.pk)) is not None
        harry.persist()
        assert not client.exists(shard.expiry_key)
    finally:
        configure.reset()
