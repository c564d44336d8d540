"""The tutorial of the documentation, run end to end: ``repocket demo``.

It declares the tutorial's models, saves Harry and Ron, shows exactly what
storage holds (the keys ``save()`` returns and the raw envelopes of the hash),
reads them back by id and with ``filter().order_by()``, then exercises a
Pointer and a ByteStream, and deletes what it created.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from . import attributes
from .connections import configure
from .model import ActiveRecord

__all__ = ["User", "Project", "Build", "run"]


class User(ActiveRecord):
    """The tutorial's user."""

    name = attributes.Unicode()
    house_name = attributes.Unicode()
    email = attributes.Bytes()
    password = attributes.Bytes()
    metadata = attributes.JSON()


class Project(ActiveRecord):
    """A project whose builds point to it."""

    name = attributes.Unicode()
    git_uri = attributes.Bytes()
    metadata = attributes.JSON()


class Build(ActiveRecord):
    """A build: a Pointer to its project and two ByteStreams of output."""

    id = attributes.AutoUUID()
    project = attributes.Pointer(Project)
    started_at = attributes.DateTime(auto_now=True)
    ended_at = attributes.DateTime(null=True)
    stdout = attributes.ByteStream()
    stderr = attributes.ByteStream()


def _hash_password(password: bytes) -> bytes:
    # The tutorial used bcrypt; the standard library's scrypt needs no extra install.
    return hashlib.scrypt(password, salt=b"repocket-demo", n=2**10, r=8, p=1, dklen=16)


def run(url: str = "memory://", echo: Callable[[str], Any] = print, keep: bool = False) -> None:
    """Run the tutorial against the storage at ``url``, printing each step."""
    storage = configure.from_url(url)
    echo(f"# storage: {storage.describe()}")
    connection = configure.get_connection()

    echo("\n# 2.4 Persisting data")
    harry = User.create(
        id="970773fa-4de1-11e5-86f4-6c4008a70392",
        name="Harry Potter",
        email="harry@hogwards.uk",
        house_name="Gryffindor",
        password=_hash_password(b"hermione42"),
        metadata={
            "known_tricks": ["Protego", "Expelliarmus", "Wingardium Leviosa", "Expecto Patronum"]
        },
    )
    ron = User.create(
        id="40997aa4-71fc-4ad3-b0d7-04c0fac6d6d8",
        name="Ron Weasley",
        house_name="Gryffindor",
        email="ron@hogwards.uk",
        password=_hash_password(b"hermione42"),
        metadata={"known_tricks": ["Protego", "Expelliarmus"]},
    )
    harrys_keys = harry.save()
    echo(f">>> harry.save()\n{harrys_keys}")

    echo("\n# 3.2 The guts of the data: HGETALL " + harrys_keys["hash"])
    for field, envelope in sorted(connection.hgetall(harrys_keys["hash"]).items()):
        echo(f"{field.decode()}\n{envelope.decode()}")

    echo("\n# 2.5 Retrieving an item by its id")
    harry = User.objects.get(id="970773fa-4de1-11e5-86f4-6c4008a70392")
    echo(f">>> harry.metadata\n{harry.metadata}")
    echo(f">>> harry.id\n{harry.id!r}\n>>> harry['id']\n{harry['id']!r}")

    echo("\n# 2.8 Retrieve multiple items with filter")
    results = User.objects.filter(house_name="Gryffindor").order_by("-name")
    echo(f">>> len(results)\n{len(results)}")
    echo(f">>> [user.name for user in results]\n{[user.name for user in results]}")

    echo("\n# Pointers and ByteStreams")
    project = Project.create(
        name="repocket",
        git_uri="https://github.com/gabrielfalcao/repocket",
        metadata={"language": "python"},
    )
    build = Build.create(project=project, stdout=b"collecting tests\n")
    stdout_key = build.append_stdout(b"42 passed\n")
    echo(f">>> build.append_stdout(b'42 passed\\n')\n{stdout_key!r}")
    echo(f">>> GET {stdout_key}\n{connection.get(stdout_key)!r}")
    loaded = Build.objects.get(id=build.id)
    echo(f">>> Build.objects.get(id=build.id).project.name\n{loaded.project.name!r}")
    echo(
        f">>> Build.objects.filter(project=project).count()\n"
        f"{Build.objects.filter(project=project).count()}"
    )

    if keep:
        echo("\n# --keep: leaving the demo's records in place")
        return
    echo("\n# 2.7 Deleting records")
    echo(f">>> harry.delete()\n{harry.delete()}")
    echo(f">>> build.delete()   # the hash and one ByteStream\n{build.delete()}")
    ron.delete()
    project.delete()
    echo(f">>> User.objects.all()\n{list(User.objects.all())!r}")
