"""Stored names that are not UTF-8 (a hash field's name, an id in the id
index, a key under a model's prefix) never escape as UnicodeDecodeError:
get(), all(), check(), delete() and reindex() keep working, on the memory
and redis backends."""

from __future__ import annotations

from repocket.backends.layout import Shard
from repocket.testing.query_models import Wizard

NOT_UTF8 = b"\xff\xfe"


def _shard():
    return Shard(Wizard._meta.collection, 0, 1)


def test_a_hash_field_whose_name_is_not_utf8_is_ignored_like_any_unknown_field(storage) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor")
    storage.native_client.hset(harry._record_key(), NOT_UTF8 + b"name", b"whatever")
    loaded = Wizard.objects.get(id=harry.pk)
    assert loaded.name == "Harry"
    assert [w.pk for w in Wizard.objects.all()] == [harry.pk]
    assert Wizard.objects.check().ok
    assert loaded.delete() == 1


def test_an_id_index_member_that_is_not_utf8_is_an_orphan(storage) -> None:
    harry = Wizard.create(name="Harry")
    storage.native_client.zadd(_shard().ids_key, {NOT_UTF8: 0})
    assert [w.pk for w in Wizard.objects.all()] == [harry.pk]
    report = Wizard.objects.check()
    assert len(report.orphans) == 1 and not report.ok
    Wizard.objects.reindex()
    assert Wizard.objects.check().ok
    assert Wizard.objects.count() == 1


def test_a_key_under_the_models_prefix_that_is_not_utf8_does_not_break_a_scan(storage) -> None:
    harry = Wizard.create(name="Harry")
    stray = _shard().record_prefix.encode() + NOT_UTF8
    storage.native_client.hset(stray, "name", b"x")
    report = Wizard.objects.check()  # scans the stored records
    assert report.stray_keys == [stray.decode("utf-8", "backslashreplace")]
    assert report.missing == [] and report.stale == []
    assert Wizard.objects.reindex() >= 1
    assert [w.pk for w in Wizard.objects.filter(name="Harry")] == [harry.pk]
