"""The models of the conformance suite's modelling features
(:class:`~repocket.testing.suite.ModellingConformance`): booleans, unique
lookups, and pointers with ``related_name`` and every ``on_delete`` rule.
Their records live under ``repocket:repocket.testing.feature_models:...``.
"""

from __future__ import annotations

from .. import CASCADE, PROTECT, SET_NULL, ActiveRecord, attributes

__all__ = ["Member", "Session", "Shelf", "Volume", "Label", "Loan"]


class Session(ActiveRecord):
    """Every record expires 60 s after it was last saved (``Meta.ttl``)."""

    class Meta:
        ttl = 60

    token = attributes.Unicode()


class Member(ActiveRecord):
    """A model for the modelling features: booleans, ``Q``, ``values()``,
    ``get_or_create()`` (``email`` is unique)."""

    name = attributes.Unicode()
    email = attributes.Unicode(unique=True)
    house = attributes.Unicode()
    age = attributes.Integer(null=True)
    active = attributes.Boolean()
    admin = attributes.Boolean(null=True)
    mentor = attributes.Pointer("Member", null=True)
    notes = attributes.ByteStream()


class Shelf(ActiveRecord):
    """A pointer target with every on_delete rule pointing at it."""

    name = attributes.Unicode()


class Volume(ActiveRecord):
    """Deleted with its shelf (CASCADE); ``volumes`` on the shelf."""

    title = attributes.Unicode()
    shelf = attributes.Pointer(Shelf, related_name="volumes", on_delete=CASCADE)
    sequel_of = attributes.Pointer("Volume", null=True, related_name="sequels", on_delete=CASCADE)


class Label(ActiveRecord):
    """Its volume pointer is cleared when the volume goes (SET_NULL)."""

    text = attributes.Unicode()
    volume = attributes.Pointer(Volume, null=True, related_name="labels", on_delete=SET_NULL)


class Loan(ActiveRecord):
    """Keeps its shelf from being deleted (PROTECT)."""

    borrower = attributes.Unicode()
    shelf = attributes.Pointer(Shelf, related_name="loans", on_delete=PROTECT)
