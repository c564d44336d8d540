"""What a new user trips on (tracker issue 10), on records: the simple form of
a JSON field, assigning a misspelt field, a Pointer to a misspelt model name,
a default the field cannot hold, and Decimal's signalling NaN.

Each test failed before its fix.  Those that store records run on the memory
and redis backends (the ``storage`` fixture).
"""

from __future__ import annotations

import decimal
import functools
import json
from typing import Any

import pytest

from repocket import ActiveRecord, attributes
from repocket.errors import (
    RepocketActiveRecordDefinitionError,
    UnknownFieldError,
    ValidationError,
)
from repocket.storage import Storage


class Writer(ActiveRecord):
    name = attributes.Unicode()


class Note(ActiveRecord):
    title = attributes.Unicode()
    meta = attributes.JSON(null=True)
    log = attributes.ByteStream()
    writer = attributes.Pointer(Writer, null=True)
    per_page = 20  # a plain class value, not a field

    @property
    def shout(self) -> str:
        """A property with a setter: assignable as Python allows."""
        return self.title.upper()

    @shout.setter
    def shout(self, value: str) -> None:
        self.title = value.lower()

    def summary(self) -> str:
        return self.title

    @classmethod
    def kind(cls) -> str:
        return cls.__name__

    @functools.cached_property
    def words(self) -> int:
        return len(self.title.split())


# -- 1. to_dict(simple=True) gives a JSON field's decoded value ---------------


DOC = {"yay": "this is json baby!", "n": [1, 2.5, None, True]}


def test_to_dict_simple_gives_a_json_field_as_its_decoded_value() -> None:
    data = Note(title="hi", meta=DOC).to_dict(simple=True)
    assert data["meta"] == DOC
    json.dumps(data, default=str)  # the id is a UUID; everything else is JSON data


def test_to_dict_simple_of_a_json_field_is_a_copy() -> None:
    note = Note(meta={"tags": ["a"]})
    note.to_dict()["meta"]["tags"].append("b")
    assert note.meta == {"tags": ["a"]}


def test_json_to_python_simple_is_the_value_and_the_envelope_keeps_the_text() -> None:
    assert attributes.JSON().to_python(DOC, simple=True) == DOC
    assert attributes.JSON().to_python(None, simple=True) is None
    assert attributes.JSON().to_python(DOC, simple=False)["value"] == json.dumps(DOC)


def test_a_loaded_json_field_is_decoded_by_to_dict_and_stored_as_json_text(
    storage: Storage,
) -> None:
    note = Note.create(title="hi", meta=DOC)
    loaded = Note.objects.get(id=note.id)
    assert loaded.to_dict()["meta"] == DOC
    assert loaded.to_dict(simple=False)["meta"]["value"] == json.dumps(DOC)
    stored = storage.load_record(Note._collection, str(note.id), ())
    assert stored is not None
    assert json.loads(stored.fields["meta"])["value"] == json.dumps(DOC)


# -- 3. assigning a name that is not a field --------------------------------------


def test_assigning_a_misspelt_field_names_the_model_the_name_and_the_fields() -> None:
    note = Note(title="Old")
    with pytest.raises(UnknownFieldError) as info:
        note.tittle = "New"  # type: ignore[attr-defined]
    error = info.value
    assert (error.model, error.field, error.value) == ("Note", "tittle", "New")
    assert "Note has no field 'tittle'" in str(error)
    assert "id, title, meta, log, writer" in str(error)
    assert "tittle" not in vars(note)
    assert note.title == "Old"


def test_setattr_with_an_unknown_name_is_refused_like_the_constructor() -> None:
    name = "tittle"
    with pytest.raises(UnknownFieldError, match="Note has no field 'tittle'"):
        setattr(Note(), name, "New")
    with pytest.raises(UnknownFieldError, match="Note has no field 'tittle'"):
        Note(tittle="New")


def test_assigning_over_a_method_is_refused() -> None:
    note = Note()
    names = ("save", "summary", "kind", "append_log", "objects", "DoesNotExist", "to_dict")
    for name in names:
        with pytest.raises(UnknownFieldError, match=rf"Note\.{name} is .*not a field") as info:
            setattr(note, name, lambda: None)
        assert (info.value.model, info.value.field) == ("Note", name)
        assert name not in vars(note)
    assert note.summary() == ""


def test_fields_private_names_properties_and_class_values_stay_assignable() -> None:
    note = Note()
    note.title = "Hello"
    note._scratch = 1  # type: ignore[attr-defined]
    note.shout = "LOUD"
    note.per_page = 50
    note.words = 7  # a cached_property may be set, as Python allows
    assert (note.title, note._scratch, note.per_page, Note.per_page) == ("loud", 1, 50, 20)
    assert note.words == 7
    with pytest.raises(AttributeError):
        note.pk = 1  # type: ignore[misc]  # a read-only property, as Python says


def test_a_subclass_init_may_set_its_own_state_before_the_fields() -> None:
    class CachedNote(Note):
        def __init__(self, **kw: Any) -> None:
            self._cache: dict[str, int] = {}
            super().__init__(**kw)

    note = CachedNote(title="t")
    assert (note._cache, note.title) == ({}, "t")


def test_a_field_assignment_still_validates() -> None:
    with pytest.raises(ValidationError, match=r"Note\.title"):
        Note().title = 5


def test_records_built_and_loaded_do_not_trip_the_check(storage: Storage) -> None:
    writer = Writer.create(name="w")
    note = Note.create(title="t", meta=[1], writer=writer)
    note.append_log(b"line\n")
    loaded = Note.objects.get(id=note.id)
    loaded.title = "changed"
    loaded.save()
    assert Note.objects.get(id=note.id).title == "changed"


# -- 4. a Pointer naming no model -------------------------------------------------


def test_a_pointer_to_a_misspelt_model_is_a_definition_error_on_first_use() -> None:
    class Misspelt(ActiveRecord):
        writer = attributes.Pointer("Wirter", null=True)

    with pytest.raises(RepocketActiveRecordDefinitionError) as info:
        Misspelt(writer=Writer(name="w"))
    assert not isinstance(info.value, ValidationError)
    assert "Misspelt.writer" in str(info.value)
    assert "no model named 'Wirter'" in str(info.value)


def test_a_pointer_to_a_misspelt_model_is_a_definition_error_in_a_lookup(
    storage: Storage,
) -> None:
    class MisspeltToo(ActiveRecord):
        writer = attributes.Pointer("Wirter", null=True)

    with pytest.raises(RepocketActiveRecordDefinitionError, match="no model named 'Wirter'"):
        MisspeltToo.objects.filter(writer=Writer(name="w")).count()
    with pytest.raises(RepocketActiveRecordDefinitionError, match="no model named 'Wirter'"):
        MisspeltToo().matches({"writer": "abc"})


# -- 5. defaults are checked when the class is defined -----------------------------


@pytest.mark.parametrize(
    ("field", "default"),
    [
        (attributes.Integer, "x"),
        (attributes.Float, "lots"),
        (attributes.Decimal, "one"),
        (attributes.Decimal, "sNaN"),
        (attributes.DateTime, "yesterday"),
        (attributes.UUID, "not-a-uuid"),
        (attributes.Unicode, 5),
        (attributes.JSON, {1: "non-string key"}),
    ],
)
def test_a_default_the_field_cannot_hold_is_a_definition_error(field: Any, default: Any) -> None:
    with pytest.raises(RepocketActiveRecordDefinitionError) as info:

        class Defaulted(ActiveRecord):
            value = field(default=default)

    message = str(info.value)
    assert "Defaulted.value" in message
    assert repr(default) in message


def test_defaults_the_field_can_hold_are_accepted_and_callables_are_called_later() -> None:
    calls: list[int] = []

    def counter() -> int:
        calls.append(1)
        return len(calls)

    class Defaults(ActiveRecord):
        number = attributes.Integer(default="7")
        when = attributes.DateTime(default="2024-02-01T10:00:00+00:00")
        doc = attributes.JSON(default=dict)
        seq = attributes.Integer(default=counter)

    assert calls == []
    first = Defaults()
    assert (first.number, first.when.year, first.doc, first.seq) == (7, 2024, {}, 1)
    assert Defaults().seq == 2


def test_a_callable_default_returning_a_bad_value_is_a_validation_error() -> None:
    class LateDefault(ActiveRecord):
        number = attributes.Integer(default=functools.partial(str, "x"))

    with pytest.raises(ValidationError, match=r"LateDefault\.number"):
        LateDefault()


# -- 10. Decimal: a signalling NaN is refused when assigned --------------------------


class Price(ActiveRecord):
    amount = attributes.Decimal(null=True)


@pytest.mark.parametrize("value", ["sNaN", "-sNaN42", decimal.Decimal("sNaN")])
def test_a_signalling_nan_is_refused_when_assigned(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Price(amount=value)
    assert (info.value.model, info.value.field) == ("Price", "amount")
    assert "signalling NaN" in str(info.value)
    with pytest.raises(ValidationError, match=r"Price\.amount"):
        Price().amount = value


def test_matches_never_raises_for_decimal_special_values() -> None:
    for text in ("NaN", "Infinity", "-Infinity", "-0"):
        record = Price(amount=text)
        assert record.matches({"amount": 1}) is False
        assert record.matches({"amount": "sNaN"}) is False  # a value it cannot hold
    assert Price(amount="-0").matches({"amount": 0}) is True
    assert Price(amount="NaN").matches({"amount": "NaN"}) is False  # NaN equals nothing
