"""The bookshelf's models: authors, and books that point to them."""

from __future__ import annotations

from repocket import ActiveRecord, attributes


class Author(ActiveRecord):
    """Someone who writes books; no two authors share a name."""

    name = attributes.Unicode(unique=True)
    born = attributes.Integer(null=True)


class Book(ActiveRecord):
    """A book on the shelf.

    ``revision`` is the version a client must name to change the book (see
    ``PATCH /books/{id}``); ``loans`` counts how often it was lent.
    """

    title = attributes.Unicode()
    author = attributes.Pointer(Author)
    year = attributes.Integer()  # range-indexed: ordered and paged on the server
    loans = attributes.Integer(default=0)
    revision = attributes.Integer(default=1)
