"""Helpers for testing code that uses repocket.

:mod:`repocket.testing.pytest_plugin` is a pytest plugin, installed with
repocket and loaded by pytest automatically, that offers the
``repocket_memory`` fixture: each test that asks for it runs on a fresh, empty
in-memory storage, and the configuration is reset afterwards.  See the
"Testing" page of the documentation.

Nothing here is imported by repocket itself, and importing this package does
not import pytest.
"""
