"""The tutorial of the documentation, run end to end: ``repocket demo``.

It follows the tutorial's sections in order and prints, for each step, the
code (as the tutorial writes it) and its result: the models it declares, the
saves of Harry and Ron and exactly what storage holds (the keys ``save()``
returns, the raw envelopes of the hash, the index keys), reads by id and with
``filter().order_by()``, a Pointer and a ByteStream, and the deletion of what
it created (unless ``--keep``).
"""

from __future__ import annotations

import hashlib
import inspect
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
    """Run the tutorial against the storage at ``url``, printing each step:
    the code, as it reads in the tutorial, then what it returned and what
    storage holds.  Section titles are the tutorial's."""
    storage = configure.from_url(url)
    echo(f"# storage: {storage.describe()}")
    connection = configure.get_connection()

    def show(code: str, result: Any = None) -> None:
        lines = code.splitlines()
        echo("\n".join([f">>> {lines[0]}", *(f"... {line}" for line in lines[1:])]))
        if result is not None:  # as the interpreter shows it
            echo(repr(result))

    def section(title: str) -> None:
        echo(f"\n# {title}")

    section("Declaring models (the models live in repocket.demo)")
    echo("\n".join(inspect.getsource(model) for model in (User, Project, Build)).rstrip())

    section("Persisting data")
    echo("# hash_password() is hashlib.scrypt here (the tutorial uses bcrypt)")
    show(
        'harry = User.create(id="970773fa-4de1-11e5-86f4-6c4008a70392",\n'
        '    name="Harry Potter", house_name="Gryffindor", email="harry@hogwards.uk",\n'
        '    password=hash_password(b"hermione42"),\n'
        '    metadata={"known_tricks": ["Protego", "Expelliarmus", '
        '"Wingardium Leviosa", "Expecto Patronum"]})'
    )
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
    show(
        'ron = User.create(id="40997aa4-71fc-4ad3-b0d7-04c0fac6d6d8",\n'
        '    name="Ron Weasley", house_name="Gryffindor", email="ron@hogwards.uk",\n'
        '    password=hash_password(b"hermione42"),\n'
        '    metadata={"known_tricks": ["Protego", "Expelliarmus"]})'
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
    show("harry.save()", harrys_keys)
    echo(f"\n# What storage holds: HGETALL {harrys_keys['hash']}")
    for field, envelope in sorted(connection.hgetall(harrys_keys["hash"]).items()):
        echo(f"{field.decode()}\n{envelope.decode()}")

    section("Retrieving an item by its id")
    harry = User.objects.get(id="970773fa-4de1-11e5-86f4-6c4008a70392")
    show('harry = User.objects.get(id="970773fa-4de1-11e5-86f4-6c4008a70392")')
    show("harry.metadata", harry.metadata)
    show("harry.id", harry.id)
    show("harry['id']", harry["id"])

    section("Retrieving multiple items with filter")
    results = User.objects.filter(house_name="Gryffindor").order_by("-name")
    show('results = User.objects.filter(house_name="Gryffindor").order_by("-name")')
    show("len(results)", len(results))
    show("[user.name for user in results]", [user.name for user in results])
    echo("\n# The index keys the saves wrote (sets of ids per indexed value)")
    # a single server's names and a cluster's (shard-tagged; see docs/cluster.rst)
    patterns = ("repocket::index:repocket.demo:User:*", "repocket::index:{repocket.demo:User:*")
    for key in sorted({key for pattern in patterns for key in connection.scan_iter(match=pattern)}):
        echo(f"{key.decode()}  {sorted(member.decode() for member in connection.smembers(key))}")

    section("Pointers")
    project = Project.create(
        name="repocket",
        git_uri="https://github.com/gabrielfalcao/repocket",
        metadata={"language": "python"},
    )
    show(
        'project = Project.create(name="repocket",\n'
        '    git_uri="https://github.com/gabrielfalcao/repocket",\n'
        '    metadata={"language": "python"})'
    )
    build = Build.create(project=project, stdout=b"collecting tests\n")
    show('build = Build.create(project=project, stdout=b"collecting tests\\n")')
    loaded = Build.objects.get(id=build.id)
    assert loaded.project is not None  # a Pointer reads None once its target is deleted
    show("Build.objects.get(id=build.id).project.name", loaded.project.name)
    show(
        "Build.objects.filter(project=project).count()",
        Build.objects.filter(project=project).count(),
    )

    section("ByteStreams")
    stdout_key = build.append_stdout(b"42 passed\n")
    show("build.append_stdout(b'42 passed\\n')", stdout_key)
    echo(f"# GET {stdout_key}\n{connection.get(stdout_key)!r}")

    if keep:
        echo("\n# --keep: leaving the demo's records in place")
        return
    section("Deleting records (the demo deletes everything it created)")
    show("harry.delete()", harry.delete())
    show("build.delete()   # the hash and one ByteStream", build.delete())
    show("ron.delete()", ron.delete())
    show("project.delete()", project.delete())
    show("list(User.objects.all())", list(User.objects.all()))
