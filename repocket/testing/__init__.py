"""Helpers for testing code that uses repocket, and backends for it.

:mod:`repocket.testing.pytest_plugin` is a pytest plugin, installed with
repocket and loaded by pytest automatically, that offers the
``repocket_memory`` fixture: each test that asks for it runs on a fresh, empty
in-memory storage, and the configuration is reset afterwards.  See the
"Testing" page of the documentation.

:mod:`repocket.testing.suite` is the conformance suite a storage backend runs
by subclassing one class (see the "Storage backends" page); it stores the
models of :mod:`repocket.testing.models` and generates values with the
hypothesis strategies of :mod:`repocket.testing.strategies`.  Those modules
need pytest and hypothesis (repocket's ``test`` extra).

Nothing here is imported by repocket itself, and importing this package does
not import pytest.
"""
