"""The per-query matchers give the same answers as lookup_matches()."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from repocket import attributes
from repocket.query import Lookup, lookup_matcher, lookup_matches

INTEGER = attributes.Integer(null=True)
UNICODE = attributes.Unicode(null=True)
OPS = ["eq", "ne", "gt", "gte", "lt", "lte"]


@given(
    op=st.sampled_from([*OPS, "in"]),
    actual=st.none() | st.integers(),
    expected=st.none() | st.integers(),
    others=st.lists(st.none() | st.integers(), max_size=3),
)
def test_integer_matchers_agree_with_lookup_matches(op, actual, expected, others) -> None:
    if op in ("gt", "gte", "lt", "lte") and expected is None:
        expected = 0  # a range lookup always has a bound
    value = (expected, *others) if op == "in" else expected
    lookup = Lookup("n", op, value)
    assert lookup_matcher(INTEGER, lookup)(actual) == lookup_matches(INTEGER, actual, lookup)


@given(
    op=st.sampled_from([*OPS, "in", "startswith"]),
    actual=st.none() | st.text(max_size=4),
    expected=st.none() | st.text(max_size=4),
    others=st.lists(st.none() | st.text(max_size=4), max_size=3),
)
def test_unicode_matchers_agree_with_lookup_matches(op, actual, expected, others) -> None:
    if op in ("gt", "gte", "lt", "lte", "startswith") and expected is None:
        expected = ""
    value = (expected, *others) if op == "in" else expected
    lookup = Lookup("s", op, value)
    assert lookup_matcher(UNICODE, lookup)(actual) == lookup_matches(UNICODE, actual, lookup)
