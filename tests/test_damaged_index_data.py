"""Damaged index data (the remembered entries of a record) never makes a
record impossible to update or delete, and check()/reindex() see and repair
it; on the memory and redis backends."""

from __future__ import annotations

import pytest

from repocket.backends.layout import Shard
from repocket.testing.query_models import Wizard

DAMAGED = [b"{not json", b"[[1, 2, 3]]", b'"text"', b'[["odd"]]', b"\xff\xfe"]


def _damage(storage, wizard: Wizard, text: bytes) -> None:
    shard = Shard(Wizard._meta.collection, 0, 1)
    storage.native_client.hset(shard.terms_key, str(wizard.pk), text)


@pytest.mark.parametrize("text", DAMAGED)
def test_check_reports_a_record_whose_remembered_entries_are_damaged(storage, text) -> None:
    wizard = Wizard.create(name="Harry", house="Gryffindor")
    _damage(storage, wizard, text)
    report = Wizard.objects.check()
    assert report.stale == [str(wizard.pk)]


@pytest.mark.parametrize("text", DAMAGED)
def test_a_record_with_damaged_entries_can_still_be_saved(storage, text) -> None:
    wizard = Wizard.create(name="Harry", house="Gryffindor")
    _damage(storage, wizard, text)
    wizard.house = "Slytherin"
    wizard.save()
    assert [w.pk for w in Wizard.objects.filter(house="Slytherin")] == [wizard.pk]


@pytest.mark.parametrize("text", DAMAGED)
def test_a_record_with_damaged_entries_can_still_be_deleted(storage, text) -> None:
    wizard = Wizard.create(name="Harry", house="Gryffindor")
    _damage(storage, wizard, text)
    assert wizard.delete() == 1
    assert Wizard.objects.count() == 0


@pytest.mark.parametrize("text", DAMAGED)
def test_reindex_repairs_damaged_entries(storage, text) -> None:
    wizard = Wizard.create(name="Harry", house="Gryffindor")
    _damage(storage, wizard, text)
    assert Wizard.objects.reindex() == 1
    assert Wizard.objects.check().ok
    assert [w.pk for w in Wizard.objects.filter(house="Gryffindor")] == [wizard.pk]


def _snapshot(client) -> dict[bytes, object]:
    """Every key's type and content (DUMP's bytes may differ for equal hashes)."""
    readers = {
        b"hash": client.hgetall,
        b"set": client.smembers,
        b"zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        b"string": client.get,
    }
    found: dict[bytes, object] = {}
    for key in client.scan_iter():
        kind = client.type(key)
        found[key] = (kind, readers[kind](key))
    return found


def test_a_failing_script_is_a_storage_error_naming_the_record_and_operation(storage) -> None:
    from repocket.errors import StorageError

    wizard = Wizard(name="Harry", house="Gryffindor")
    # the ids index is not a sorted set: the save script fails on ZADD
    shard = Shard(Wizard._meta.collection, 0, 1)
    storage.native_client.set(shard.ids_key, b"not a sorted set")
    with pytest.raises(StorageError) as caught:
        wizard.save()
    message = str(caught.value)
    assert "cannot save repocket:" in message and ":Wizard:" in message
    assert shard.ids_key in message and "nothing was written" in message
    # checked before the first write: nothing of the record was stored
    assert list(storage.native_client.scan_iter(match="repocket:*Wizard:*")) == []


@pytest.mark.parametrize("operation", ["save", "delete", "increment"])
def test_a_key_of_the_wrong_type_refuses_a_write_before_anything_is_written(
    storage, operation
) -> None:
    from repocket.errors import StorageError

    wizard = Wizard.create(name="Harry", house="Gryffindor", age=17)
    shard = Shard(Wizard._meta.collection, 0, 1)
    # the entry a change of house (or age) would add is of the wrong kind
    storage.native_client.set(shard.index_key('eq:house:"Slytherin"'), b"x")
    storage.native_client.set(shard.index_key("range:age"), b"x")
    before = _snapshot(storage.native_client)
    with pytest.raises(StorageError, match="nothing was written"):
        if operation == "save":
            wizard.house = "Slytherin"
            wizard.save()
        elif operation == "delete":
            wizard.delete()
        else:
            wizard.increment("age")
    after = _snapshot(storage.native_client)
    assert after == before


def test_a_script_error_keeps_redis_error_as_its_cause(storage) -> None:
    from redis.exceptions import ResponseError

    from repocket.errors import StorageError

    wizard = Wizard.create(name="Harry")
    # a record key that is not a hash: the conditional save's read fails
    storage.native_client.delete(wizard._record_key())
    storage.native_client.set(wizard._record_key(), b"not a hash")
    wizard.name = "Potter"
    with pytest.raises(StorageError) as caught:
        wizard.save(if_unchanged=True)
    assert "failed to save" in str(caught.value) and str(wizard.pk) in str(caught.value)
    assert isinstance(caught.value.__cause__, ResponseError)
