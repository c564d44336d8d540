"""What a new user trips on (tracker issue 10, and issue 9 item 7), in
queries: DateTime bounds given as text, ordering by a field without an order,
the dangling-pointer warning, the cost of filtering an unindexed field, and
Decimal's special values.

Each test failed before its fix.  Every test runs on the memory and redis
backends (the ``storage`` fixture).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from typing import Any

import pytest

from repocket import ActiveRecord, attributes
from repocket.errors import ValidationError
from repocket.resultset import ResultSet
from repocket.storage import Storage

UTC = dt.timezone.utc


# -- 6. DateTime lookups take ISO 8601 text, and never come back silently empty --


class Member(ActiveRecord):
    name = attributes.Unicode()
    joined = attributes.DateTime(null=True)
    left = attributes.DateTime(null=True, index=False)


FEBRUARY = ["joined__gte", "left__gte"]


def members(aware: bool) -> None:
    """31 members, joined and left on 2024-01-20 ... 2024-02-19 (19 in February)."""
    for day in range(31):
        when = dt.datetime(2024, 1, 20, 12) + dt.timedelta(days=day)
        if aware:
            when = when.replace(tzinfo=UTC)
        Member.create(name=f"m{day}", joined=when, left=when)


@pytest.mark.parametrize("lookup", FEBRUARY)
def test_iso_text_bounds_match_aware_datetimes(storage: Storage, lookup: str) -> None:
    members(aware=True)
    for bound in (
        dt.datetime(2024, 2, 1, tzinfo=UTC),
        "2024-02-01T00:00:00+00:00",
        "2024-02-01T00:00:00Z",
        "2024-02-01T01:00:00+01:00",
    ):
        assert Member.objects.filter(**{lookup: bound}).count() == 19
        assert len(list(Member.objects.filter(**{lookup: bound}))) == 19


@pytest.mark.parametrize("lookup", FEBRUARY)
def test_iso_text_bounds_match_naive_datetimes(storage: Storage, lookup: str) -> None:
    members(aware=False)
    for bound in (dt.datetime(2024, 2, 1), "2024-02-01", "2024-02-01T00:00:00"):
        assert Member.objects.filter(**{lookup: bound}).count() == 19
        assert len(list(Member.objects.filter(**{lookup: bound}))) == 19


@pytest.mark.parametrize("lookup", FEBRUARY)
def test_a_naive_bound_on_aware_datetimes_is_an_error_not_an_empty_result(
    storage: Storage, lookup: str
) -> None:
    members(aware=True)
    field = lookup.split("__")[0]
    for bound in ("2024-02-01", dt.datetime(2024, 2, 1)):
        query = Member.objects.filter(**{lookup: bound})
        for use in (
            query.count,
            query.exists,
            query.first,
            lambda: list(query),  # noqa: B023 - called at once
            lambda: Member.objects.get(**{lookup: bound}),  # noqa: B023
        ):
            with pytest.raises(ValidationError) as info:
                use()
            error = info.value
            assert (error.model, error.field) == ("Member", field)
            assert error.value == dt.datetime(2024, 2, 1)
            message = str(error)
            assert f"Member.{field}" in message and "2024-02-01T00:00:00" in message
            assert "naive" in message and "aware" in message and "+00:00" in message


@pytest.mark.parametrize("lookup", FEBRUARY)
def test_an_aware_bound_on_naive_datetimes_is_an_error_not_an_empty_result(
    storage: Storage, lookup: str
) -> None:
    members(aware=False)
    with pytest.raises(ValidationError, match=r"Member\.\w+ holds only naive datetimes"):
        Member.objects.filter(**{lookup: "2024-02-01T00:00:00+00:00"}).count()


@pytest.mark.parametrize("lookup", FEBRUARY)
def test_an_empty_result_of_the_right_kind_of_bound_is_just_empty(
    storage: Storage, lookup: str
) -> None:
    assert Member.objects.filter(**{lookup: "2024-02-01"}).count() == 0  # no records at all
    members(aware=True)
    assert Member.objects.filter(**{lookup: "2030-01-01T00:00:00+00:00"}).count() == 0
    assert list(Member.objects.filter(**{lookup: "2030-01-01T00:00:00+00:00"})) == []
    # a narrower lookup emptying the result says nothing about the bound
    assert Member.objects.filter(name="nobody", **{lookup: "2024-02-01T00:00Z"}).count() == 0


@pytest.mark.parametrize("lookup", FEBRUARY)
def test_mixed_data_matches_the_values_of_the_bounds_kind(storage: Storage, lookup: str) -> None:
    members(aware=True)
    Member.create(name="naive", joined=dt.datetime(2024, 2, 5), left=dt.datetime(2024, 2, 5))
    assert [m.name for m in Member.objects.filter(**{lookup: "2024-02-01"})] == ["naive"]
    assert Member.objects.filter(**{lookup: "2024-02-01T00:00Z"}).count() == 19


# -- 7. ordering by a field whose values have no order ---------------------------------


class Shelf(ActiveRecord):
    label = attributes.Unicode()
    doc = attributes.JSON(null=True)
    raw = attributes.Bytes()
    writer = attributes.Pointer("Member", null=True)


@pytest.mark.parametrize("spec", ["doc", "-doc"])
def test_ordering_by_a_json_field_is_refused_when_the_query_is_built(
    storage: Storage, spec: str
) -> None:
    Shelf.create(label="a", doc={"a": 1})
    Shelf.create(label="b", doc={"b": 2})
    for build in (
        lambda: Shelf.objects.order_by(spec),
        lambda: Shelf.objects.filter(label="a").order_by("label", spec),
    ):
        with pytest.raises(ValidationError) as info:
            build()
        assert (info.value.model, info.value.field) == ("Shelf", "doc")
        assert "Shelf.doc" in str(info.value) and "JSON" in str(info.value)


def test_bytes_and_pointers_still_order(storage: Storage) -> None:
    first, second = Member.create(name="a"), Member.create(name="b")
    Shelf.create(label="x", raw=b"\x02", writer=second)
    Shelf.create(label="y", raw=b"\x01", writer=first)
    assert [s.label for s in Shelf.objects.order_by("raw")] == ["y", "x"]
    by_key = sorted([("x", str(second.id)), ("y", str(first.id))], key=lambda p: p[1])
    assert [s.label for s in Shelf.objects.order_by("writer")] == [label for label, _ in by_key]


# -- 8. a deleted target is reported once per query, not once per record --------------


class Article(ActiveRecord):
    title = attributes.Unicode()
    author = attributes.Pointer(Member, null=True)


def dangling(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "no longer exists" in r.getMessage()]


def test_a_deleted_target_is_reported_once_per_query(
    storage: Storage, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ResultSet, "batch_size", 3)  # the 7 posts load in 3 batches
    gone, other, kept = Member.create(name="gone"), Member.create(name="other"), Member.create()
    for i in range(7):
        Article.create(title=f"p{i}", author=gone)
    Article.create(title="o", author=other)
    Article.create(title="k", author=kept)
    gone.delete()
    other.delete()
    with caplog.at_level(logging.WARNING, logger="repocket"):
        loaded = list(Article.objects.all())
    assert len(loaded) == 9
    messages = dangling(caplog)
    assert len(messages) == 2, messages
    assert sum(str(gone.id) in m for m in messages) == 1
    assert sum(str(other.id) in m for m in messages) == 1
    assert all("Article.author" in m for m in messages)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="repocket"):
        assert Article.objects.get(title="p3").author is None
        assert len(Article.objects.filter(author=gone)) == 7
    assert len(dangling(caplog)) == 2  # once per query, each query reports it

    caplog.clear()
    ids = [article.id for article in loaded]
    with caplog.at_level(logging.WARNING, logger="repocket"):
        assert len(Article.objects.get_many(ids)) == 9  # 3 batches of 3
    assert len(dangling(caplog)) == 2


# -- 9. filtering an unindexed field says what it costs, once ------------------------


def scans(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "repocket" and r.levelno == logging.WARNING and "every" in r.getMessage()
    ]


def test_filtering_an_unindexed_field_warns_once_per_model_and_field(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    class Visitor(ActiveRecord):
        name = attributes.Unicode()
        note = attributes.Unicode(index=False)
        mood = attributes.Unicode(index=False)
        token = attributes.Bytes()

    Visitor.create(name="a", note="x", mood="ok", token=b"t")
    with caplog.at_level(logging.WARNING, logger="repocket"):
        assert Visitor.objects.filter(note="x").count() == 1
        assert list(Visitor.objects.filter(note="y")) == []
        assert Visitor.objects.exclude(note="x").count() == 0
        assert Visitor.objects.get(note="x").name == "a"
    [message] = scans(caplog)
    assert "Visitor.note" in message
    assert "reads every Visitor record" in message
    assert "index=True" in message

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="repocket"):
        assert Visitor.objects.filter(mood="ok", token=b"t").count() == 1
        assert Visitor.objects.filter(token=b"t").count() == 1
    mood, token = scans(caplog)  # one message per field, the first time only
    assert mood.startswith("Visitor.mood has no equality index")
    assert token.startswith("Visitor.token has no equality index")


def test_indexed_and_narrowed_queries_do_not_warn(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    class Guest(ActiveRecord):
        name = attributes.Unicode()
        age = attributes.Integer(null=True)
        note = attributes.Unicode(index=False)

    guest = Guest.create(name="a", age=3, note="x")
    with caplog.at_level(logging.WARNING, logger="repocket"):
        assert Guest.objects.filter(name="a", note="x").count() == 1  # narrowed by name
        assert Guest.objects.filter(age__gte=1).exclude(note="y").count() == 1
        assert Guest.objects.filter(id=guest.id, note="x").count() == 1  # read by id
        assert Guest.objects.filter(name__ne="b").count() == 1
        assert list(Guest.objects.all().order_by("note")) == [guest]
    assert scans(caplog) == []


def test_the_warning_says_how_to_index_other_lookups(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    class Entry(ActiveRecord):
        name = attributes.Unicode()
        doc = attributes.JSON(null=True)

    Entry.create(name="abc", doc={"a": 1})
    with caplog.at_level(logging.WARNING, logger="repocket"):
        assert Entry.objects.filter(name__startswith="ab").count() == 1
        assert Entry.objects.filter(doc={"a": 1}).count() == 1
    prefix, json_field = scans(caplog)
    assert "Entry.name" in prefix and 'index="prefix"' in prefix
    assert "Entry.doc" in json_field and "cannot be indexed" in json_field


# -- 10. (issue 9 item 7) Decimal special values through storage and queries -----------


class Invoice(ActiveRecord):
    label = attributes.Unicode()
    amount = attributes.Decimal(null=True)
    plain = attributes.Decimal(null=True, index=False)


SPECIALS = ["NaN", "Infinity", "-Infinity", "-0", "1", "2.5"]


def invoices() -> None:
    for text in SPECIALS:
        Invoice.create(label=text, amount=text, plain=text)
    Invoice.create(label="None")


def labels(query: Any) -> list[str]:
    return sorted(record.label for record in query)


@pytest.mark.parametrize("field", ["amount", "plain"])
def test_decimal_special_values_survive_save_and_load(storage: Storage, field: str) -> None:
    invoices()
    for record in Invoice.objects.all():
        value = getattr(record, field)
        if record.label == "None":
            assert value is None
        elif record.label == "NaN":
            assert value.is_qnan()
        else:
            assert str(value) == record.label  # -0 keeps its sign


@pytest.mark.parametrize("field", ["amount", "plain"])
def test_decimal_special_values_through_filter_and_exclude(storage: Storage, field: str) -> None:
    invoices()
    objects = Invoice.objects
    everything = sorted([*SPECIALS, "None"])
    assert labels(objects.filter(**{f"{field}__ne": 1})) == sorted(set(everything) - {"1"})
    assert labels(objects.exclude(**{field: 1})) == sorted(set(everything) - {"1"})
    assert objects.filter(**{f"{field}__ne": 1}).count() == 6
    assert labels(objects.filter(**{field: 0})) == ["-0"]
    assert labels(objects.filter(**{field: "-0"})) == ["-0"]
    assert labels(objects.filter(**{field: "NaN"})) == []  # NaN equals nothing
    assert labels(objects.filter(**{f"{field}__in": ["NaN", "Infinity"]})) == ["Infinity"]
    assert labels(objects.filter(**{f"{field}__gt": 2})) == ["2.5", "Infinity"]
    assert labels(objects.filter(**{f"{field}__lt": -(10**30)})) == ["-Infinity"]
    assert labels(objects.exclude(**{f"{field}__gte": 0})) == ["-Infinity", "NaN", "None"]
    assert objects.exclude(**{f"{field}__gte": 0}).count() == 3
    for record in objects.all():
        assert record.matches({field: 1}) is (record.label == "1")
    with pytest.raises(ValidationError, match=rf"Invoice\.{field}.*signalling NaN"):
        objects.filter(**{f"{field}__ne": "sNaN"})


@pytest.mark.parametrize("field", ["amount", "plain"])
def test_decimal_special_values_through_order_by(storage: Storage, field: str) -> None:
    invoices()
    ordered = [r.label for r in Invoice.objects.order_by(field)]
    # None and NaN sort before every value (ties by id), then by value
    assert sorted(ordered[:2]) == ["NaN", "None"]
    assert ordered[2:] == ["-Infinity", "-0", "1", "2.5", "Infinity"]
    descending = [r.label for r in Invoice.objects.order_by(f"-{field}")]
    assert descending[:5] == ["Infinity", "2.5", "1", "-0", "-Infinity"]
    assert sorted(descending[5:]) == ["NaN", "None"]


def test_a_signalling_nan_stored_before_it_was_refused_never_breaks_a_query(
    storage: Storage,
) -> None:
    invoices()
    legacy = Invoice(label="sNaN")
    legacy._values["amount"] = legacy._values["plain"] = decimal.Decimal("sNaN")
    legacy.save()  # as an older repocket could
    for field in ("amount", "plain"):
        assert "sNaN" in labels(Invoice.objects.filter(**{f"{field}__ne": 1}))
        assert "sNaN" in labels(Invoice.objects.exclude(**{field: 1}))
        assert "sNaN" not in labels(Invoice.objects.filter(**{f"{field}__gte": 0}))
        assert [r.label for r in Invoice.objects.order_by(field)][-1] == "Infinity"
    assert Invoice.objects.get(label="sNaN").matches({"amount": 1}) is False
