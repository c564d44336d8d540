"""Count round trips and commands sent to the storage server, machine-independently.

Every request sent to the server (one command, or one whole pipeline or
transaction, or the commands repocket packs itself) goes through a
connection's ``send_packed_command`` once; the commands in it (MULTI and EXEC
included) are read back from the bytes sent.  fakeredis's connection
inherits it, so the same counter works on both backends.
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

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        counter.count += 1
        sent: list[bytes] = []
        try:
            return original(self, passing(command, sent), check_health)
        finally:
            counter.names.extend(command_names(sent))

    with mock.patch.object(AbstractConnection, "send_packed_command", counting):
        yield counter


def passing(command: Any, sent: list[bytes]) -> Iterator[bytes]:
    """What ``send_packed_command`` was given (bytes, a str, or any iterable
    of bytes, which it may only read once), piece by piece as the
    connection takes it, each piece kept in ``sent``: the pieces are made
    when the connection asks for them, as without the counter."""
    pieces = [command] if isinstance(command, (bytes, str)) else command
    for piece in pieces:
        sent.append(piece.encode() if isinstance(piece, str) else bytes(piece))
        yield piece


def command_names(pieces: list[bytes]) -> list[str]:
    """The name of every command in packed requests (the redis protocol:
    ``*<words>`` then ``$<length>`` and the bytes of each word)."""
    data = b"".join(pieces)
    names: list[str] = []
    at = 0
    while at < len(data):
        assert data[at : at + 1] == b"*", (
            f"not a packed command at byte {at}: {data[at : at + 20]!r}"
        )
        end = data.index(b"\r\n", at)
        words = int(data[at + 1 : end])
        at = end + 2
        for word in range(words):
            assert data[at : at + 1] == b"$", f"not a packed word at byte {at}"
            end = data.index(b"\r\n", at)
            length = int(data[at + 1 : end])
            if word == 0:
                names.append(data[end + 2 : end + 2 + length].decode().upper())
            at = end + 2 + length + 2
    return names
