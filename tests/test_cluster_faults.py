"""Faults on a real Redis Cluster: slots migrating while writes run, and a
master restarted mid-run.

These tests disturb their cluster, so they start their own (3 masters on
free loopback ports, append-only files on so that a restarted master keeps
its data) rather than the session's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from repocket.backends.cluster import RedisClusterStorage
from repocket.connections import configure
from repocket.errors import StorageConnectionError, StorageError
from repocket.testing.query_models import Wizard

from .cluster import RedisCluster, reshard, start_redis_cluster
from .servers import started_or_skipped

#: seconds a test waits for a restarted master to serve again (a bound)
RECOVERY_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[RedisCluster]:
    cluster = started_or_skipped(lambda: start_redis_cluster(durable=True))
    yield cluster
    cluster.stop()


@pytest.fixture
def storage(own_cluster: RedisCluster) -> Iterator[RedisClusterStorage]:
    store = configure.from_url(own_cluster.url)
    assert isinstance(store, RedisClusterStorage)
    store.clear()
    yield store
    configure.reset()


def test_slots_migrating_while_writes_and_queries_run_lose_nothing(
    storage: RedisClusterStorage, own_cluster: RedisCluster
) -> None:
    saved: dict[str, int] = {}  # id -> the age of its last save that succeeded
    failures: list[BaseException] = []
    done, migrating = threading.Event(), threading.Event()
    during: list[int] = []  # one entry per save made while slots were moving

    def write(worker: int) -> None:
        wizards: list[Wizard] = []
        n = 0
        try:
            while not done.is_set() or n < 50:
                n += 1
                if len(wizards) < 40:
                    wizard = Wizard(name=f"w{worker}-{n}", house="Gryffindor", age=n)
                    wizard.wand = f"wand {worker}-{n}"
                    wizard.save()
                    wizards.append(wizard)
                else:
                    wizard = wizards[n % len(wizards)]
                    wizard.age = n
                    wizard.wand = f"wand {worker}-{n}"
                    wizard.save()
                saved[str(wizard.id)] = n
                if migrating.is_set():
                    during.append(n)
        except BaseException as exc:  # reported by the test, not lost in a thread
            failures.append(exc)

    queried: list[int] = []  # one entry per query answered while slots were moving

    # records nobody changes meanwhile: a query must find exactly them
    Wizard.objects.bulk_create(
        [Wizard(name=f"still {n}", house="Ravenclaw", age=n) for n in range(100)]
    )

    def query() -> None:
        try:
            while not done.is_set():
                # every shard's transaction, some of them on moving slots
                # (redirected ones are run again through redis-py)
                assert Wizard.objects.filter(house="Ravenclaw").count() == 100
                oldest = Wizard.objects.filter(house="Ravenclaw").order_by("-age")[:3]
                assert [w.age for w in oldest] == [99, 98, 97]
                assert len(list(Wizard.objects.filter(house="Ravenclaw"))) == 100
                if migrating.is_set():
                    queried.append(1)
        except BaseException as exc:
            failures.append(exc)

    writers = [threading.Thread(target=write, args=(worker,)) for worker in range(2)]
    writers.append(threading.Thread(target=query))
    for writer in writers:
        writer.start()
    try:
        time.sleep(0.2)  # writes under way before the first slot moves
        migrating.set()
        reshard(own_cluster, source=0, target=1, slots=1500)
        reshard(own_cluster, source=2, target=0, slots=700)
        migrating.clear()
    finally:
        done.set()
        for writer in writers:
            writer.join(timeout=60)
    assert not failures, failures
    assert len(during) > 0 and len(queried) > 0
    # the slots did move: node 1 serves more of them than node 2 now
    slots = {port: _slot_count(own_cluster, port) for port in own_cluster.ports}
    assert slots[own_cluster.ports[1]] > slots[own_cluster.ports[2]] + 2000, slots
    assert len(saved) == 80
    loaded = Wizard.objects.get_many(list(saved))
    assert {str(w.id): w.age for w in loaded if w is not None} == saved
    assert Wizard.objects.count() == 180
    assert Wizard.objects.filter(house="Gryffindor").order_by("-age").count() == 80
    report = Wizard.objects.check()
    assert report.ok, report


def _slot_count(cluster: RedisCluster, port: int) -> int:
    """How many slots the node on ``port`` serves, as it says itself."""
    client = cluster.client(port)
    try:
        # redis-py parses CLUSTER NODES into {"host:port": {"slots": [[low, high]]...}}
        nodes = client.execute_command("CLUSTER NODES")
    finally:
        client.close()
    ranges = nodes[f"127.0.0.1:{port}"]["slots"]
    return sum(int(r[-1]) - int(r[0]) + 1 for r in ranges)


def test_a_restarted_master_fails_clearly_while_down_and_serves_again_after(
    storage: RedisClusterStorage, own_cluster: RedisCluster
) -> None:
    wizards = [Wizard.create(name=f"w{n}", house="Hufflepuff", age=n) for n in range(30)]
    own_cluster.stop_node(2)
    try:
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        with pytest.raises(StorageConnectionError) as info:
            while time.monotonic() < deadline:  # until the loss is noticed
                Wizard.objects.filter(house="Hufflepuff").count()
        assert "redis cluster at" in str(info.value) and "count" in str(info.value)
    finally:
        own_cluster.restart(2)
    # the same storage, not configured again
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        try:
            count = Wizard.objects.filter(house="Hufflepuff").count()
            break
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert count == 30
    assert Wizard.objects.get_many([w.id for w in wizards]) == wizards
    Wizard.create(name="after", house="Hufflepuff", age=99)
    assert Wizard.objects.filter(house="Hufflepuff").count() == 31
    assert Wizard.objects.check().ok


def _owner_and_other(cluster: RedisCluster, slot: int) -> tuple[int, str]:
    """The port of the master serving ``slot``, and another master's node id."""
    client = cluster.client(cluster.ports[0])
    try:
        ranges = client.execute_command("CLUSTER", "SLOTS")
    finally:
        client.close()
    owner = next(int(r[2][1]) for r in ranges if int(r[0]) <= slot <= int(r[1]))
    other = next(port for port in cluster.ports if port != owner)
    client = cluster.client(other)
    try:
        other_id = client.execute_command("CLUSTER", "MYID")
    finally:
        client.close()
    return owner, other_id.decode() if isinstance(other_id, bytes) else other_id


def test_a_script_refused_for_a_key_of_a_moving_slot_runs_again_once_it_settles(
    storage: RedisClusterStorage, own_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a slot marked as migrating, its keys not moved yet: a script that reads
    # a key of that slot it did not declare (here the shard's expiry index,
    # which does not exist) is refused by the node; the save is run again
    # until the slot is stable, and is applied once
    from redis.cluster import key_slot

    import repocket.backends.cluster as cluster_backend

    monkeypatch.setattr(cluster_backend, "MOVED_KEY_PAUSE_S", 0.01)
    wizard = Wizard.create(name="Harry", house="Gryffindor", age=1)
    key = storage.record_key(Wizard._meta.collection, str(wizard.id))
    slot = key_slot(key.encode())
    owner, other_id = _owner_and_other(own_cluster, slot)
    node = own_cluster.client(owner)
    refusals: list[Exception] = []
    run = RedisClusterStorage.__mro__[1]._run  # the single server's: no retry

    def counting(self, script, keys, args):  # type: ignore[no-untyped-def]
        try:
            return run(self, script, keys, args)
        except Exception as exc:
            refusals.append(exc)
            if len(refusals) == 3:  # the slot settles while the save waits
                node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
            raise

    monkeypatch.setattr(RedisClusterStorage.__mro__[1], "_run", counting)
    try:
        node.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", other_id)
        wizard.age = 2
        wizard.save()
    finally:
        node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        node.close()
    assert len(refusals) == 3
    assert all("non local key" in str(exc) for exc in refusals)
    assert Wizard.objects.get(id=wizard.id).age == 2
    assert Wizard.objects.filter(age=2).count() == 1
    assert Wizard.objects.check().ok


def test_a_script_refused_for_a_moving_slot_too_long_fails_having_written_nothing(
    storage: RedisClusterStorage, own_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.cluster import key_slot

    import repocket.backends.cluster as cluster_backend

    monkeypatch.setattr(cluster_backend, "MOVED_KEY_PAUSE_S", 0.001)
    monkeypatch.setattr(cluster_backend, "MOVED_KEY_ATTEMPTS", 5)
    wizard = Wizard.create(name="Harry", house="Gryffindor", age=1)
    key = storage.record_key(Wizard._meta.collection, str(wizard.id))
    slot = key_slot(key.encode())
    owner, other_id = _owner_and_other(own_cluster, slot)
    node = own_cluster.client(owner)
    try:
        node.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", other_id)
        wizard.age = 2
        with pytest.raises(StorageError, match="non local key"):
            wizard.save()
    finally:
        node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        node.close()
    assert Wizard.objects.get(id=wizard.id).age == 1
    assert Wizard.objects.check().ok
