"""The models the query tests of the conformance suite store.

One with every kind of index (``Wizard``), one whose DateTime has no range
index (``Unindexed``), one with an indexed DateTime (``Event``) and one whose
numbers are changed with ``increment()`` (``Counter``).
"""

from __future__ import annotations

from .. import ActiveRecord, attributes

__all__ = ["Wizard", "Unindexed", "Event", "Counter"]


class Wizard(ActiveRecord):
    """A model with every kind of index."""

    name = attributes.Unicode(index="prefix")
    house = attributes.Unicode()
    age = attributes.Integer(null=True)
    height = attributes.Float(null=True)
    gold = attributes.Decimal(null=True)
    born = attributes.DateTime(null=True)
    wand = attributes.Unicode(unique=True, null=True)
    notes = attributes.Unicode(index=False)
    spells = attributes.JSON()


class Unindexed(ActiveRecord):
    """A DateTime without a range index: ordering by it sorts in Python."""

    when = attributes.DateTime(index=False)


class Event(ActiveRecord):
    """A model with an indexed DateTime."""

    at = attributes.DateTime()


class Counter(ActiveRecord):
    """Numbers changed with ``increment()`` and conditional saves: a count
    that starts at 0, a ratio, and a unique ticket number."""

    name = attributes.Unicode()
    hits = attributes.Integer(default=0)
    ratio = attributes.Float(null=True)
    ticket = attributes.Integer(unique=True, null=True)
