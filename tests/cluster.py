"""Start a throwaway 3-master Redis Cluster on free loopback ports for the tests.

Three ``redis-server --cluster-enabled yes`` processes, each in its own
temporary directory (its ``nodes.conf`` lives there), joined with
``redis-cli --cluster create ... --cluster-replicas 0``.  Every wait is
bounded; :meth:`RedisCluster.stop` stops every process that was started,
whatever state the cluster is in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from .servers import STARTUP_TIMEOUT, RedisServer, ServerUnavailable, start_redis_server

#: seconds for ``redis-cli --cluster create`` and for every node to agree
#: that the cluster is up (a bound on the wait, never a timing assertion)
CLUSTER_TIMEOUT = 60.0

MASTERS = 3


@dataclass
class RedisCluster:
    """The running nodes of a test cluster, started and owned by the session."""

    nodes: list[RedisServer] = field(default_factory=list)
    #: the nodes keep append-only files (a restarted node keeps its data)
    durable: bool = False

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def client(self, port: int) -> redis.Redis:
        """A plain client of one node (not cluster-aware), for inspection."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=STARTUP_TIMEOUT)

    def stop_node(self, index: int) -> None:
        """Stop node ``index`` (SIGTERM), keeping its directory for :meth:`restart`."""
        node = self.nodes[index]
        node.owns_directory = False
        node.stop()

    def restart(self, index: int) -> None:
        """Start node ``index`` again, on its port and with its ``nodes.conf``
        (and its data, if durable), after :meth:`stop_node`; wait until the
        cluster is up again."""
        old = self.nodes[index]
        self.nodes[index] = _start_node(old.directory, old.port, self.durable)
        self.nodes[index].owns_directory = True
        wait_until_ok(self.ports)

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()


def _cli() -> str:
    binary = os.environ.get("REPOCKET_REDIS_CLI") or shutil.which("redis-cli")
    if binary is None:
        raise ServerUnavailable(
            "redis-cli is not installed (Debian: apt-get install redis-tools); "
            "the Redis Cluster tests need it to create the cluster"
        )
    return binary


def _start_node(
    directory: str | None = None, port: int | None = None, durable: bool = False
) -> RedisServer:
    options = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        # a lost master is noticed (and the cluster marked down) in 2 s
        "--cluster-node-timeout",
        "2000",
    ]
    if durable:
        options += ["--appendonly", "yes"]
    if port is not None:
        return start_redis_server(options=options, directory=directory, port=port)
    failure: ServerUnavailable | None = None
    for _ in range(3):  # a port taken between choosing and binding it
        try:
            return start_redis_server(
                attempts=1, options=options, directory=directory, port=_cluster_port()
            )
        except ServerUnavailable as exc:
            failure = exc
    assert failure is not None
    raise failure


#: a node also listens on its port + 10000 (the cluster bus), so its port
#: must be at most 55535
HIGHEST_NODE_PORT = 65535 - 10000


def _cluster_port() -> int:
    """A free loopback port (the system's choice, binding port 0) whose
    cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port > HIGHEST_NODE_PORT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise ServerUnavailable("found no free loopback port pair (port, port + 10000)")


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def cluster_states(ports: Sequence[int]) -> dict[int, str]:
    """``cluster_state`` as each node reports it (``"down"`` when it cannot answer)."""
    states = {}
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
        try:
            info = client.execute_command("CLUSTER INFO")
            # redis-py parses the reply into a dict (of bytes or text)
            state = {_str(k): _str(v) for k, v in dict(info).items()}.get("cluster_state")
            states[port] = state or "?"
        except redis.exceptions.RedisError:
            states[port] = "down"
        finally:
            client.close()
    return states


def wait_until_ok(ports: Sequence[int], timeout: float = CLUSTER_TIMEOUT) -> None:
    """Wait (bounded) until every node says ``cluster_state:ok``."""
    deadline = time.monotonic() + timeout
    states: dict[int, str] = {}
    while time.monotonic() < deadline:
        states = cluster_states(ports)
        if all(state == "ok" for state in states.values()):
            return
        time.sleep(0.1)
    raise ServerUnavailable(f"the test cluster did not come up in {timeout:.0f} s: {states}")


def start_redis_cluster(masters: int = MASTERS, durable: bool = False) -> RedisCluster:
    """Start ``masters`` cluster-enabled redis-servers and join them into
    one cluster with no replicas (``durable``: with append-only files)."""
    cli = _cli()
    cluster = RedisCluster(durable=durable)
    try:
        for _ in range(masters):
            cluster.nodes.append(_start_node(durable=durable))
        try:
            created = subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{port}" for port in cluster.ports),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                capture_output=True,
                timeout=CLUSTER_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerUnavailable("redis-cli --cluster create did not finish in time") from exc
        if created.returncode != 0:
            output = (created.stdout + created.stderr).decode(errors="replace")[-800:]
            raise ServerUnavailable(f"redis-cli --cluster create failed: {output}")
        wait_until_ok(cluster.ports)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def reshard(cluster: RedisCluster, source: int, target: int, slots: int) -> str:
    """Move ``slots`` hash slots from node ``source`` to node ``target``
    (indexes into ``cluster.nodes``) with ``redis-cli --cluster reshard``,
    keys included; return its output."""
    ids = [
        cluster.client(port).execute_command("CLUSTER MYID").decode()
        for port in (cluster.ports[source], cluster.ports[target])
    ]
    done = subprocess.run(
        [
            _cli(),
            "--cluster",
            "reshard",
            f"127.0.0.1:{cluster.ports[0]}",
            "--cluster-from",
            ids[0],
            "--cluster-to",
            ids[1],
            "--cluster-slots",
            str(slots),
            "--cluster-yes",
            "--cluster-pipeline",
            "100",
        ],
        capture_output=True,
        timeout=CLUSTER_TIMEOUT * 2,
        stdin=subprocess.DEVNULL,
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster reshard failed: {output[-800:]}")
    return output


__all__ = [
    "RedisCluster",
    "start_redis_cluster",
    "wait_until_ok",
    "cluster_states",
    "reshard",
]
