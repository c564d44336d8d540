"""Hypothesis strategies for every attribute type, and exact comparisons.

Used by the conformance suite's round trips (:mod:`repocket.testing.suite`)
and by repocket's own envelope tests.  Importing this module needs
``hypothesis``.

"Exactly" is stricter than ``==``: floats are compared bit for bit (``-0.0``,
NaN payloads), decimals by sign, digits and exponent, datetimes by wall time,
UTC offset and naive-ness, JSON documents by type as well as value
(``1``, ``1.0`` and ``True`` are different documents).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import struct
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "texts",
    "binaries",
    "integers",
    "floats",
    "decimals",
    "fixed_offsets",
    "datetimes",
    "uuids",
    "json_documents",
    "same_float",
    "same_decimal",
    "same_datetime",
    "same_json",
    "same_exact",
]

# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

SURROGATES = st.characters(categories=["Cs"])

# Any Python string: ordinary text, plus lone and adjacent surrogates (a high
# surrogate followed by a low one must not come back as one astral character).
texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.characters(), SURROGATES)).map("".join),
    st.lists(st.sampled_from(["\ud83d", "\ude00", "\ud800", "\udfff", "\U0001f600", "a"])).map(
        "".join
    ),
)

binaries = st.one_of(
    st.binary(),  # mostly not valid UTF-8
    st.text().map(lambda text: text.encode("utf-8")),
    st.sampled_from([b"", b"\xff", b"\xed\xa0\x80", b"\xc0\x80", b"\x00", b"=="]),
)

integers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**64) - 2, max_value=-(2**63) + 2),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=-(2**4000), max_value=2**4000),
)


def _float_from_bits(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


floats = st.one_of(
    st.floats(),
    st.integers(min_value=0, max_value=2**64 - 1).map(_float_from_bits),  # any bit pattern
    st.integers(min_value=1, max_value=2**52 - 1).flatmap(  # NaNs with payloads, both signs
        lambda payload: st.sampled_from(
            [
                _float_from_bits(0x7FF0_0000_0000_0000 | payload),
                _float_from_bits(0xFFF0_0000_0000_0000 | payload),
            ]
        )
    ),
    st.sampled_from(
        [
            0.0,
            -0.0,
            math.inf,
            -math.inf,
            math.nan,
            -math.nan,
            5e-324,
            -5e-324,
            1.7976931348623157e308,
            2.2250738585072014e-308,
        ]
    ),
)

decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(  # 30 significant digits, any sign and exponent
        lambda sign, digits, exponent: decimal.Decimal((sign, tuple(digits), exponent)),
        st.integers(0, 1),
        st.lists(st.integers(0, 9), min_size=30, max_size=30),
        st.integers(-60, 60),
    ),
    st.sampled_from(
        [
            "NaN",
            "-NaN",
            "NaN123",
            "sNaN",
            "-sNaN42",
            "Infinity",
            "-Infinity",
            "0",
            "-0",
            "0E-30",
            "0.000",
            "1E+5",
            "-1.10",
        ]
    ).map(decimal.Decimal),
)

_MAX_OFFSET_US = 24 * 3600 * 10**6 - 1
fixed_offsets = st.one_of(
    st.sampled_from(
        [
            dt.timedelta(hours=5, minutes=45),
            dt.timedelta(hours=-3, minutes=-30),
            dt.timedelta(hours=-9, minutes=-30),
            dt.timedelta(hours=12, minutes=45),
            dt.timedelta(hours=14),
            dt.timedelta(hours=-12),
            dt.timedelta(0),
            dt.timedelta(hours=5, minutes=41, seconds=16),
        ]
    ),
    st.integers(min_value=-24 * 60 + 1, max_value=24 * 60 - 1).map(
        lambda minutes: dt.timedelta(minutes=minutes)
    ),
    st.integers(min_value=-_MAX_OFFSET_US, max_value=_MAX_OFFSET_US).map(
        lambda us: dt.timedelta(microseconds=us)
    ),
).map(dt.timezone)

datetimes = st.one_of(
    st.datetimes(),  # naive
    st.datetimes(timezones=fixed_offsets),
    st.datetimes(timezones=st.timezones()),  # named zones: stored as their offset then
).map(lambda value: value.replace(fold=0))

uuids = st.uuids()

json_documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=20,
)

# ---------------------------------------------------------------------------
# Exact comparisons
# ---------------------------------------------------------------------------


def same_float(a: Any, b: Any) -> bool:
    return type(a) is float and type(b) is float and struct.pack("<d", a) == struct.pack("<d", b)


def same_decimal(a: Any, b: Any) -> bool:
    return (
        type(a) is decimal.Decimal
        and type(b) is decimal.Decimal
        and a.as_tuple() == b.as_tuple()
        and str(a) == str(b)
    )


def same_datetime(a: Any, b: Any) -> bool:
    """Same wall time, same UTC offset (so the same instant), same naive-ness."""
    return (
        type(a) is dt.datetime
        and type(b) is dt.datetime
        and (a.tzinfo is None) == (b.tzinfo is None)
        and a.replace(tzinfo=None) == b.replace(tzinfo=None)
        and a.utcoffset() == b.utcoffset()
    )


def same_json(a: Any, b: Any) -> bool:
    """Equal JSON documents, types included (``1 != 1.0 != True`` here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return same_float(a, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)


def same_exact(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b
