"""Lookups: parsing ``field__op=value``, compiling them to index plans, and
checking them against loaded records.

Supported lookups (``filter(**kw)``, ``exclude(**kw)``, ``get(**kw)``):

======================  ==========================================  ==================
lookup                  meaning                                     fields
======================  ==========================================  ==================
``f=v``                 equal (``None`` matches no value)           every type
``f__ne=v``             not equal                                   every type
``f__in=[...]``         equal to one of the values                  every type
``f__gt=v`` ...         ``__gt``, ``__gte``, ``__lt``, ``__lte``    Integer, Float,
                                                                    Decimal, DateTime
``f__startswith=s``     text starts with ``s``                      Unicode
======================  ==========================================  ==================

A Pointer is matched by a model instance, its id or its record key.  Values
are cast to the field's type first, so a bad value is a
:class:`~repocket.errors.ValidationError` naming the field.

Every lookup compiles to a :class:`~repocket.storage.Plan` over the index
entries of :mod:`repocket.indexes`.  When a field lacks the index a lookup
needs (``index=False``, a JSON or ByteStream field, ``__startswith`` without
``index="prefix"``), the plan covers every record and the lookup is applied to
the loaded records instead: always correct, but it reads every record of the
model.  Loaded records are always checked against every lookup, so a result
is never wrong even where an index is approximate.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import errors
from .attributes import Attribute, Integer, Pointer, Unicode, a_or_an
from .indexes import (
    PREFIX_LENGTH,
    class_name,
    eq_name,
    inexact_name,
    prefix_name,
    range_name,
    term_for,
)
from .pointers import expected_pointer_key, pointer_key
from .storage import AllIds, Difference, Intersection, Members, Plan, ScoreRange, Union

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .model import ActiveRecord

__all__ = [
    "F",
    "Q",
    "Condition",
    "parse_condition",
    "condition_matcher",
    "Lookup",
    "parse_lookups",
    "prepare_value",
    "lookup_matches",
    "lookup_matcher",
    "Compiled",
    "compile_lookups",
    "inexact_guard",
    "warn_full_scan",
]

RANGE_OPS = frozenset({"gt", "gte", "lt", "lte"})
OPS = frozenset({"eq", "ne", "in", "startswith"}) | RANGE_OPS
_NOTHING = Union(())

logger = logging.getLogger("repocket")


@dataclass(frozen=True)
class Lookup:
    """One prepared condition: field, operator and value(s) cast to the field's type."""

    field: str
    op: str
    value: Any


class F:
    """A field's own value in :meth:`ResultSet.update() <repocket.resultset.ResultSet.update>`:
    ``qs.update(views=F("views") + 1)``.

    ``F(name) + n`` and ``F(name) - n`` (``n`` an int, float or Decimal)
    add to a numeric field's stored value.  Each record's new value is
    computed from its stored value and written only if that value is still
    stored (compare-and-set, as ``increment()`` does), so concurrent
    updates are never lost.  A ``None`` value stays ``None``.
    """

    __slots__ = ("name", "offset")

    def __init__(self, name: str, offset: Any = 0) -> None:
        self.name = name
        self.offset = offset

    def __add__(self, other: Any) -> F:
        if isinstance(other, bool) or not isinstance(other, (int, float, decimal.Decimal)):
            return NotImplemented
        return F(self.name, self.offset + other)

    __radd__ = __add__

    def __sub__(self, other: Any) -> F:
        if isinstance(other, bool) or not isinstance(other, (int, float, decimal.Decimal)):
            return NotImplemented
        return F(self.name, self.offset - other)

    def apply(self, value: Any) -> Any:
        """The new value of a field holding ``value``."""
        return None if value is None else value + self.offset

    def __repr__(self) -> str:
        if not self.offset:
            return f"F({self.name!r})"
        sign = "-" if self.offset < 0 else "+"
        return f"F({self.name!r}) {sign} {abs(self.offset)!r}"


class Q:
    """A condition to combine: ``Q(house="Gryffindor") | Q(age__gt=30)``.

    ``Q(**lookups)`` holds when all its lookups hold (as ``filter()``'s
    keywords); ``a | b`` when either holds, ``a & b`` when both do, ``~a``
    when ``a`` does not.  Give them to ``filter()`` and ``exclude()``
    (with or without keywords).  On indexed fields they are answered by
    unions, intersections and differences of index sets on the server; as
    with keywords, a lookup on a field without the index it needs makes
    the query read the model's records (and logs a warning).
    """

    __slots__ = ("children", "kind", "lookups")

    def __init__(self, *children: Q, **lookups: Any) -> None:
        for child in children:
            if not isinstance(child, Q):
                raise TypeError(f"Q() takes Q objects and keyword lookups, not {child!r}")
        self.kind = "and"
        self.children: tuple[Q, ...] = children
        self.lookups: dict[str, Any] = lookups

    @classmethod
    def _node(cls, kind: str, children: tuple[Q, ...]) -> Q:
        node = cls(*children)
        node.kind = kind
        return node

    def __or__(self, other: Q) -> Q:
        if not isinstance(other, Q):
            return NotImplemented
        return Q._node("or", (self, other))

    def __and__(self, other: Q) -> Q:
        if not isinstance(other, Q):
            return NotImplemented
        return Q._node("and", (self, other))

    def __invert__(self) -> Q:
        return Q._node("not", (self,))

    def __repr__(self) -> str:
        if self.kind == "not":
            return f"~{self.children[0]!r}"
        if self.kind == "or":
            return f"({' | '.join(map(repr, self.children))})"
        items = [repr(child) for child in self.children]
        items += [f"{name}={value!r}" for name, value in self.lookups.items()]
        if not self.children:
            return f"Q({', '.join(items)})"
        return f"({' & '.join(items)})"


@dataclass(frozen=True)
class Condition:
    """A :class:`Q` with its lookups parsed for one model: ``kind`` is
    ``"and"`` (``lookups`` and every child hold), ``"or"`` or ``"not"``."""

    kind: str
    lookups: tuple[Lookup, ...] = ()
    children: tuple[Condition, ...] = ()

    def all_lookups(self) -> Iterator[Lookup]:
        """Every lookup in the condition, at any depth."""
        yield from self.lookups
        for child in self.children:
            yield from child.all_lookups()


def parse_condition(model: type[ActiveRecord], q: Q) -> Condition:
    """``q`` with its lookups validated and cast for ``model`` (see
    :func:`parse_lookups` for the errors).

    :raises TypeError: ``q`` is not a :class:`Q` (``filter()`` takes
        conditions as Q objects and lookups as keywords).
    """
    if not isinstance(q, Q):
        raise TypeError(
            f"{model.__name__}.objects.filter() and exclude() take Q objects and keyword "
            f"lookups, not {type(q).__name__} {q!r}"
        )
    children = tuple(parse_condition(model, child) for child in q.children)
    return Condition(q.kind, parse_lookups(model, q.lookups), children)


def condition_matcher(model: type[ActiveRecord], condition: Condition) -> Callable[[Any], bool]:
    """A function telling whether a record's values (``record._values``)
    meet ``condition``."""
    fields = model._meta.fields
    checks = [(lk.field, lookup_matcher(fields[lk.field], lk)) for lk in condition.lookups]
    parts = [condition_matcher(model, child) for child in condition.children]
    if condition.kind == "not":
        (inner,) = parts
        return lambda values: not inner(values)
    if condition.kind == "or":
        return lambda values: any(part(values) for part in parts)
    return lambda values: (
        all(m(values[name]) for name, m in checks) and all(part(values) for part in parts)
    )


def _compile_condition(
    model: type[ActiveRecord], condition: Condition, loose: bool
) -> tuple[Plan, bool, set[str]]:
    """``(plan, exact, inexact fields)`` of a condition, as :func:`_compile`
    gives them for keywords: in ``loose`` mode a superset of the matches."""
    if condition.kind == "not":
        plan, exact, inexact = _compile_condition(model, condition.children[0], loose)
        if not exact or (loose and inexact):
            # a superset cannot be subtracted: every record is a candidate,
            # and the loaded ones are checked against the condition
            return AllIds(), False, inexact
        return Difference(AllIds(), plan), exact, inexact
    results = [_compile(model, condition.lookups, (), loose)] if condition.lookups else []
    results += [_compile_condition(model, child, loose) for child in condition.children]
    exact = all(r[1] for r in results)
    inexact = set().union(*(r[2] for r in results)) if results else set()
    plans = [r[0] for r in results]
    if condition.kind == "or":
        if not plans or any(isinstance(p, AllIds) for p in plans):
            return AllIds(), exact and bool(plans), inexact
        return (plans[0] if len(plans) == 1 else Union(tuple(plans))), exact, inexact
    return _intersect(plans), exact, inexact


@dataclass(frozen=True)
class Compiled:
    """A compiled query.

    :param plan: exactly the matching ids, provided ``exact`` holds and none
        of ``inexact_fields`` holds a value its index stores inexactly.
    :param loose: a superset of the matching ids in every case; the loaded
        records are then compared with the lookups.
    :param exact: whether ``plan`` can be exact at all (every lookup indexed).
    :param inexact_fields: range-indexed fields whose lookups are exact only
        while their ``inexact:`` entry is empty.
    """

    plan: Plan
    loose: Plan
    exact: bool
    inexact_fields: frozenset[str] = field(default_factory=frozenset)

    @property
    def guard(self) -> Plan | None:
        """The records whose inexact scores could make ``plan`` inexact:
        ``plan`` is exact while this denotes nothing (``None``: nothing to
        check)."""
        return inexact_guard(self.inexact_fields)

    @property
    def candidates(self) -> Plan:
        """A superset of the matches that is exactly them whenever
        :attr:`guard` is empty, needing no check first: ``plan`` plus the
        records of ``loose`` whose scores are inexact (confirmed on loading)."""
        if not self.exact:
            return self.loose
        guard = self.guard
        if guard is None:
            return self.plan
        return Union((self.plan, Intersection((self.loose, guard))))


def inexact_guard(fields: Iterable[str]) -> Plan | None:
    """The records holding an inexact score in any of ``fields``."""
    parts = tuple(Members(inexact_name(name)) for name in sorted(set(fields)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Union(parts)


def parse_lookups(model: type[ActiveRecord], kwargs: Mapping[str, Any]) -> tuple[Lookup, ...]:
    """Validate ``field__op=value`` keywords and cast their values.

    :raises UnknownFieldError: no such field or operator.
    :raises ValidationError: the operator does not apply to the field, or a
        value cannot be cast to the field's type.
    """
    return tuple(_parse_one(model, key, value) for key, value in kwargs.items())


def _parse_one(model: type[ActiveRecord], key: str, value: Any) -> Lookup:
    name, op = key, "eq"
    if key not in model._meta.fields and "__" in key:
        name, _, op = key.rpartition("__")
        if op not in OPS:
            raise errors.UnknownFieldError(
                f"{model.__name__} has no field {key!r} and {op!r} is not a lookup; "
                f"lookups are: {', '.join(sorted(OPS - {'eq'}))}",
                model=model.__name__,
                field=key,
                value=value,
            )
    attribute = model._field(name)
    label = f"{model.__name__}.{name}"
    if op in RANGE_OPS and "range" not in attribute.supported_indexes:
        raise errors.ValidationError(
            f"{label} is {a_or_an(type(attribute).__name__)} field; __{op} applies to Integer, "
            f"Float, Decimal and DateTime fields",
            model=model.__name__,
            field=name,
            value=value,
        )
    if op == "startswith" and not isinstance(attribute, Unicode):
        raise errors.ValidationError(
            f"{label}: __startswith applies to Unicode fields",
            model=model.__name__,
            field=name,
            value=value,
        )
    if op == "in":
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise errors.ValidationError(
                f"{label}__in takes a list of values, not {value!r}",
                model=model.__name__,
                field=name,
                value=value,
            )
        prepared: Any = tuple(prepare_value(model, attribute, item) for item in value)
    elif op in RANGE_OPS or op == "startswith":
        if value is None:
            raise errors.ValidationError(
                f"{label}__{op} needs a value, not None",
                model=model.__name__,
                field=name,
                value=value,
            )
        prepared = prepare_value(model, attribute, value)
    else:
        prepared = prepare_value(model, attribute, value)
    return Lookup(name, op, prepared)


def prepare_value(model: type[ActiveRecord], attribute: Attribute, value: Any) -> Any:
    """A lookup value in the field's terms (a Pointer's as a record key).

    :raises ValidationError: the value cannot be cast to the field's type.
    """
    if isinstance(attribute, Pointer):
        return expected_pointer_key(attribute, value)
    if value is None:
        return None
    return attribute.clean(value, model.__name__)


# ---------------------------------------------------------------------------
# checking loaded records
# ---------------------------------------------------------------------------


def lookup_matcher(attribute: Attribute, lookup: Lookup) -> Callable[[Any], bool]:
    """A function telling whether a loaded value satisfies ``lookup``: the
    same answers as :func:`lookup_matches`, made once per query.

    Integer and Unicode values are ``None``, an ``int`` or a ``str``: no NaN,
    no naive/aware datetimes, no pointers, so plain comparisons are exact
    for them; every other type goes through :func:`lookup_matches`.
    """
    op, expected = lookup.op, lookup.value
    if type(attribute) in (Integer, Unicode):
        if op == "eq":
            if expected is None:
                return _is_none
            return lambda actual: actual == expected
        if op == "in":
            return frozenset(expected).__contains__
        if op == "ne":
            return lambda actual: not (actual is None if expected is None else actual == expected)
        if op == "startswith":
            return lambda actual: actual is not None and actual.startswith(expected)
        if op == "gt":
            return lambda actual: actual is not None and actual > expected
        if op == "gte":
            return lambda actual: actual is not None and actual >= expected
        if op == "lt":
            return lambda actual: actual is not None and actual < expected
        return lambda actual: actual is not None and actual <= expected
    return lambda actual: lookup_matches(attribute, actual, lookup)


def _is_none(value: Any) -> bool:
    return value is None


def lookup_matches(attribute: Attribute, actual: Any, lookup: Lookup) -> bool:
    """Whether a loaded value satisfies a lookup (Python's comparison rules)."""
    if isinstance(attribute, Pointer):
        actual = pointer_key(actual)
    op, expected = lookup.op, lookup.value
    if op == "eq":
        return _equal(actual, expected)
    if op == "ne":
        return not _equal(actual, expected)
    if op == "in":
        return any(_equal(actual, item) for item in expected)
    if op == "startswith":
        return isinstance(actual, str) and actual.startswith(expected)
    # range lookups: None and NaN match nothing; naive and aware datetimes
    # do not compare
    if actual is None or _is_nan(actual) or _is_nan(expected):
        return False
    if isinstance(actual, datetime.datetime) and (
        (actual.utcoffset() is None) != (expected.utcoffset() is None)
    ):
        return False
    try:
        if op == "gt":
            return bool(actual > expected)
        if op == "gte":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        return bool(actual <= expected)
    except TypeError:
        return False


def _equal(actual: Any, expected: Any) -> bool:
    if expected is None or actual is None:
        return actual is None and expected is None
    try:
        return bool(actual == expected)
    except ArithmeticError:
        # Decimal('sNaN') refuses even ==; one stored before assignment
        # refused it equals nothing, as a quiet NaN does
        return False


def _is_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    is_nan = getattr(value, "is_nan", None)
    return bool(is_nan()) if callable(is_nan) else False


# ---------------------------------------------------------------------------
# compiling to plans
# ---------------------------------------------------------------------------


def compile_lookups(
    model: type[ActiveRecord],
    lookups: tuple[Lookup, ...],
    excludes: tuple[tuple[Lookup, ...], ...] = (),
    conditions: tuple[Condition, ...] = (),
) -> Compiled:
    """The plans of ``filter(*lookups)`` minus each ``exclude(*group)``,
    within every one of ``conditions`` (:class:`Q` objects).

    A query that must read every record of the model because a field it
    looks up has no index logs a warning (see :func:`warn_full_scan`).
    """
    strict, exact, inexact = _compile(model, lookups, excludes, loose=False)
    loose, _, _ = _compile(model, lookups, excludes, loose=True)
    for condition in conditions:
        c_strict, c_exact, c_inexact = _compile_condition(model, condition, loose=False)
        c_loose, _, _ = _compile_condition(model, condition, loose=True)
        strict, loose = _intersect([strict, c_strict]), _intersect([loose, c_loose])
        exact = exact and c_exact
        inexact |= c_inexact
    if isinstance(loose, AllIds):
        in_conditions = tuple(lk for c in conditions for lk in c.all_lookups())
        warn_full_scan(model, lookups + in_conditions, excludes)
    return Compiled(strict, loose, exact, frozenset(inexact))


# (model, field) pairs already warned about, for the life of the process
_scans_warned: set[tuple[type, str]] = set()


def warn_full_scan(
    model: type[ActiveRecord],
    lookups: tuple[Lookup, ...],
    excludes: tuple[tuple[Lookup, ...], ...] = (),
) -> None:
    """Warn, once per model and field in a process, that a query on a field
    without the index its lookup needs reads every record of the model.

    Called for a query whose candidate records are all the model's records.
    The result is still right (every loaded record is compared with the
    lookups), but the cost grows with the model, not with the matches.  A
    query reading records by id (``id=``, ``id__in=``) reads only those.
    """
    pk = model._meta.primary_key
    if any(lk.field == pk and lk.op in ("eq", "in") for lk in lookups):
        return
    for lookup in (*lookups, *(lk for group in excludes for lk in group)):
        key = (model, lookup.field)
        if key in _scans_warned:
            continue
        needed = _needed_index(model._meta.fields[lookup.field], lookup.op)
        if needed is None:
            continue
        _scans_warned.add(key)
        logger.warning("%s", _scan_message(model, lookup.field, lookup.op, needed))


def _needed_index(attribute: Attribute, op: str) -> str | None:
    """The index kind a lookup needs and the field lacks (``None``: it has it)."""
    if op in ("eq", "ne", "in"):
        return None if attribute.indexes & {"eq", "range"} else "eq"
    if op == "startswith":
        return None if "prefix" in attribute.indexes else "prefix"
    return None if "range" in attribute.indexes else "range"


def _scan_message(model: type[ActiveRecord], name: str, op: str, needed: str) -> str:
    label = f"{model.__name__}.{name}"
    lookup = name if op == "eq" else f"{name}__{op}"
    kind = {"eq": "equality", "range": "range", "prefix": "prefix"}[needed]
    cost = (
        f"{label} has no {kind} index, so a query on {lookup} reads every "
        f"{model.__name__} record and compares it in Python: its cost grows with the "
        f"number of records, not of matches"
    )
    attribute = model._meta.fields[name]
    if needed not in attribute.supported_indexes:
        how = (
            f"{type(attribute).__name__} fields cannot be indexed for this lookup; "
            f"narrow the query with a lookup on an indexed field as well"
        )
    else:
        option = 'index="prefix"' if needed == "prefix" else "index=True"
        how = (
            f"declare the field with {option} and run {model.__name__}.objects.reindex() "
            f"(or `repocket reindex`) once for the records already stored"
        )
    return f"{cost}; {how} (logged once per field)"


def _compile(
    model: type[ActiveRecord],
    lookups: tuple[Lookup, ...],
    excludes: tuple[tuple[Lookup, ...], ...],
    loose: bool,
) -> tuple[Plan, bool, set[str]]:
    parts: list[Plan] = []
    exact = True
    inexact: set[str] = set()
    for lookup in lookups:
        plan, lookup_exact, field_name = _compile_one(model, lookup, loose)
        exact = exact and lookup_exact
        if field_name:
            inexact.add(field_name)
        if not isinstance(plan, AllIds):
            parts.append(plan)
    base = _intersect(parts)
    for group in excludes:
        group_parts = []
        group_exact = True
        for lookup in group:
            plan, lookup_exact, field_name = _compile_one(model, lookup, loose)
            group_exact = group_exact and lookup_exact
            if field_name:
                inexact.add(field_name)
                # a loose range plan is a superset: subtracting it could
                # drop records that do not match the exclusion
                group_exact = group_exact and not loose
            group_parts.append(plan)
        if not group_exact:
            exact = False  # cannot subtract on the server; checked after loading
            continue
        base = Difference(base, _intersect(group_parts))
    return base, exact, inexact


def _intersect(parts: list[Plan]) -> Plan:
    """The intersection of ``parts``, with ranges on one index merged into one.

    ``age__gte=10, age__lt=20`` is one ``ScoreRange(10, 20)``: the server
    then reads the k ids between the bounds, instead of two half-open
    ranges of about half the model each.
    """
    flat: list[Plan] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, Intersection) else (part,))
    ranges: dict[str, ScoreRange] = {}
    others: list[Plan] = []
    for part in flat:
        if isinstance(part, AllIds):
            continue
        if isinstance(part, ScoreRange):
            seen = ranges.get(part.name)
            ranges[part.name] = part if seen is None else _tightest(seen, part)
        elif part not in others:
            others.append(part)
    merged = [*ranges.values(), *others]
    if not merged:
        return AllIds()
    return merged[0] if len(merged) == 1 else Intersection(tuple(merged))


def _tightest(a: ScoreRange, b: ScoreRange) -> ScoreRange:
    """The range of scores inside both ``a`` and ``b``."""
    low, low_open = max((a.low, a.low_open), (b.low, b.low_open))
    high, high_open = min((a.high, not a.high_open), (b.high, not b.high_open))
    return ScoreRange(a.name, low, high, low_open, not high_open)


def _compile_one(
    model: type[ActiveRecord], lookup: Lookup, loose: bool
) -> tuple[Plan, bool, str | None]:
    """``(plan, exact, field whose inexact entry must be empty for exactness)``.

    A ``loose`` range plan keeps the records whose score equals the bound's:
    when a score is not exactly the value, they may match.
    """
    attribute = model._meta.fields[lookup.field]
    name, op, value = lookup.field, lookup.op, lookup.value
    if op in ("eq", "ne", "in"):
        if "eq" not in attribute.indexes:
            if "range" in attribute.indexes:
                return _equal_by_range(attribute, name, op, value, loose)
            return AllIds(), False, None
        values = value if op == "in" else (value,)
        members = [_eq_plan(attribute, name, item) for item in values]
        plan: Plan = members[0] if len(members) == 1 else Union(tuple(members))
        if op == "ne":
            plan = Difference(AllIds(), plan)
        return plan, True, None
    if op == "startswith":
        if "prefix" not in attribute.indexes:
            return AllIds(), False, None
        if value == "":
            return Difference(AllIds(), Members(eq_name(name, "null"))), True, None
        return Members(prefix_name(name, value[:PREFIX_LENGTH])), len(value) <= PREFIX_LENGTH, None
    # range lookups
    if "range" not in attribute.indexes:
        return AllIds(), False, None
    placed = attribute.sort_score(value)
    if placed is None or _is_nan(value):
        return _NOTHING, True, None
    tag, score, bound_exact = placed
    index = range_name(name)
    open_bound = bound_exact and not loose
    if op == "gt":
        plan = ScoreRange(index, score, math.inf, low_open=open_bound)
    elif op == "gte":
        plan = ScoreRange(index, score, math.inf)
    elif op == "lt":
        plan = ScoreRange(index, -math.inf, score, low_open=True, high_open=open_bound)
    else:
        plan = ScoreRange(index, -math.inf, score, low_open=True)
    if tag:
        plan = Intersection((plan, Members(class_name(name, tag))))
    return plan, bound_exact, name


def _equal_by_range(
    attribute: Attribute, name: str, op: str, value: Any, loose: bool
) -> tuple[Plan, bool, str | None]:
    """``eq`` / ``in`` / ``ne`` answered by a range index: the ids whose
    score is the value's.  Exact where the value's score is exact and no
    record holds an inexact score (checked as for range lookups)."""
    index = range_name(name)
    plans: list[Plan] = []
    exact = True
    for item in value if op == "in" else (value,):
        if item is None:
            # None shares -inf with NaN, which equals nothing: confirm on loading
            plans.append(ScoreRange(index, -math.inf, -math.inf))
            exact = False
            continue
        placed = attribute.sort_score(item)
        if placed is None or _is_nan(item):
            continue  # equal to nothing
        tag, score, item_exact = placed
        plan: Plan = ScoreRange(index, score, score)
        if tag:
            plan = Intersection((plan, Members(class_name(name, tag))))
        plans.append(plan)
        exact = exact and item_exact
    found: Plan = _NOTHING if not plans else plans[0] if len(plans) == 1 else Union(tuple(plans))
    if op != "ne":
        return found, exact, name
    if loose or not exact:
        # subtracting a superset could drop records that do match
        return AllIds(), False, None
    return Difference(AllIds(), found), True, name


def _eq_plan(attribute: Attribute, name: str, value: Any) -> Plan:
    term = term_for(attribute, value)
    return _NOTHING if term is None else Members(eq_name(name, term))
