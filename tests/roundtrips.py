"""Count round trips and commands sent to the storage server, machine-independently.

Every request redis-py sends (one command, or one whole pipeline or
transaction) goes through ``send_packed_command`` once; a single command is
sent with ``send_command`` and the commands of a pipeline are packed with
``pack_commands`` (MULTI and EXEC included).  fakeredis's connection
inherits all three, so the same counters work on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from redis.connection import AbstractConnection

from repocket.storage import Storage


class RoundTrips:
    """The requests (``count``) and the commands in them (``commands``) sent
    while the counter was active; ``names`` lists the commands' names."""

    def __init__(self) -> None:
        self.count = 0
        self.names: list[str] = []

    @property
    def commands(self) -> int:
        return len(self.names)


@contextmanager
def count_round_trips(storage: Storage) -> Iterator[RoundTrips]:
    """Count the requests sent to ``storage``'s server inside the block."""
    storage.ping()  # connect (and handshake) first, so it is not counted
    # a server that restarted loads the scripts once (NOSCRIPT, SCRIPT LOAD);
    # the counts are those of a server that knows them
    load_scripts = getattr(storage, "load_scripts", None)
    if load_scripts is not None:
        load_scripts()
    counter = RoundTrips()
    original = AbstractConnection.send_packed_command
    original_send = AbstractConnection.send_command
    original_pack = AbstractConnection.pack_commands

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        counter.count += 1
        return original(self, command, check_health)

    def sending(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter.names.append(_name(args[0]))
        return original_send(self, *args, **kwargs)

    def packing(self: Any, commands: Any) -> Any:
        counter.names.extend(_name(command[0]) for command in commands)
        return original_pack(self, commands)

    with (
        mock.patch.object(AbstractConnection, "send_packed_command", counting),
        mock.patch.object(AbstractConnection, "send_command", sending),
        mock.patch.object(AbstractConnection, "pack_commands", packing),
    ):
        yield counter


def _name(word: Any) -> str:
    return (word.decode() if isinstance(word, bytes) else str(word)).upper()
