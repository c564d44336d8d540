"""Count round trips to the storage server, machine-independently.

Every request redis-py sends (one command, or one whole pipeline or
transaction) goes through ``send_packed_command`` once; fakeredis's
connection inherits it, so the same counter works on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from redis.connection import AbstractConnection

from repocket.storage import Storage


class RoundTrips:
    """The number of requests sent while the counter was active."""

    def __init__(self) -> None:
        self.count = 0


@contextmanager
def count_round_trips(storage: Storage) -> Iterator[RoundTrips]:
    """Count the requests sent to ``storage``'s server inside the block."""
    storage.ping()  # connect (and handshake) first, so it is not counted
    counter = RoundTrips()
    original = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        counter.count += 1
        return original(self, command, check_health)

    with mock.patch.object(AbstractConnection, "send_packed_command", counting):
        yield counter
