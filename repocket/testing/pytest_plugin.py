"""repocket's pytest plugin: the ``repocket_memory`` fixture.

pytest loads this plugin by itself wherever repocket is installed (it is
declared under the ``pytest11`` entry point group as ``repocket``), so a test
only has to ask for the fixture::

    def test_users_are_found_by_house(repocket_memory):
        User.create(name="Harry Potter", house_name="Gryffindor")
        assert User.objects.filter(house_name="Gryffindor").count() == 1

When plugin autoloading is off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), enable it
with ``-p repocket`` on the command line, or with
``pytest_plugins = ["repocket.testing.pytest_plugin"]`` in a conftest file.
``-p no:repocket`` turns it off.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..backends.memory import MemoryStorage
from ..connections import configure

__all__ = ["repocket_memory"]


@pytest.fixture
def repocket_memory() -> Iterator[MemoryStorage]:
    """A fresh, empty, private in-memory storage, configured for this test.

    Every model uses it for the duration of the test (it is what
    ``configure.storage()`` returns, and ``configure.get_connection()`` returns
    its ``fakeredis.FakeRedis``).  Afterwards the storage is discarded and the
    configuration reset, so the next test starts unconfigured: storage
    configured before the test is not restored.
    """
    storage = MemoryStorage()
    configure.use(storage)
    try:
        yield storage
    finally:
        configure.reset()
