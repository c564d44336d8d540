"""The conformance suite on sharded storage (``shards=4``).

With more than one shard every key of a model carries a hash tag
(``repocket:{<module>:<Model>:<n>}:<id>``, ``n = crc32(id) % shards``; see
:mod:`repocket.keys`), and every query runs on each shard and merges the
shards' pages.  What a model does must not change: the whole suite runs on
the memory backend and on the session's real redis-server, both split into
four shards.

Five tests of the suite assert the single-shard key names
(``repocket:<module>:<Model>:<id>``) that ``save()``, ``append_<name>()`` and
pointers report; they are left out here (set to ``None``, the suite's way)
and :class:`ShardedConformance` asserts the same things with the sharded names.
"""

from __future__ import annotations

import json
import zlib

from repocket.backends.memory import MemoryStorage
from repocket.backends.redis import RedisStorage
from repocket.storage import Storage
from repocket.testing.models import BlogPost, Build, Project, User
from repocket.testing.suite import ConformanceSuite
from repocket.testing.suite.records import HARRY_ID, MODULE, stored_record

from .servers import RedisServer

SHARDS = 4


def tagged(model: type, record_id: object, shards: int = SHARDS) -> str:
    """The sharded record key, computed here rather than by repocket.keys."""
    shard = zlib.crc32(str(record_id).encode()) % shards
    return f"repocket:{{{MODULE}:{model.__name__}:{shard}}}:{record_id}"


class ShardedConformance(ConformanceSuite):
    """The whole suite, with the keys ``save()``, appends and pointers report
    asserted in the sharded layout (of :attr:`shards` shards)."""

    shards = SHARDS

    def tagged(self, model: type, record_id: object) -> str:
        return tagged(model, record_id, self.shards)

    def test_save_returns_the_tagged_hash_key(self, storage: Storage) -> None:
        keys = User.create(id=HARRY_ID, name="Harry Potter").save()
        assert keys == {"hash": self.tagged(User, HARRY_ID), "strings": {}}

    def test_stream_keys_carry_the_tag_of_their_record(self, storage: Storage) -> None:
        post = BlogPost(body="the initial content\n")
        keys = post.save()
        body_key = f"{self.tagged(BlogPost, post.id)}:field:body"
        assert keys == {"hash": self.tagged(BlogPost, post.id), "strings": {"body": body_key}}
        assert post.append_body("more\n") == body_key
        assert stored_record(storage, post).streams["body"] == b"the initial content\nmore\n"

    def test_emptying_a_stream_drops_it_from_the_reported_keys(self, storage: Storage) -> None:
        build = Build.create(stdout=b"a", stderr=b"b")
        build.stdout = b""
        assert build.save()["strings"] == {"stderr": f"{self.tagged(Build, build.id)}:field:stderr"}
        assert build.delete() == 2

    def test_pointer_stores_the_tagged_key_of_its_target(self, storage: Storage) -> None:
        project = Project.create(name="repocket")
        build = Build.create(project=project)
        raw = stored_record(storage, build).fields["project"]
        assert json.loads(raw)["value"] == self.tagged(Project, project.id)
        assert Build.objects.get(id=build.id).project == project


# These assert the single-shard key names; ShardedConformance's own tests
# assert the same with the sharded ones.
SINGLE_SHARD_LAYOUT_TESTS = (
    "test_save_returns_the_hash_key_and_no_strings",
    "test_bytestream_is_stored_apart_from_the_fields",
    "test_append_appends_in_storage_and_on_the_instance",
    "test_emptying_a_stream_and_saving_removes_it",
    "test_pointer_stores_the_target_hash_key",
)
for _name in SINGLE_SHARD_LAYOUT_TESTS:
    setattr(ShardedConformance, _name, None)  # the suite's way to leave a test out


class TestShardedMemoryConformance(ShardedConformance):
    def make_storage(self) -> MemoryStorage:
        return MemoryStorage(shards=SHARDS)


class TestShardedRedisConformance(ShardedConformance):
    def make_storage(self) -> RedisStorage:
        server: RedisServer = self.request.getfixturevalue("redis_server")
        return RedisStorage.from_url(f"{server.url}?shards={SHARDS}")
