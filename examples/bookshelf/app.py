"""A bookshelf web service on repocket's async API.

Run it with ``uvicorn bookshelf.app:app`` from the ``examples`` folder (see
README.md).  Storage is chosen by the ``REPOCKET_URL`` environment variable:
``memory://`` (the default: no server, data lost on exit) or a redis URL.

Every handler awaits repocket's async methods, so a request waiting on
redis never blocks the others.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from repocket.connections import configure
from repocket.errors import ConflictError, DoesNotExist, UniqueViolation

from .models import Author, Book

DEFAULT_URL = "memory://"


# -- the JSON the service reads and writes ------------------------------------


class AuthorIn(BaseModel):
    name: str = Field(min_length=1)
    born: int | None = None


class AuthorOut(BaseModel):
    id: str
    name: str
    born: int | None

    @classmethod
    def of(cls, author: Author) -> AuthorOut:
        return cls(id=str(author.pk), name=author.name, born=author.born)


class BookIn(BaseModel):
    title: str = Field(min_length=1)
    author_id: uuid.UUID
    year: int


class BookChange(BaseModel):
    """A change to a book: ``revision`` is the one the client last read."""

    revision: int
    title: str | None = Field(default=None, min_length=1)
    year: int | None = None


class BookOut(BaseModel):
    id: str
    title: str
    year: int
    loans: int
    revision: int
    author: AuthorOut | None  # None once the author is deleted

    @classmethod
    def of(cls, book: Book) -> BookOut:
        # A book loaded by aget(), aslice() or ``async for`` has its author
        # loaded with it (one round trip per batch), so reading
        # ``book.author`` here does no I/O.
        author = book.author
        return cls(
            id=str(book.pk),
            title=book.title,
            year=book.year,
            loans=book.loans,
            revision=book.revision,
            author=AuthorOut.of(author) if author is not None else None,
        )


class BookPage(BaseModel):
    total: int
    offset: int
    items: list[BookOut]


# -- the application -------------------------------------------------------------


def create_app(url: str | None = None) -> FastAPI:
    """The application, storing in ``url`` (default: ``$REPOCKET_URL``, else
    ``memory://``), chosen when it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure.from_url(url or os.environ.get("REPOCKET_URL") or DEFAULT_URL)
        yield
        # the event loop's redis connections, closed before the loop ends
        await configure.aclose()

    app = FastAPI(title="Bookshelf", lifespan=lifespan)

    # repocket's errors as HTTP statuses; Book.DoesNotExist and
    # Author.DoesNotExist are subclasses of DoesNotExist
    @app.exception_handler(DoesNotExist)
    async def not_found(request: Request, exc: DoesNotExist) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(UniqueViolation)
    async def taken(request: Request, exc: UniqueViolation) -> JSONResponse:
        return JSONResponse({"detail": f"{exc.field} {exc.value!r} is taken"}, status_code=409)

    @app.exception_handler(ConflictError)
    async def changed(request: Request, exc: ConflictError) -> JSONResponse:
        detail = "the book changed since it was read; read it again and retry"
        return JSONResponse({"detail": detail}, status_code=409)

    # -- authors -------------------------------------------------------------------

    @app.post("/authors", status_code=201)
    async def create_author(body: AuthorIn) -> AuthorOut:
        author = await Author.objects.acreate(name=body.name, born=body.born)
        return AuthorOut.of(author)

    @app.get("/authors/{author_id}")
    async def read_author(author_id: uuid.UUID) -> AuthorOut:
        return AuthorOut.of(await Author.objects.aget(id=author_id))

    @app.get("/authors/{author_id}/titles")
    async def list_titles(author_id: uuid.UUID) -> list[str]:
        """Every title of an author, oldest first, read in batches."""
        author = await Author.objects.aget(id=author_id)
        return [book.title async for book in Book.objects.filter(author=author).order_by("year")]

    @app.delete("/authors/{author_id}", status_code=204)
    async def delete_author(author_id: uuid.UUID) -> Response:
        """Delete an author and their books."""
        author = await Author.objects.aget(id=author_id)
        await Book.objects.filter(author=author).adelete()
        await author.adelete()
        return Response(status_code=204)

    # -- books ---------------------------------------------------------------------

    @app.post("/books", status_code=201)
    async def create_book(body: BookIn) -> BookOut:
        try:
            author = await Author.objects.aget(id=body.author_id)
        except Author.DoesNotExist:
            raise HTTPException(422, f"no author has the id {body.author_id}") from None
        book = await Book.objects.acreate(title=body.title, author=author, year=body.year)
        return BookOut.of(book)

    @app.get("/books")
    async def list_books(
        author_id: uuid.UUID | None = None,
        since: int | None = None,
        order: Literal["year", "-year", "title", "-title"] = "year",
        offset: int = Query(default=0, ge=0),
        limit: int = Query(default=20, ge=1, le=100),
    ) -> BookPage:
        """A page of books, filtered by author and by year, in ``order``."""
        lookups: dict[str, object] = {}
        if author_id is not None:
            lookups["author"] = author_id
        if since is not None:
            lookups["year__gte"] = since
        books = Book.objects.filter(**lookups).order_by(order)
        page = await books.aslice(offset, offset + limit)
        return BookPage(
            total=await books.acount(), offset=offset, items=[BookOut.of(b) for b in page]
        )

    @app.get("/books/{book_id}")
    async def read_book(book_id: uuid.UUID) -> BookOut:
        return BookOut.of(await Book.objects.aget(id=book_id))

    @app.patch("/books/{book_id}")
    async def change_book(book_id: uuid.UUID, change: BookChange) -> BookOut:
        """Change a book the client read at ``change.revision``.

        Optimistic concurrency: refused with 409 when the book is no longer at
        that revision, or when another request changed it between this one's
        read and its save (``asave(if_unchanged=True)`` checks that in the
        same command as the write).
        """
        book = await Book.objects.aget(id=book_id)
        if book.revision != change.revision:
            raise HTTPException(
                409, f"the book is at revision {book.revision}, not {change.revision}"
            )
        if change.title is not None:
            book.title = change.title
        if change.year is not None:
            book.year = change.year
        book.revision += 1
        await book.asave(if_unchanged=True)
        return BookOut.of(book)

    @app.post("/books/{book_id}/loans")
    async def lend_book(book_id: uuid.UUID) -> dict[str, int]:
        """Count one more loan: an atomic increment in storage, right
        however many requests lend the book at once."""
        book = await Book.objects.aget(id=book_id)
        return {"loans": await book.aincrement("loans")}

    @app.delete("/books/{book_id}", status_code=204)
    async def delete_book(book_id: uuid.UUID) -> Response:
        book = await Book.objects.aget(id=book_id)
        await book.adelete()
        return Response(status_code=204)

    return app


app = create_app()
