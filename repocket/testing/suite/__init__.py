"""repocket's conformance suite: pytest test classes any storage backend runs.

A backend's test module subclasses :class:`ConformanceSuite` and says how to
make its storage; every test of the suite then runs on it::

    import pytest

    from repocket.testing.suite import ConformanceSuite
    from repocket_sqlite import SQLiteStorage


    class TestSQLiteConformance(ConformanceSuite):
        def make_storage(self):
            path = self.request.getfixturevalue("tmp_path") / "suite.db"
            return SQLiteStorage(path)

(The class name must start with ``Test`` for pytest to collect it.)
:meth:`~BackendSuite.make_storage` returns a new storage object; the suite
empties it with ``clear()`` before each test and configures it for every
model (``configure.use()``), so that the model-level tests run on it too.
``self.request`` is pytest's request of the running test, for fixtures the
storage needs (a temporary directory, a server).  The ``storage`` fixture
may be overridden as well.

The suite covers the :class:`~repocket.storage.Storage` protocol method by
method (:class:`ProtocolConformance`) and the model layer on top of it:
records, ByteStreams and Pointers (:class:`RecordConformance`), managers and
result sets (:class:`ManagerConformance`), every query of the query engine
(:class:`QueryConformance`), bad and old stored data
(:class:`StoredDataConformance`), property-based round trips of every
field type (:class:`RoundTripConformance`) and writes that collide with other
writers: create-only and conditional saves, ``increment()``, appends to
deleted records (:class:`WriteConformance`); Boolean fields, ``Q``
conditions, ``values()``, ``last()`` and ``get_or_create()``
(:class:`ModellingConformance`).  Subclass a part alone to run
only that part.

What a backend declares it cannot do is skipped: the suite reads the
capability flags of the storage's class (``persistent``, ``atomic_saves``;
see :class:`~repocket.storage.Storage`).  To leave out one test, set its name
to ``None`` in the subclass (``test_concurrent_appends_lose_nothing = None``).

The suite needs ``pytest`` and ``hypothesis`` (repocket's ``test`` extra).
Its round trips use hypothesis's current settings profile, with the
``function_scoped_fixture`` health check suppressed.
"""

from __future__ import annotations

from .base import BackendSuite, require, rewrite_stored_fields, unindex
from .manager import ManagerConformance
from .modelling import ModellingConformance
from .properties import RoundTripConformance
from .protocol import AWKWARD_BYTES, AWKWARD_IDS, AWKWARD_TEXTS, ProtocolConformance
from .queries import QueryConformance
from .records import RecordConformance
from .stored_data import StoredDataConformance
from .writes import WriteConformance

__all__ = [
    "ConformanceSuite",
    "BackendSuite",
    "ProtocolConformance",
    "RecordConformance",
    "ManagerConformance",
    "ModellingConformance",
    "QueryConformance",
    "StoredDataConformance",
    "RoundTripConformance",
    "WriteConformance",
    "require",
    "rewrite_stored_fields",
    "unindex",
    "AWKWARD_IDS",
    "AWKWARD_TEXTS",
    "AWKWARD_BYTES",
]


class ConformanceSuite(
    ProtocolConformance,
    RecordConformance,
    ManagerConformance,
    ModellingConformance,
    QueryConformance,
    StoredDataConformance,
    RoundTripConformance,
    WriteConformance,
):
    """Every conformance test: subclass it and implement ``make_storage()``."""
