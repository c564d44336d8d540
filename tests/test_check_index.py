"""check() compares the index structures and the records in both
directions, on the memory and redis backends: damage to the index itself
(an id taken out of an entry, an entry's key deleted, an entry no record
justifies) is found, as are orphan ByteStreams and leftover temporary keys."""

from __future__ import annotations

from repocket.backends.layout import Shard, unique_key
from repocket.indexes import eq_name, range_name
from repocket.testing.models import Build
from repocket.testing.query_models import Wizard


def _shard():
    return Shard(Wizard._meta.collection, 0, 1)


def test_a_consistent_index_checks_ok(storage) -> None:
    for i in range(7):
        Wizard.create(name=f"w{i}", house="Gryffindor", age=i)
    report = Wizard.objects.check()
    assert report.ok, report
    assert report.checked == 7


def test_an_id_removed_from_its_equality_entry_is_found(storage) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor", age=17)
    storage.native_client.srem(_shard().index_key(eq_name("house", '"Gryffindor"')), str(harry.pk))
    report = Wizard.objects.check()
    assert report.stale == [str(harry.pk)]
    assert not report.ok


def test_a_deleted_score_index_is_found(storage) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor", age=17)
    storage.native_client.delete(_shard().index_key(range_name("age")))
    assert str(harry.pk) in Wizard.objects.check().stale


def test_an_entry_no_record_justifies_is_an_orphan_entry(storage) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor", age=17)
    name = eq_name("house", '"Slytherin"')
    storage.native_client.sadd(_shard().index_key(name), str(harry.pk))
    report = Wizard.objects.check()
    assert report.orphan_entries == [(name, str(harry.pk))]
    assert report.stale == [] and not report.ok


def test_an_entry_of_a_deleted_record_is_an_orphan_entry(storage) -> None:
    name = eq_name("house", '"Hufflepuff"')
    storage.native_client.sadd(_shard().index_key(name), "gone")
    assert Wizard.objects.check().orphan_entries == [(name, "gone")]


def test_a_listed_id_without_a_record_is_an_orphan(storage) -> None:
    storage.native_client.zadd(_shard().ids_key, {"gone": 0})
    report = Wizard.objects.check()
    assert report.orphans == ["gone"]


def test_a_record_the_id_index_does_not_list_is_missing(storage) -> None:
    harry = Wizard.create(name="Harry")
    storage.native_client.zrem(_shard().ids_key, str(harry.pk))
    assert Wizard.objects.check().missing == [str(harry.pk)]


def test_an_orphan_stream_and_a_leftover_temporary_key_are_stray(storage) -> None:
    build = Build.create(stdout=b"out")
    collection = Build._meta.collection
    shard = Shard(collection, 0, 1)
    storage.native_client.delete(shard.record_key(str(build.pk)))  # the stream stays
    storage.native_client.set(shard.temp_key("leftover"), b"x")  # no expiry
    storage.native_client.set(shard.temp_key("in-use"), b"x", px=60_000)
    report = Build.objects.check()
    assert sorted(report.stray_keys) == sorted(
        [shard.stream_key(str(build.pk), "stdout"), shard.temp_key("leftover")]
    )


def test_reindex_repairs_what_check_found(storage) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor", age=17)
    storage.native_client.srem(_shard().index_key(eq_name("house", '"Gryffindor"')), str(harry.pk))
    storage.native_client.sadd(_shard().index_key(eq_name("house", '"Slytherin"')), str(harry.pk))
    Wizard.objects.reindex()
    assert Wizard.objects.check().ok


def test_check_reports_progress_per_batch(storage) -> None:
    for i in range(5):
        Wizard.create(name=f"w{i}")
    seen: list[int] = []
    Wizard.objects.check(batch_size=2, progress=seen.append)
    assert sum(seen) == 5 and max(seen) <= 2


def test_a_claim_no_record_justifies_is_an_orphan_claim(storage) -> None:
    # a claim left by a write that stopped between its steps (on a cluster,
    # claims are taken before the record is written), or by damage
    harry = Wizard.create(name="Harry", house="Gryffindor", age=17, wand="holly")
    client = storage.native_client
    client.hset(unique_key(Wizard._meta.collection), 'wand:"elder"', str(harry.pk))
    client.hset(unique_key(Wizard._meta.collection), 'wand:"yew"', "gone")
    report = Wizard.objects.check()
    assert sorted(report.orphan_claims) == [
        ("wand", '"elder"', str(harry.pk)),
        ("wand", '"yew"', "gone"),
    ]
    assert not report.ok
    assert report.stale == []  # the record itself is indexed right
    Wizard.objects.reindex()
    assert Wizard.objects.check().ok
    assert Wizard.create(name="Tom", house="Slytherin", age=16, wand="yew").wand == "yew"
