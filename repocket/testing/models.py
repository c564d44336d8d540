"""The models the conformance suite (:mod:`repocket.testing.suite`) stores.

Those of repocket 0.0.1's documentation and tests (``User``, ``Project``,
``Build``, ``BlogPost``) and one with a field of every type (``Everything``).
Their records live under ``repocket:repocket.testing.models:...``.  The
models of the query tests are in :mod:`repocket.testing.query_models`.
"""

from __future__ import annotations

from .. import ActiveRecord, attributes

__all__ = ["User", "Project", "Build", "BlogPost", "Everything"]


class User(ActiveRecord):
    """The tutorial's user."""

    name = attributes.Unicode()
    house_name = attributes.Unicode()
    email = attributes.Bytes()
    password = attributes.Bytes()
    metadata = attributes.JSON()


class Project(ActiveRecord):
    """The introduction's project."""

    name = attributes.Unicode()
    git_uri = attributes.Bytes()
    metadata = attributes.JSON()


class Build(ActiveRecord):
    """The introduction's build: every kind of field."""

    id = attributes.AutoUUID()
    project = attributes.Pointer(Project)
    started_at = attributes.DateTime()
    ended_at = attributes.DateTime()
    stdout = attributes.ByteStream()
    stderr = attributes.ByteStream()


class BlogPost(ActiveRecord):
    """0.0.1's functional-test post: an optional author and an auto_now stamp."""

    id = attributes.AutoUUID()
    author = attributes.Pointer(User)
    created_at = attributes.DateTime(auto_now=True)
    title = attributes.Unicode()
    body = attributes.ByteStream()


class Everything(ActiveRecord):
    """One field of every type, for round trips."""

    text = attributes.Unicode()
    raw = attributes.Bytes()
    number = attributes.Integer()
    ratio = attributes.Float()
    amount = attributes.Decimal()
    when = attributes.DateTime()
    ref = attributes.UUID()
    doc = attributes.JSON()
    owner = attributes.Pointer(User)
    log = attributes.ByteStream()
