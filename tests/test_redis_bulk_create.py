"""bulk_create on the redis backend (and on memory, which runs its code):
new records of the common kind go to the CREATE_MANY script, the others to
SAVE_MANY, in the same pipeline; both leave the same data.

What any backend must do with bulk_create is in the conformance suite;
these pin the redis backend's two scripts against each other.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest

import repocket.backends.redis as redis_backend
from repocket.attributes import AutoUUID
from repocket.backends.layout import Shard
from repocket.errors import ConflictError, StorageError, UniqueViolation
from repocket.testing.query_models import Wizard

from .models import Build
from .roundtrips import command_names, count_round_trips, passing


def _layout(client) -> dict[bytes, object]:
    """Every key of the db with its type and content, ids made neutral."""
    found: dict[bytes, object] = {}
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"hash":
            found[key] = client.hgetall(key)
        elif kind == b"set":
            found[key] = client.smembers(key)
        elif kind == b"zset":
            found[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            found[key] = client.get(key)
    return found


def _spy_scripts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SHA of each script the redis backend pipelines, in order."""
    used: list[str] = []
    original = redis_backend.RedisStorage._pipelined_each

    def spy(self, per_call, calls):  # type: ignore[no-untyped-def]
        used.extend(script.sha for script in per_call)
        return original(self, per_call, calls)

    monkeypatch.setattr(redis_backend.RedisStorage, "_pipelined_each", spy)
    return used


def _wizards(count: int) -> list[Wizard]:
    return [Wizard(name=f"w{i}", house=f"h{i % 3}", age=i % 7) for i in range(count)]


def test_new_records_are_written_by_the_create_script(storage, monkeypatch) -> None:
    used = _spy_scripts(monkeypatch)
    with count_round_trips(storage) as trips:
        Wizard.objects.bulk_create(_wizards(250), batch_size=500)
    assert trips.count == 1
    # chunks of 100: three CREATE_MANY scripts
    assert used == [redis_backend._CREATE_MANY.sha] * 3
    assert Wizard.objects.count() == 250
    assert sorted(w.name for w in Wizard.objects.filter(house="h1")) == sorted(
        f"w{i}" for i in range(250) if i % 3 == 1
    )
    assert Wizard.objects.filter(age__gte=6).count() == len([i for i in range(250) if i % 7 >= 6])
    assert Wizard.objects.check().ok


def test_each_chunk_is_sent_before_the_next_is_packed(storage, monkeypatch) -> None:
    # the server runs a chunk's script while the client packs the next one:
    # in the one request of a batch, chunk k + 1's arguments are made only
    # after chunk k was handed to the socket
    from redis.connection import AbstractConnection

    monkeypatch.setattr(redis_backend, "SAVE_BATCH", 4)
    events: list[str] = []
    original_args = redis_backend._create_args

    def making(shard, names, writes):  # type: ignore[no-untyped-def]
        events.append(f"pack {len(writes)}")
        return original_args(shard, names, writes)

    # connect and load the scripts first: only the batch's request is seen below
    storage.ping()
    storage.load_scripts()
    original_send = AbstractConnection.send_packed_command
    requests: list[list[bytes]] = []

    def sending(self, command, check_health=True):  # type: ignore[no-untyped-def]
        sent: list[bytes] = []
        requests.append(sent)

        def pieces():  # type: ignore[no-untyped-def]
            for piece in passing(command, sent):
                events.append("send")
                yield piece

        return original_send(self, pieces(), check_health)

    monkeypatch.setattr(redis_backend, "_create_args", making)
    monkeypatch.setattr(AbstractConnection, "send_packed_command", sending)
    Wizard.objects.bulk_create(_wizards(10), batch_size=500)
    monkeypatch.undo()
    assert len(requests) == 1  # one round trip
    assert command_names(requests[0]) == ["EVALSHA"] * 3
    assert events == ["pack 4", "send", "pack 4", "send", "pack 2", "send"]
    assert Wizard.objects.count() == 10
    assert Wizard.objects.check().ok


def test_a_chunk_that_cannot_be_made_stops_the_request_and_is_reported(
    storage, monkeypatch
) -> None:
    # chunks are made while earlier ones are already sent and run: when one
    # cannot be made, nothing after it is sent, the replies of what was sent
    # are read (the connection stays usable), and the error is a
    # StorageError -- the batch's outcome is partly applied, as after a
    # connection lost half-way, and bulk_create again completes it once
    monkeypatch.setattr(redis_backend, "SAVE_BATCH", 4)
    original_args = redis_backend._create_args
    made: list[int] = []

    def making(shard, names, writes):  # type: ignore[no-untyped-def]
        made.append(len(writes))
        if len(made) == 3:
            raise RuntimeError("cannot make the third chunk")
        return original_args(shard, names, writes)

    wizards = _wizards(10)
    monkeypatch.setattr(redis_backend, "_create_args", making)
    with pytest.raises(StorageError, match="was sent 2 of 3 commands") as caught:
        Wizard.objects.bulk_create(wizards, batch_size=500)
    assert isinstance(caught.value.__cause__, RuntimeError)
    monkeypatch.setattr(redis_backend, "_create_args", original_args)
    # the first two chunks were run, and the connection reads its own replies
    assert Wizard.objects.count() == 8
    assert Wizard.objects.get(id=wizards[0].id).name == wizards[0].name
    # the records kept their ids: the same writes again store the last two
    # and find the first eight already there
    Wizard.objects.bulk_create(wizards, batch_size=500)
    assert sorted(w.name for w in Wizard.objects.all()) == sorted(w.name for w in wizards)
    assert Wizard.objects.check().ok


def _fixed_ids(monkeypatch, ids: list[uuid.UUID]) -> None:
    """Generated ids come from ``ids``, in order."""
    supply = iter(ids)
    monkeypatch.setattr(AutoUUID, "generate", staticmethod(lambda: next(supply)))
    monkeypatch.setattr(
        AutoUUID, "generate_many", staticmethod(lambda count: [next(supply) for _ in range(count)])
    )


def test_both_scripts_leave_the_same_data(storage, monkeypatch) -> None:
    ids = [uuid.UUID(f"0190a000-0000-7000-8000-{i:012d}") for i in range(30)]
    _fixed_ids(monkeypatch, ids)
    Wizard.objects.bulk_create(_wizards(30))
    created = _layout(storage.native_client)
    storage.clear()
    _fixed_ids(monkeypatch, ids)
    monkeypatch.setattr(redis_backend, "_plain_create", lambda write: False)
    Wizard.objects.bulk_create(_wizards(30))
    assert _layout(storage.native_client) == created


def test_plain_records_and_others_share_one_pipeline(storage, monkeypatch) -> None:
    used = _spy_scripts(monkeypatch)
    # a stream given content goes to the general script; a build without does not
    builds = [Build(stdout=b"out") if i % 2 else Build() for i in range(6)]
    with count_round_trips(storage) as trips:
        Build.objects.bulk_create(builds)
    assert trips.count == 1
    assert sorted(used) == sorted([redis_backend._CREATE_MANY.sha, redis_backend._SAVE_MANY.sha])
    assert [Build.objects.get(id=b.id).stdout for b in builds] == [b"", b"out"] * 3


def test_a_retried_batch_recognises_the_records_it_wrote(storage) -> None:
    wizards = Wizard.objects.bulk_create(_wizards(20))
    # the same create-only writes again, as after a lost reply: each is "same"
    again = [dataclasses.replace(w._prepare_save()[0], new=True) for w in wizards]
    assert all(redis_backend._plain_create(write) for write in again)
    storage.save_records(again)
    assert Wizard.objects.count() == 20
    assert Wizard.objects.check().ok


def test_an_id_taken_by_another_record_is_refused_and_the_others_written(storage) -> None:
    wizards = Wizard.objects.bulk_create(_wizards(3))
    writes = [w._prepare_save()[0] for w in _wizards(3)]
    # the second new record gets the id of an existing one, with other values
    writes[1] = dataclasses.replace(writes[1], record_id=str(wizards[0].id))
    with pytest.raises(ConflictError) as caught:
        storage.save_records(writes)
    assert caught.value.written == [writes[0].record_id, writes[2].record_id]
    assert Wizard.objects.count() == 5
    assert Wizard.objects.get(id=wizards[0].id).name == "w0"


def test_an_index_key_of_the_wrong_type_refuses_only_its_records(storage) -> None:
    shard = Shard(Wizard._meta.collection, 0, 1)
    storage.native_client.set(shard.index_key('eq:house:"h1"'), b"not a set")
    with pytest.raises(StorageError, match="nothing was written"):
        Wizard.objects.bulk_create(_wizards(6))
    # the records of the other houses were written, whole and indexed
    assert sorted(w.name for w in Wizard.objects.all()) == ["w0", "w2", "w3", "w5"]
    assert sorted(w.name for w in Wizard.objects.filter(house="h2")) == ["w2", "w5"]
    assert storage.native_client.get(shard.index_key('eq:house:"h1"')) == b"not a set"


def test_the_id_index_of_the_wrong_type_refuses_the_whole_batch(storage) -> None:
    shard = Shard(Wizard._meta.collection, 0, 1)
    storage.native_client.set(shard.ids_key, b"not a sorted set")
    before = _layout(storage.native_client)
    with pytest.raises(StorageError, match="nothing was written"):
        Wizard.objects.bulk_create(_wizards(6))
    assert _layout(storage.native_client) == before


def test_a_unique_value_held_elsewhere_refuses_that_record_only(storage) -> None:
    from repocket.testing.feature_models import Member

    Member.objects.create(email="taken@example.org", name="first")
    with pytest.raises(UniqueViolation):
        Member.objects.bulk_create(
            [Member(email="a@example.org"), Member(email="taken@example.org")]
        )
    assert sorted(m.email for m in Member.objects.all()) == ["a@example.org", "taken@example.org"]


def test_a_new_record_is_not_left_in_the_expiry_index(storage, monkeypatch) -> None:
    # an expiring record deleted by other means (its hash alone) leaves its id
    # in the expiry index; a new record given that id must not inherit it
    gone = Wizard.create(name="gone")
    gone.expire(100)
    storage.native_client.delete(storage.record_key(Wizard._meta.collection, str(gone.id)))
    _fixed_ids(monkeypatch, [gone.id])
    (again,) = Wizard.objects.bulk_create([Wizard(name="again")])
    assert again.id == gone.id
    assert Wizard.objects.get(id=again.id).ttl() is None


# -- packing --------------------------------------------------------------------


_ARGUMENTS = [
    b"EVALSHA",
    "8f54535015ec712ca04555b3a0ca845a19aa2683",
    3,
    "repocket::ids:a:B",
    "",
    b"",
    "h\u00e9llo \u2603 \U0001f600",
    b"\x00\xff\r\n",
    0,
    -17,
    2**70,
    0.1,
    -0.0,
    1e16,
    float("inf"),
    '{"type": "Unicode", "value": "x", "module": "repocket.attributes"}',
]


@pytest.mark.parametrize(
    "pack", [redis_backend._pack_command, redis_backend._pack_command_py], ids=["used", "python"]
)
def test_scripts_are_packed_byte_for_byte_as_redis_py_packs_them(pack) -> None:
    from redis._parsers.encoders import Encoder
    from redis.connection import PythonRespSerializer

    encoder = Encoder("utf-8", "strict", False)
    expected = b"".join(PythonRespSerializer(6000, encoder.encode).pack(*_ARGUMENTS))
    assert pack(tuple(_ARGUMENTS)) == expected


def test_the_python_packer_refuses_what_redis_py_refuses() -> None:
    for bad in (True, None, object()):
        with pytest.raises(TypeError):
            redis_backend._pack_command_py((b"SET", "k", bad))
    assert redis_backend._pack_command_py((b"SET", memoryview(b"k"), bytearray(b"v"))) == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    )
