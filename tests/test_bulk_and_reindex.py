"""bulk_create's refusals say exactly what was written, and reindex() touches
only the keys of its own model, on the memory and redis backends."""

from __future__ import annotations

import pytest

from repocket import ActiveRecord, attributes, errors
from repocket.backends.layout import meta_patterns
from repocket.testing.query_models import Wizard


class Victim(ActiveRecord):
    """A model whose index key names hold a user value that looks like
    another model's key prefix."""

    tag = attributes.Unicode()


class Note(ActiveRecord):
    """The model that is reindexed next to the victim."""

    text = attributes.Unicode()


def test_bulk_create_refuses_a_record_of_another_model_and_writes_nothing(storage) -> None:
    with pytest.raises(errors.ValidationError, match=r"item 1 is Note\(") as caught:
        Wizard.objects.bulk_create([Wizard(name="Harry"), Note(text="x")])
    assert caught.value.model == "Wizard"
    assert Wizard.objects.count() == 0
    assert Note.objects.count() == 0


def test_a_refused_bulk_create_says_which_records_were_written(storage) -> None:
    Wizard.create(name="Owner", wand="holly")
    wizards = [Wizard(name=f"w{i}", wand=f"wand {i}") for i in range(5)]
    wizards[3].wand = "holly"
    with pytest.raises(errors.UniqueViolation) as caught:
        Wizard.objects.bulk_create(wizards, batch_size=2)
    error = caught.value
    # batch 1 (w0, w1) written; batch 2 (w2, w3) refused w3; batch 3 never sent
    written = [w.name for w in error.written]  # type: ignore[attr-defined]
    stored = sorted(w.name for w in Wizard.objects.all() if w.name != "Owner")
    assert written == stored
    assert {"w0", "w1"} <= set(written)
    assert "w3" not in written and "w4" not in written
    assert f"bulk_create wrote {len(written)} of the 5 records" in str(error)
    assert "Wizard.wand must be unique: 'holly'" in str(error)
    assert error.field == "wand" and error.value == "holly"
    # what was written is saved, what was not has no id
    assert all(w.pk is not None for w in error.written)  # type: ignore[attr-defined]
    assert wizards[3].pk is None and wizards[4].pk is None


def test_reindex_never_touches_another_models_index(storage) -> None:
    victim = Victim.create(tag=f":{Note.__module__}:Note:")
    Note.create(text="hello")
    Note.objects.reindex()
    assert [v.pk for v in Victim.objects.filter(tag=victim.tag)] == [victim.pk]
    assert Victim.objects.check().ok
    assert Note.objects.filter(text="hello").count() == 1


def test_drop_patterns_match_only_the_models_own_keys(storage) -> None:
    Victim.create(tag=f":{Note.__module__}:Note:*")
    Note.create(text="hello")
    client = storage.native_client
    victim_keys = {
        key
        for key in client.scan_iter(match="repocket::*")
        if b"Victim" in key  # the victim's own meta keys
    }
    for pattern in meta_patterns(Note._meta.collection):
        matched = set(client.scan_iter(match=pattern))
        assert not matched & victim_keys, pattern
