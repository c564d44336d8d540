"""repocket: an active-record ORM that uses Redis as the main data store.

::

    from repocket import ActiveRecord, attributes
    from repocket.connections import configure

    configure.from_url("memory://")          # or configure.connection_pool(hostname=...)

    class User(ActiveRecord):
        name = attributes.Unicode()
        house_name = attributes.Unicode()

    harry = User.create(name="Harry Potter", house_name="Gryffindor")
    User.objects.filter(house_name="Gryffindor").order_by("-name")
"""

from __future__ import annotations

from . import attributes
from .model import ActiveRecord
from .query import F, Q
from .relations import CASCADE, DO_NOTHING, PROTECT, SET_NULL

__all__ = [
    "ActiveRecord",
    "CASCADE",
    "DO_NOTHING",
    "F",
    "PROTECT",
    "Q",
    "SET_NULL",
    "attributes",
    "__version__",
]

__version__ = "0.2.0.dev0"
