"""The example web service (examples/bookshelf) works, on memory and on redis.

Requests go through httpx's ASGI transport: no server process, no port.
The transport does not run the application's lifespan, so each test enters
it itself, as uvicorn would around the requests.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.resultset import ResultSet

from .servers import RedisServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
bookshelf_app = importlib.import_module("bookshelf.app")
bookshelf_models = importlib.import_module("bookshelf.models")
Author = bookshelf_models.Author
Book = bookshelf_models.Book

Client = httpx.AsyncClient
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(params=["memory", "redis"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The storage URL the application is started with, its storage empty."""
    if request.param == "memory":
        yield "memory://"  # a new, empty store each time it is configured
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        storage = RedisStorage.from_url(server.url)
        storage.clear()
        storage.close()
        yield server.url
    configure.reset()


@asynccontextmanager
async def running(url: str | None) -> AsyncIterator[Client]:
    """A client of the application, started (lifespan) on ``url``."""
    app = bookshelf_app.create_app(url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bookshelf"
        ) as client,
    ):
        yield client


def run(url: str | None, scenario: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with running(url) as client:
            await scenario(client)

    asyncio.run(main())


async def add_author(client: Client, name: str = "Ursula K. Le Guin", born: int = 1929) -> str:
    response = await client.post("/authors", json={"name": name, "born": born})
    assert response.status_code == 201, response.text
    author_id: str = response.json()["id"]
    return author_id


async def add_book(client: Client, author_id: str, title: str, year: int) -> dict[str, Any]:
    response = await client.post(
        "/books", json={"title": title, "author_id": author_id, "year": year}
    )
    assert response.status_code == 201, response.text
    book: dict[str, Any] = response.json()
    return book


async def add_shelf(client: Client) -> tuple[str, str]:
    """Two authors and five books; the ids of the authors."""
    le_guin = await add_author(client)
    banks = await add_author(client, "Iain M. Banks", 1954)
    for title, year in [
        ("The Dispossessed", 1974),
        ("A Wizard of Earthsea", 1968),
        ("The Left Hand of Darkness", 1969),
        ("The Lathe of Heaven", 1971),
    ]:
        await add_book(client, le_guin, title, year)
    await add_book(client, banks, "Consider Phlebas", 1987)
    return le_guin, banks


def titles(page: dict[str, Any]) -> list[str]:
    return [item["title"] for item in page["items"]]


# -- authors ---------------------------------------------------------------------


def test_a_created_author_is_read_back(url: str) -> None:
    async def scenario(client: Client) -> None:
        created = await client.post("/authors", json={"name": "Octavia Butler", "born": 1947})
        assert created.status_code == 201
        author_id = created.json()["id"]
        assert created.json() == {"id": author_id, "name": "Octavia Butler", "born": 1947}
        read = await client.get(f"/authors/{author_id}")
        assert read.status_code == 200
        assert read.json() == created.json()

    run(url, scenario)


def test_a_taken_author_name_is_refused_with_409(url: str) -> None:
    async def scenario(client: Client) -> None:
        await add_author(client, "Octavia Butler")
        again = await client.post("/authors", json={"name": "Octavia Butler", "born": 2000})
        assert again.status_code == 409
        assert again.json() == {"detail": "name 'Octavia Butler' is taken"}

    run(url, scenario)


def test_a_missing_author_or_book_is_404(url: str) -> None:
    async def scenario(client: Client) -> None:
        for path in (f"/authors/{MISSING}", f"/books/{MISSING}", f"/authors/{MISSING}/titles"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["detail"].startswith("no "), path

    run(url, scenario)


def test_an_authors_titles_are_read_in_batches_oldest_first(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two records per round trip: `async for` crosses batches
    monkeypatch.setattr(ResultSet, "batch_size", 2)

    async def scenario(client: Client) -> None:
        le_guin, banks = await add_shelf(client)
        response = await client.get(f"/authors/{le_guin}/titles")
        assert response.status_code == 200
        assert response.json() == [
            "A Wizard of Earthsea",
            "The Left Hand of Darkness",
            "The Lathe of Heaven",
            "The Dispossessed",
        ]
        assert (await client.get(f"/authors/{banks}/titles")).json() == ["Consider Phlebas"]

    run(url, scenario)


def test_deleting_an_author_deletes_their_books_only(url: str) -> None:
    async def scenario(client: Client) -> None:
        le_guin, banks = await add_shelf(client)
        deleted = await client.delete(f"/authors/{le_guin}")
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert (await client.get(f"/authors/{le_guin}")).status_code == 404
        remaining = (await client.get("/books")).json()
        assert remaining["total"] == 1
        assert titles(remaining) == ["Consider Phlebas"]
        assert remaining["items"][0]["author"]["id"] == banks

    run(url, scenario)


# -- books -----------------------------------------------------------------------


def test_a_created_book_is_read_back_with_its_author(url: str) -> None:
    async def scenario(client: Client) -> None:
        author_id = await add_author(client)
        created = await add_book(client, author_id, "The Dispossessed", 1974)
        read = await client.get(f"/books/{created['id']}")
        assert read.status_code == 200
        assert read.json() == created
        assert created == {
            "id": created["id"],
            "title": "The Dispossessed",
            "year": 1974,
            "loans": 0,
            "revision": 1,
            "author": {"id": author_id, "name": "Ursula K. Le Guin", "born": 1929},
        }

    run(url, scenario)


def test_a_book_by_a_missing_author_is_refused_with_422(url: str) -> None:
    async def scenario(client: Client) -> None:
        response = await client.post(
            "/books", json={"title": "Nobody's", "author_id": MISSING, "year": 2000}
        )
        assert response.status_code == 422
        assert response.json() == {"detail": f"no author has the id {MISSING}"}
        assert (await client.get("/books")).json()["total"] == 0

    run(url, scenario)


def test_books_are_listed_in_the_order_asked(url: str) -> None:
    async def scenario(client: Client) -> None:
        await add_shelf(client)
        by_year = (await client.get("/books")).json()
        assert titles(by_year) == [
            "A Wizard of Earthsea",
            "The Left Hand of Darkness",
            "The Lathe of Heaven",
            "The Dispossessed",
            "Consider Phlebas",
        ]
        newest = (await client.get("/books", params={"order": "-year", "limit": 2})).json()
        assert titles(newest) == ["Consider Phlebas", "The Dispossessed"]
        by_title = (await client.get("/books", params={"order": "title", "limit": 2})).json()
        assert titles(by_title) == ["A Wizard of Earthsea", "Consider Phlebas"]

    run(url, scenario)


def test_books_are_filtered_by_author_and_year_and_paged(url: str) -> None:
    async def scenario(client: Client) -> None:
        le_guin, _ = await add_shelf(client)
        query = {"author_id": le_guin, "since": 1969, "limit": 2}
        first = (await client.get("/books", params=query)).json()
        assert first["total"] == 3
        assert first["offset"] == 0
        assert titles(first) == ["The Left Hand of Darkness", "The Lathe of Heaven"]
        second = (await client.get("/books", params={**query, "offset": 2})).json()
        assert second["total"] == 3
        assert titles(second) == ["The Dispossessed"]
        past = (await client.get("/books", params={**query, "offset": 3})).json()
        assert past == {"total": 3, "offset": 3, "items": []}

    run(url, scenario)


def test_a_page_size_out_of_bounds_is_422(url: str) -> None:
    async def scenario(client: Client) -> None:
        for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"order": "loans"}):
            assert (await client.get("/books", params=params)).status_code == 422, params

    run(url, scenario)


def test_a_change_at_the_current_revision_is_saved(url: str) -> None:
    async def scenario(client: Client) -> None:
        book = await add_book(client, await add_author(client), "Lathe of Heaven", 1970)
        changed = await client.patch(
            f"/books/{book['id']}", json={"revision": 1, "title": "The Lathe of Heaven"}
        )
        assert changed.status_code == 200
        assert changed.json() == {**book, "title": "The Lathe of Heaven", "revision": 2}
        assert (await client.get(f"/books/{book['id']}")).json() == changed.json()

    run(url, scenario)


def test_a_change_at_an_old_revision_is_refused_with_409(url: str) -> None:
    async def scenario(client: Client) -> None:
        book = await add_book(client, await add_author(client), "Earthsea", 1968)
        first = await client.patch(f"/books/{book['id']}", json={"revision": 1, "year": 1969})
        assert first.status_code == 200
        stale = await client.patch(f"/books/{book['id']}", json={"revision": 1, "year": 1970})
        assert stale.status_code == 409
        assert stale.json() == {"detail": "the book is at revision 2, not 1"}
        stored = (await client.get(f"/books/{book['id']}")).json()
        assert (stored["year"], stored["revision"]) == (1969, 2)

    run(url, scenario)


def test_a_change_racing_another_write_is_refused_with_409(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer changes the book between the request's read and its
    save: ``asave(if_unchanged=True)`` refuses, and nothing is overwritten."""
    real_asave = Book.asave

    async def asave_after_another_write(self: Any, if_unchanged: bool = False) -> Any:
        other = await Book.objects.aget(id=self.pk)
        other.title = "changed meanwhile"
        await real_asave(other)
        return await real_asave(self, if_unchanged=if_unchanged)

    async def scenario(client: Client) -> None:
        book = await add_book(client, await add_author(client), "Earthsea", 1968)
        monkeypatch.setattr(Book, "asave", asave_after_another_write)
        response = await client.patch(f"/books/{book['id']}", json={"revision": 1, "year": 1969})
        assert response.status_code == 409
        assert response.json() == {
            "detail": "the book changed since it was read; read it again and retry"
        }
        stored = (await client.get(f"/books/{book['id']}")).json()
        assert (stored["title"], stored["year"], stored["revision"]) == (
            "changed meanwhile",
            1968,
            1,
        )

    run(url, scenario)


def test_concurrent_changes_at_one_revision_let_exactly_one_through(url: str) -> None:
    async def scenario(client: Client) -> None:
        book = await add_book(client, await add_author(client), "Earthsea", 1968)
        responses = await asyncio.gather(
            *(
                client.patch(f"/books/{book['id']}", json={"revision": 1, "title": f"Take {n}"})
                for n in range(10)
            )
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200] + [409] * 9
        (winner,) = (r.json() for r in responses if r.status_code == 200)
        stored = (await client.get(f"/books/{book['id']}")).json()
        assert stored == winner
        assert stored["revision"] == 2

    run(url, scenario)


def test_concurrent_loans_are_all_counted(url: str) -> None:
    async def scenario(client: Client) -> None:
        book = await add_book(client, await add_author(client), "The Dispossessed", 1974)
        responses = await asyncio.gather(
            *(client.post(f"/books/{book['id']}/loans") for _ in range(25))
        )
        assert {response.status_code for response in responses} == {200}
        assert sorted(response.json()["loans"] for response in responses) == list(range(1, 26))
        assert (await client.get(f"/books/{book['id']}")).json()["loans"] == 25

    run(url, scenario)


def test_a_deleted_book_is_gone(url: str) -> None:
    async def scenario(client: Client) -> None:
        author_id = await add_author(client)
        book = await add_book(client, author_id, "The Dispossessed", 1974)
        deleted = await client.delete(f"/books/{book['id']}")
        assert deleted.status_code == 204
        assert (await client.get(f"/books/{book['id']}")).status_code == 404
        assert (await client.delete(f"/books/{book['id']}")).status_code == 404
        assert (await client.get("/books")).json()["total"] == 0
        assert (await client.get(f"/authors/{author_id}")).status_code == 200

    run(url, scenario)


# -- configuration -----------------------------------------------------------------


def test_the_storage_is_chosen_by_the_REPOCKET_URL_variable(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started without a URL, the application stores where $REPOCKET_URL
    says; what it saved is read back by sync code after it has stopped."""
    monkeypatch.setenv("REPOCKET_URL", url)

    async def scenario(client: Client) -> None:
        await add_author(client, "Octavia Butler", 1947)

    run(None, scenario)
    expected = "MemoryStorage" if url == "memory://" else "RedisStorage"
    assert type(configure.storage()).__name__ == expected
    assert Author.objects.get(name="Octavia Butler").born == 1947
