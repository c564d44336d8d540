"""How the redis backend reads records: its direct hiredis reply reader,
the read script that answers a query with its records, and the fields
mapping it hands the model layer.

The results of every read are covered by the conformance suite; these tests
pin what that suite cannot see: which path a read took, what it leaves on
the connection after an error or a timeout, and the mapping's behaviour.
"""

from __future__ import annotations

import copy
import os
import pickle
import signal
import uuid
from collections.abc import Iterator

import pytest
from redis.backoff import NoBackoff
from redis.retry import Retry

import repocket.backends.redis as redis_backend
from repocket.backends.redis import RedisStorage
from repocket.connections import configure
from repocket.errors import ConflictError, StorageConnectionError, StorageError, ValidationError
from repocket.storage import ByteNamedFields
from repocket.testing.models import BlogPost, User
from repocket.testing.query_models import Wizard

from .roundtrips import count_round_trips
from .servers import RedisServer


@pytest.fixture
def real_redis(redis_server: RedisServer) -> Iterator[RedisStorage]:
    store = RedisStorage.from_url(redis_server.url)
    store.clear()
    configure.use(store)
    try:
        yield store
    finally:
        configure.reset()


def _spy_fast_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, for each batch read, whether the hiredis reader read it."""
    taken: list[bool] = []
    original = redis_backend._hiredis_replies

    def spy(conn: object, count: int) -> object:
        replies = original(conn, count)
        taken.append(replies is not None)
        return replies

    monkeypatch.setattr(redis_backend, "_hiredis_replies", spy)
    return taken


# -- the hiredis reply reader ----------------------------------------------------------


def test_bulk_loads_on_a_real_server_read_replies_with_hiredis(
    real_redis: RedisStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("hiredis", reason="the test extra installs hiredis")
    users = User.objects.bulk_create([User(name=f"u{i}", house_name="h") for i in range(50)])
    taken = _spy_fast_reads(monkeypatch)
    found = User.objects.get_many([u.id for u in users])
    assert [u.name for u in found if u is not None] == [f"u{i}" for i in range(50)]
    assert taken == [True]


def test_the_memory_backend_reads_replies_the_way_fakeredis_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from repocket.backends.memory import MemoryStorage

    configure.use(MemoryStorage())
    try:
        users = User.objects.bulk_create([User(name=f"u{i}") for i in range(3)])
        taken = _spy_fast_reads(monkeypatch)
        assert [u.name for u in User.objects.get_many([u.id for u in users]) if u] == [
            "u0",
            "u1",
            "u2",
        ]
        # fakeredis's connection reads its own replies: the fast reader declines
        assert taken == [False]
    finally:
        configure.reset()


def test_an_error_reply_in_a_batch_raises_and_leaves_the_connection_usable(
    real_redis: RedisStorage,
) -> None:
    users = User.objects.bulk_create([User(name=f"u{i}") for i in range(5)])
    # a key of the wrong type where the third record's hash should be
    broken = real_redis.record_key(User._meta.collection, str(users[2].id))
    real_redis.native_client.delete(broken)
    real_redis.native_client.set(broken, b"not a hash")
    with pytest.raises(StorageError, match="WRONGTYPE"):
        User.objects.get_many([u.id for u in users])
    # every reply of the failed batch was read: the next reads get their own
    for _ in range(3):
        assert User.objects.get(id=users[4].id).name == "u4"
        loaded = User.objects.get_many([users[0].id, users[1].id])
        assert [u.name for u in loaded if u] == ["u0", "u1"]


def test_a_timeout_while_reading_a_batch_disconnects(server: RedisServer) -> None:
    store = RedisStorage.from_url(server.url, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    configure.use(store)
    try:
        users = User.objects.bulk_create([User(name=f"u{i}") for i in range(20)])
        ids = [u.id for u in users]
        # the batch is sent to a server that does not answer in time
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(StorageConnectionError):
                User.objects.get_many(ids)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        # the late replies were not left for the connection's next user:
        # each read gets its own answers
        for _ in range(3):
            loaded = User.objects.get_many(ids[:5])
            assert [u.name for u in loaded if u] == [f"u{i}" for i in range(5)]
            assert User.objects.get(id=ids[7]).name == "u7"
    finally:
        configure.reset()


# -- the read script ---------------------------------------------------------------------


def test_a_small_filter_is_one_command_that_returns_ids_and_records(storage) -> None:
    Wizard.objects.bulk_create(
        [Wizard(name=f"w{i}", house="Gryffindor" if i % 2 else "Slytherin") for i in range(40)]
    )
    with count_round_trips(storage) as trips:
        found = list(Wizard.objects.filter(house="Gryffindor"))
    assert sorted(w.name for w in found) == sorted(f"w{i}" for i in range(1, 40, 2))
    # without an order, results come in id order
    assert [w.id for w in found] == sorted(w.id for w in found)
    assert trips.names == ["EVALSHA"]


def test_a_filter_larger_than_a_batch_is_read_from_a_snapshot(storage) -> None:
    Wizard.objects.bulk_create([Wizard(name=f"w{i}", house="Gryffindor") for i in range(30)])
    with count_round_trips(storage) as trips:
        found = list(Wizard.objects.filter(house="Gryffindor").iterator(batch_size=10))
    assert sorted(w.name for w in found) == sorted(f"w{i}" for i in range(30))
    # the read script finds 30 > 10 and reads no record; then the snapshot
    # (one trip), two more pages of it, and one load per page of 10
    assert trips.names[0] == "EVALSHA"
    assert trips.count == 1 + 3 + 3


def test_a_page_with_streams_reads_them_in_the_same_command(storage) -> None:
    posts = [BlogPost(title=f"p{i}", body=f"body {i}".encode()) for i in range(12)]
    for post in posts:
        post.save()
    with count_round_trips(storage) as trips:
        page = BlogPost.objects.order_by("-created_at")[2:5]
    expected = sorted(posts, key=lambda p: (p.created_at, str(p.id)), reverse=True)[2:5]
    assert [p.id for p in page] == [p.id for p in expected]
    assert [p.body for p in page] == [p.body for p in expected]
    assert trips.names[-1] == "EVALSHA"


def test_a_record_deleted_behind_the_index_is_left_out(storage) -> None:
    wizards = Wizard.objects.bulk_create([Wizard(name=f"w{i}", age=i) for i in range(5)])
    # the hash goes, its index entries stay (another program deleted it)
    storage.native_client.delete(storage.record_key(Wizard._meta.collection, str(wizards[2].id)))
    assert [w.age for w in Wizard.objects.order_by("age")[:5]] == [0, 1, 3, 4]
    assert sorted(w.age for w in Wizard.objects.filter(age__gte=0, age__lt=10)) == [0, 1, 3, 4]


def test_an_inexact_score_sends_the_page_to_the_checked_path(storage) -> None:
    # 2**53 + 1 has no exact float score: the range index holds it inexactly,
    # so the read script's guard refuses and the query checks every value
    Wizard.objects.bulk_create(
        [Wizard(name="big", age=2**53 + 1), Wizard(name="bigger", age=2**53 + 2)]
        + [Wizard(name=f"w{i}", age=i) for i in range(3)]
    )
    assert [w.name for w in Wizard.objects.order_by("-age")[:2]] == ["bigger", "big"]
    assert [w.name for w in Wizard.objects.filter(age__gt=2**53 + 1)] == ["bigger"]


# -- the fields a hash reply becomes -----------------------------------------------------


def test_byte_named_fields_read_as_text_names() -> None:
    fields = ByteNamedFields({b"name": b"x", b"caf\xc3\xa9": b"y", b"\xff": b"z"})
    assert fields["name"] == b"x"
    assert fields["café"] == b"y"
    assert fields["\\xff"] == b"z"  # not UTF-8: shown with a backslash escape
    assert list(fields) == ["name", "café", "\\xff"]
    assert len(fields) == 3
    assert fields.get("missing") is None
    assert fields == {"name": b"x", "café": b"y", "\\xff": b"z"}
    assert {**fields, "name": b"new"}["name"] == b"new"
    assert pickle.loads(pickle.dumps(fields)) == dict(fields)
    assert copy.deepcopy(fields) == dict(fields)


def test_loaded_fields_serve_a_conditional_save(storage) -> None:
    # the fields a load kept (byte-named) are what the conditional save compares
    user = User.objects.create(name="a", house_name="h")
    first, second = User.objects.get(id=user.id), User.objects.filter(house_name="h").first()
    assert second is not None
    second.name = "changed"
    second.save(if_unchanged=True)
    first.name = "b"
    with pytest.raises(ConflictError):
        first.save(if_unchanged=True)
    fresh = User.objects.get_many([user.id])[0]
    assert fresh is not None
    fresh.name = "b"
    fresh.save(if_unchanged=True)
    assert User.objects.get(id=user.id).name == "b"


# -- ids given to get_many ----------------------------------------------------------------


def test_get_many_takes_ids_in_any_form_a_uuid_field_accepts(storage) -> None:
    users = User.objects.bulk_create([User(name=f"u{i}") for i in range(3)])
    forms = [
        users[0].id,  # a UUID
        str(users[1].id).upper(),  # text not in canonical form
        "{" + str(users[2].id) + "}",
    ]
    assert [u.name for u in User.objects.get_many(forms) if u] == ["u0", "u1", "u2"]
    assert User.objects.get_many([str(uuid.uuid4())]) == [None]
    with pytest.raises(ValidationError, match=r"User\.id"):
        User.objects.get_many(["not-a-uuid"])
    with pytest.raises(ValidationError, match=r"User\.id"):
        User.objects.get_many([42])


def test_get_many_gives_records_the_uuids_it_was_asked_for(storage) -> None:
    users = User.objects.bulk_create([User(name=f"u{i}") for i in range(3)])
    asked = [uuid.UUID(str(u.id)) for u in users]  # equal, not the same objects
    found = User.objects.get_many(asked)
    assert [u.id for u in found if u] == asked
    assert all(u is not None and u.id is a for u, a in zip(found, asked, strict=True))


def test_a_stored_id_unlike_the_key_is_read_from_the_record(storage) -> None:
    # the hash's own id field says another id than its key: what is stored
    # is what loads, whether the caller gave a UUID or text
    user = User.objects.create(name="u")
    other = uuid.uuid4()
    key = storage.record_key(User._meta.collection, str(user.id))
    envelope = storage.native_client.hget(key, "id")
    storage.native_client.hset(
        key, "id", envelope.replace(str(user.id).encode(), str(other).encode())
    )
    assert User.objects.get_many([user.id])[0].id == other
    assert User.objects.get_many([str(user.id)])[0].id == other


def test_a_larger_result_comes_as_ids_then_one_load(storage) -> None:
    # more records than the read script returns inline: it returns the ids,
    # and the records are loaded with pipelined HGETALLs (one more trip)
    inline = redis_backend._READ_INLINE
    Wizard.objects.bulk_create(
        [Wizard(name=f"w{i}", house="Gryffindor", age=i) for i in range(inline + 30)]
    )
    with count_round_trips(storage) as trips:
        found = list(Wizard.objects.filter(house="Gryffindor"))
    assert len(found) == inline + 30
    assert [w.id for w in found] == sorted(w.id for w in found)
    assert trips.count == 2
    assert trips.names[0] == "EVALSHA"
    with count_round_trips(storage) as trips:
        page = Wizard.objects.order_by("-age")[5 : 5 + inline + 10]
    assert [w.age for w in page] == list(range(inline + 24, 14, -1))
    assert trips.count == 2
