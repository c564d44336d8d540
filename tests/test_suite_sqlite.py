"""The conformance suite on the SQLite plugin (``backends/repocket-sqlite``).

The backend class comes from the installed ``repocket-sqlite`` distribution,
found through its ``repocket.backends`` entry point, as an application finds
it.  ``scripts/test.sh`` installs the distribution; when it is not installed
these tests fail if the ``CI`` environment variable is set, and are skipped
with the reason otherwise.
"""

from __future__ import annotations

import os
from importlib import metadata

import pytest

from repocket.backend_registry import available_backends, get_backend
from repocket.errors import UnknownBackendError
from repocket.storage import Storage
from repocket.testing.suite import ConformanceSuite

INSTALL = "python -m pip install ./backends/repocket-sqlite (scripts/test.sh does)"


def sqlite_backend() -> type[Storage]:
    """The class the installed plugin declares for the ``sqlite`` scheme."""
    try:
        return get_backend("sqlite")
    except UnknownBackendError as exc:
        message = f"the repocket-sqlite plugin is not installed: {exc}; install it with {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def test_the_sqlite_scheme_comes_from_the_installed_distribution() -> None:
    backend = sqlite_backend()
    (entry_point,) = metadata.entry_points(group="repocket.backends", name="sqlite")
    assert entry_point.dist is not None
    assert entry_point.dist.metadata["Name"] == "repocket-sqlite"
    assert entry_point.value == "repocket_sqlite.storage:SQLiteStorage"
    assert available_backends()["sqlite"] == entry_point.value
    assert f"{backend.__module__}:{backend.__qualname__}" == entry_point.value


class TestSQLiteConformance(ConformanceSuite):
    def make_storage(self) -> Storage:
        path = self.request.getfixturevalue("tmp_path") / "conformance.db"
        return sqlite_backend().from_url(f"sqlite:///{path}")
