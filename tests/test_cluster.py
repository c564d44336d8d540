"""What the Redis Cluster backend does itself, on the session's real
3-master cluster: its URLs, where records land, one slot per script, and
unique claims kept apart from the records (docs/cluster.rst)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from redis.cluster import key_slot

import repocket.backends.redis as redis_backend
from repocket.async_storage import ThreadedAsyncStorage
from repocket.backends.cluster import DEFAULT_CLUSTER_SHARDS, RedisClusterStorage
from repocket.backends.layout import unique_key
from repocket.cli import main
from repocket.connections import configure
from repocket.errors import ConfigurationError, ConflictError, UniqueViolation
from repocket.testing.models import BlogPost, User
from repocket.testing.query_models import Counter, Wizard
from repocket.testing.suite.writes import TAKEN_ID, give_next_id

from .cluster import RedisCluster


@pytest.fixture
def cluster_storage(redis_cluster: RedisCluster) -> Iterator[RedisClusterStorage]:
    """The configured storage, on the session's cluster, empty."""
    storage = configure.from_url(redis_cluster.url)
    assert isinstance(storage, RedisClusterStorage)
    storage.clear()
    yield storage
    configure.reset()


def wizard_claims(storage: RedisClusterStorage) -> dict[str, str]:
    raw = storage.native_client.hgetall(unique_key(Wizard._collection))
    return {k.decode(): v.decode() for k, v in raw.items()}


# -- configuration ---------------------------------------------------------------------


def test_a_cluster_url_gives_a_cluster_client_and_64_shards(
    cluster_storage: RedisClusterStorage,
) -> None:
    assert cluster_storage.shards == DEFAULT_CLUSTER_SHARDS == 64
    assert isinstance(configure.get_connection(), redis.cluster.RedisCluster)


def test_the_shards_of_a_cluster_url_can_be_chosen(redis_cluster: RedisCluster) -> None:
    storage = configure.from_url(f"{redis_cluster.url}?shards=8")
    try:
        assert storage.shards == 8
        assert User.create(name="Harry").save()["hash"].startswith("repocket:{")
    finally:
        storage.clear()
        configure.reset()


def test_one_seed_node_is_enough(redis_cluster: RedisCluster) -> None:
    url = f"redis+cluster://127.0.0.1:{redis_cluster.ports[-1]}"
    storage = configure.from_url(url)
    try:
        storage.ping()
        nodes = {node.port for node in storage.native_client.get_primaries()}
        assert nodes == set(redis_cluster.ports)
    finally:
        configure.reset()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis+cluster://127.0.0.1:7000?shards=1", "at least 2 shards"),
        ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
        ("redis+cluster://127.0.0.1:notaport", "whole number from 1 to 65535"),
        ("redis+cluster://:7000", "host:port"),
        ("redis+cluster://127.0.0.1:7000?shards=two", "shards must be a whole number"),
    ],
)
def test_a_cluster_url_that_cannot_be_used_is_refused_with_its_reason(url: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        configure.from_url(url)


def test_a_password_in_a_cluster_url_is_never_shown(redis_cluster: RedisCluster) -> None:
    url = f"redis+cluster://someone:s3cr3t@127.0.0.1:{redis_cluster.ports[0]}/9"
    with pytest.raises(ConfigurationError) as info:
        configure.from_url(url)
    assert "s3cr3t" not in str(info.value)


# -- layout ----------------------------------------------------------------------------


def test_one_models_records_land_on_all_three_masters(
    cluster_storage: RedisClusterStorage, redis_cluster: RedisCluster
) -> None:
    for n in range(60):
        User.create(name=f"wizard {n}")
    per_node = {}
    for port in redis_cluster.ports:
        client = redis_cluster.client(port)
        keys = list(client.scan_iter(match="repocket:{repocket.testing.models:User:*}:*"))
        client.close()
        per_node[port] = len(keys)
    assert sum(per_node.values()) == 60
    assert all(count > 0 for count in per_node.values()), per_node


def test_every_write_script_touches_keys_of_one_slot(
    cluster_storage: RedisClusterStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    run, pipelined = cluster_storage._run, cluster_storage._pipelined_each

    def spy_run(script: Any, keys: Any, args: Any) -> Any:
        calls.append(list(keys))
        return run(script, keys, args)

    def spy_pipelined(scripts: Any, batch: Any) -> Any:
        calls.extend(list(keys) for keys, _ in batch)
        return pipelined(scripts, batch)

    monkeypatch.setattr(cluster_storage, "_run", spy_run)
    monkeypatch.setattr(cluster_storage, "_pipelined_each", spy_pipelined)
    User.objects.bulk_create([User(name=f"u{n}") for n in range(30)])
    Wizard.objects.bulk_create([Wizard(name=f"w{n}", wand=f"wand {n}") for n in range(5)])
    post = BlogPost.create(body="once\n")
    post.append_body("twice\n")
    post.delete()
    wizard = Wizard.create(name="Harry", house="Gryffindor", wand="holly")
    wizard.wand = "elder"
    wizard.save()
    wizard.delete()
    counter = Counter.create(name="c", ticket=1)
    counter.increment("ticket")
    assert len(calls) >= 10
    for keys in calls:
        assert len({key_slot(key.encode()) for key in keys}) == 1, keys


def test_bulk_create_saves_new_records_with_one_script_per_shard_chunk(
    cluster_storage: RedisClusterStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    pipelined = cluster_storage._pipelined_each

    def spy(scripts: Any, batch: Any) -> Any:
        sent.extend(script.sha for script in scripts)
        return pipelined(scripts, batch)

    monkeypatch.setattr(cluster_storage, "_pipelined_each", spy)
    users = User.objects.bulk_create([User(name=f"u{n}", house_name="h") for n in range(300)])
    shards = {cluster_storage._shard(User._collection, str(u.id)).number for u in users}
    # plain new records: CREATE_MANY, one script per shard the batch touches
    assert set(sent) == {redis_backend._CREATE_MANY.sha}
    assert len(sent) == len(shards)
    assert User.objects.count() == 300
    assert User.objects.filter(house_name="h").count() == 300
    assert User.objects.check().ok


def test_a_model_without_unique_fields_writes_no_claims(
    cluster_storage: RedisClusterStorage,
) -> None:
    user = User.create(name="Harry")
    user.name = "Harry Potter"
    user.save()
    user.delete()
    assert not cluster_storage.native_client.exists(unique_key(User._collection))


def test_every_id_is_listed_once_in_order_across_shards_and_pages(
    cluster_storage: RedisClusterStorage,
) -> None:
    users = [User.create(name=f"wizard {n}") for n in range(150)]
    listed = list(cluster_storage.iter_ids(User._collection, batch_size=2))
    assert listed == sorted(str(user.id) for user in users)


# -- unique claims ---------------------------------------------------------------------


def test_of_concurrent_creates_of_one_unique_value_exactly_one_wins(
    cluster_storage: RedisClusterStorage,
) -> None:
    racers = 8
    start = threading.Barrier(racers)
    won: list[Wizard] = []
    refused: list[UniqueViolation] = []

    def create(n: int) -> None:
        wizard = Wizard(name=f"racer {n}", house="Gryffindor", wand="elder")
        start.wait(timeout=10)
        try:
            wizard.save()
        except UniqueViolation as exc:
            refused.append(exc)
        else:
            won.append(wizard)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(won) == 1 and len(refused) == racers - 1
    assert {exc.other_id for exc in refused} == {str(won[0].id)}
    assert list(wizard_claims(cluster_storage).values()) == [str(won[0].id)]
    assert Wizard.objects.filter(wand="elder").count() == 1
    assert Wizard.objects.check().ok


def test_a_value_given_up_is_released_for_others(cluster_storage: RedisClusterStorage) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor", wand="holly")
    harry.wand = "elder"
    harry.save()
    Wizard.create(name="Ollivander", house="Ravenclaw", wand="holly")
    with pytest.raises(UniqueViolation):
        Wizard.create(name="Draco", house="Slytherin", wand="elder")
    harry.delete()
    Wizard.create(name="Draco", house="Slytherin", wand="elder")
    assert len(wizard_claims(cluster_storage)) == 2


def test_a_save_its_record_refuses_gives_back_the_claims_it_took(
    cluster_storage: RedisClusterStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    Wizard.create(id=TAKEN_ID, name="Harry", house="Gryffindor", wand="holly")
    newcomer = Wizard(name="Draco", house="Slytherin", wand="hawthorn")
    give_next_id(monkeypatch, TAKEN_ID)
    with pytest.raises(ConflictError):
        newcomer.save()
    assert list(wizard_claims(cluster_storage).values()) == [TAKEN_ID]
    monkeypatch.undo()
    Wizard.create(name="Narcissa", house="Slytherin", wand="hawthorn")


def test_a_claim_left_by_an_interrupted_save_is_repaired_by_reindex(
    cluster_storage: RedisClusterStorage,
) -> None:
    harry = Wizard.create(name="Harry", house="Gryffindor", wand="holly")
    # a save interrupted between its claim and its record: the claim names a
    # record that does not hold the value (here, none at all)
    claims = wizard_claims(cluster_storage)
    (holly,) = claims
    cluster_storage.native_client.hset(
        unique_key(Wizard._collection), holly.replace("holly", "elder"), "gone"
    )
    with pytest.raises(UniqueViolation):
        Wizard.create(name="Draco", house="Slytherin", wand="elder")
    Wizard.objects.reindex()
    assert wizard_claims(cluster_storage) == {holly: str(harry.id)}
    Wizard.create(name="Draco", house="Slytherin", wand="elder")


# -- async code ------------------------------------------------------------------------


def test_async_code_runs_on_the_cluster_through_worker_threads(
    cluster_storage: RedisClusterStorage,
) -> None:
    async def scenario() -> tuple[str, int, str | None]:
        harry = await Wizard.objects.acreate(name="Harry", house="Gryffindor", wand="holly")
        with pytest.raises(UniqueViolation):
            await Wizard.objects.acreate(name="Draco", house="Slytherin", wand="holly")
        loaded = await Wizard.objects.aget(id=harry.id)
        return loaded.name, await Wizard.objects.filter(house="Gryffindor").acount(), loaded.wand

    assert asyncio.run(scenario()) == ("Harry", 1, "holly")
    assert isinstance(cluster_storage.open_async(), ThreadedAsyncStorage)


# -- the command line ------------------------------------------------------------------


def test_the_demo_runs_on_the_cluster_and_cleans_up(redis_cluster: RedisCluster) -> None:
    try:
        result = CliRunner().invoke(main, ["demo", "--url", redis_cluster.url])
        assert result.exit_code == 0, result.output
        assert "redis cluster at 127.0.0.1:" in result.output
        assert "['Ron Weasley', 'Harry Potter']" in result.output
        # the index keys it lists are the shard-tagged ones
        assert "repocket::index:{repocket.demo:User:" in result.output
        client = configure.get_connection()
        assert list(client.scan_iter(match="repocket:*repocket.demo:*")) == []
    finally:
        configure.reset()


def test_ping_answers_on_the_cluster(redis_cluster: RedisCluster) -> None:
    result = CliRunner().invoke(main, ["ping", "--url", redis_cluster.url])
    assert result.exit_code == 0, result.output
    assert "PONG" in result.output and "redis cluster at" in result.output


def test_ping_of_an_unreachable_cluster_names_its_seeds() -> None:
    with socket.socket() as held:  # bound, not listening: connections are refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        result = CliRunner().invoke(main, ["ping", "--url", f"redis+cluster://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot reach redis cluster at 127.0.0.1:{port}")
    assert "Traceback" not in result.output
