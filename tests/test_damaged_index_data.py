"""Damaged index data (the remembered entries of a record) never makes a
record impossible to update or delete, and check()/reindex() see and repair
it; on the memory and redis backends."""

from __future__ import annotations

import pytest

from repocket.testing.query_models import Wizard

DAMAGED = [b"{not json", b"[[1, 2, 3]]", b'"text"', b"[[\"odd\"]]", b"\xff\xfe"]


def _damage(storage, wizard: Wizard, text: bytes) -> None:
    shard = Wizard._meta.collection.shard(0, 1)
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
