"""The conformance suite on a real 3-master Redis Cluster (``redis+cluster://``).

The session's cluster (``redis_cluster``, started on free loopback ports)
holds every model split into the cluster default of 64 shards: every key of
shard ``n`` carries the tag ``{<module>:<Model>:<n>}``, so the keys
``save()``, appends and pointers report are asserted as in the sharded
suite (:class:`~tests.test_suite_sharded.ShardedConformance`), with 64
shards.
"""

from __future__ import annotations

from repocket.backend_registry import backend_for_url
from repocket.backends.cluster import DEFAULT_CLUSTER_SHARDS, RedisClusterStorage

from .cluster import RedisCluster
from .test_suite_sharded import ShardedConformance


class TestClusterConformance(ShardedConformance):
    shards = DEFAULT_CLUSTER_SHARDS

    def make_storage(self) -> RedisClusterStorage:
        cluster: RedisCluster = self.request.getfixturevalue("redis_cluster")
        # through the scheme registry, as configure.from_url() finds it
        storage = backend_for_url(cluster.url)
        assert isinstance(storage, RedisClusterStorage)
        return storage
