"""Several processes writing one SQLite file lose no writes.

Each worker process saves its own records, updates them, appends to one
ByteStream that every worker shares, and tries to claim a unique value that
all of them want.  Afterwards every record, every update and every appended
chunk must be there, and exactly one worker must hold the unique value.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

from repocket import ActiveRecord, attributes
from repocket.connections import configure
from repocket.errors import UniqueViolation
from repocket.keys import Collection
from repocket.storage import IndexEntry, LoadRequest, Members, RecordWrite, ScoreRange
from repocket_sqlite import SQLiteStorage

WORKERS = 4
RECORDS = 40
#: Upper bound for the whole run; a deadlock or a lost wake-up fails the test.
DEADLINE = 120.0


class Tally(ActiveRecord):
    worker = attributes.Integer()
    seq = attributes.Integer()
    label = attributes.Unicode()


class Journal(ActiveRecord):
    name = attributes.Unicode()
    lines = attributes.ByteStream()


class Token(ActiveRecord):
    name = attributes.Unicode(unique=True)
    worker = attributes.Integer()


def work(url: str | None, worker: int, journal_id: str, start: Any, results: Any) -> None:
    """One writer: ``url`` None means "use the storage inherited from the parent"."""
    if url is not None:
        configure.from_url(url)
    start.wait(timeout=DEADLINE)
    journal = Journal.objects.get(id=journal_id)
    won = 0
    try:
        Token.create(name="the-one", worker=worker)
        won = 1
    except UniqueViolation:
        pass
    for seq in range(RECORDS):
        tally = Tally.create(worker=worker, seq=seq, label="new")
        journal.append_lines(f"{worker}:{seq}\n".encode())
        tally.label = f"done {worker}:{seq}"
        tally.save()
    results.put((worker, won))
    if url is not None:
        configure.reset()


def run_workers(context: Any, url: str | None, journal_id: str) -> dict[int, int]:
    start = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=work, args=(url, worker, journal_id, start, results))
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    deadline = time.monotonic() + DEADLINE
    outcome: dict[int, int] = {}
    try:
        while len(outcome) < WORKERS and time.monotonic() < deadline:
            try:
                worker, won = results.get(timeout=1)
            except Exception:  # queue.Empty: check whether a worker died
                if any(p.exitcode not in (None, 0) for p in processes):
                    break
                continue
            outcome[worker] = won
        for process in processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        alive = [p for p in processes if p.is_alive()]
        for process in alive:
            process.terminate()
            process.join(5)
    assert not alive, f"workers still running after {DEADLINE:g} s"
    assert [p.exitcode for p in processes] == [0] * WORKERS
    return outcome


def check_nothing_was_lost(outcome: dict[int, int], journal_id: str) -> None:
    assert sorted(outcome) == list(range(WORKERS))
    assert sum(outcome.values()) == 1  # exactly one worker got the unique value
    token = Token.objects.get(name="the-one")
    assert outcome[token.worker] == 1
    assert Token.objects.count() == 1

    assert Tally.objects.count() == WORKERS * RECORDS
    tallies = list(Tally.objects.all())
    assert sorted((t.worker, t.seq) for t in tallies) == [
        (w, s) for w in range(WORKERS) for s in range(RECORDS)
    ]
    assert all(t.label == f"done {t.worker}:{t.seq}" for t in tallies)
    for worker in range(WORKERS):
        assert Tally.objects.filter(worker=worker).count() == RECORDS
        assert [t.seq for t in Tally.objects.filter(worker=worker).order_by("-seq")] == list(
            range(RECORDS - 1, -1, -1)
        )
    assert Tally.objects.filter(label="new").count() == 0
    assert Tally.objects.check().ok

    lines = Journal.objects.get(id=journal_id).lines.decode().splitlines()
    assert sorted(lines) == sorted(f"{w}:{s}" for w in range(WORKERS) for s in range(RECORDS))
    for worker in range(WORKERS):  # each worker's appends landed in its own order
        mine = [int(line.split(":")[1]) for line in lines if line.startswith(f"{worker}:")]
        assert mine == list(range(RECORDS))


@pytest.fixture
def url(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    configure.from_url(url)
    yield url
    configure.reset()


def test_processes_started_with_spawn_lose_no_writes(url: str) -> None:
    journal = Journal.create(name="shared")
    outcome = run_workers(multiprocessing.get_context("spawn"), url, str(journal.id))
    check_nothing_was_lost(outcome, str(journal.id))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="this platform cannot fork"
)
def test_forked_processes_sharing_the_parents_storage_lose_no_writes(url: str) -> None:
    # The parent has an open connection when it forks; each child must open
    # its own rather than use (or close) the parent's.
    journal = Journal.create(name="shared")
    configure.storage().ping()
    outcome = run_workers(multiprocessing.get_context("fork"), None, str(journal.id))
    check_nothing_was_lost(outcome, str(journal.id))
    # The parent's connection still works after its children exited.
    assert Journal.objects.get(id=journal.id).name == "shared"


PROTOCOL = Collection("tests.concurrency", "Item")


def save_through_the_protocol(path: str, worker: int, start: Any) -> None:
    """A writer using the Storage protocol directly, opening a file that may not exist yet."""
    storage = SQLiteStorage(path)
    start.wait(timeout=DEADLINE)
    # Every worker saves the shared record (the same fields: last write wins),
    # as appending needs it to exist; the save names no stream, so it keeps
    # what the others appended.
    storage.save_record(RecordWrite(PROTOCOL, "log", {"id": json.dumps("log")}))
    for seq in range(RECORDS):
        storage.save_record(
            RecordWrite(
                PROTOCOL,
                f"{worker}-{seq:03}",
                {"id": json.dumps(seq)},
                entries=frozenset(
                    {IndexEntry(f"eq:worker:{worker}"), IndexEntry("range:seq", seq)}
                ),
            )
        )
        storage.append_to_stream(PROTOCOL, "log", "lines", b"%d\n" % worker)
    storage.close()


def test_processes_creating_the_file_together_lose_no_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "fresh.db")  # created by whichever worker comes first
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WORKERS)
    processes = [
        context.Process(target=save_through_the_protocol, args=(path, worker, start))
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    deadline = time.monotonic() + DEADLINE
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.terminate()
        process.join(5)
    assert not alive, f"workers still running after {DEADLINE:g} s"
    assert [p.exitcode for p in processes] == [0] * WORKERS
    storage = SQLiteStorage(path)
    try:
        assert storage.count_records(PROTOCOL) == WORKERS * RECORDS + 1  # and "log"
        for worker in range(WORKERS):
            assert storage.count_ids(PROTOCOL, Members(f"eq:worker:{worker}")) == RECORDS
        assert storage.count_ids(PROTOCOL, ScoreRange("range:seq", 0, 9)) == WORKERS * 10
        [log] = storage.load_records([LoadRequest(PROTOCOL, "log", ("lines",))])
        assert log is not None and len(log.streams["lines"]) == 2 * WORKERS * RECORDS
        assert sorted(log.streams["lines"].split()) == sorted(
            b"%d" % worker for worker in range(WORKERS) for _ in range(RECORDS)
        )
    finally:
        storage.close()


class Created(ActiveRecord):
    worker = attributes.Integer()


CREATORS, CREATES = 8, 2000


def create_many(worker: int, start: Any, done: Any) -> None:
    """A forked creator: the parent's storage, no ids of its own."""
    start.wait(timeout=DEADLINE)
    for _ in range(CREATES):
        Created.create(worker=worker)
    done.put(worker)


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="this platform cannot fork"
)
def test_forked_processes_creating_records_store_every_one(url: str) -> None:
    # Generated ids must differ across forked processes: 0.0.1's uuid1 ids
    # shared clock state with forked siblings, and a collision replaced a
    # record.  A create is create-only now, so one would also fail loudly.
    configure.storage().ping()
    context = multiprocessing.get_context("fork")
    start, done = context.Barrier(CREATORS), context.Queue()
    processes = [
        context.Process(target=create_many, args=(worker, start, done))
        for worker in range(CREATORS)
    ]
    for process in processes:
        process.start()
    finished = []
    try:
        for _ in processes:
            finished.append(done.get(timeout=DEADLINE))
    finally:
        for process in processes:
            process.join(timeout=DEADLINE)
    assert sorted(finished) == list(range(CREATORS))
    assert all(process.exitcode == 0 for process in processes)
    assert Created.objects.count() == CREATORS * CREATES
    ids = {str(record.pk) for record in Created.objects.all()}
    assert len(ids) == CREATORS * CREATES
    for worker in range(CREATORS):
        assert Created.objects.filter(worker=worker).count() == CREATES
