"""The conformance suite on the memory backend."""

from __future__ import annotations

from repocket.backends.memory import MemoryStorage
from repocket.testing.suite import ConformanceSuite


class TestMemoryConformance(ConformanceSuite):
    def make_storage(self) -> MemoryStorage:
        return MemoryStorage()
