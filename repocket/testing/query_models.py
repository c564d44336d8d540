"""The models the query tests of the conformance suite store.

One with every kind of index (``Wizard``), one whose DateTime has no range
index (``Unindexed``) and one with an indexed DateTime (``Event``).
"""

from __future__ import annotations

from .. import ActiveRecord, attributes

__all__ = ["Wizard", "Unindexed", "Event"]


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
