"""A real Redis Cluster on loopback for the tests: N redis-server masters in cluster mode,
the 16,384 slots split between them, joined with CLUSTER MEET (no redis-cli needed)."""

from __future__ import annotations

import time
from pathlib import Path

import redis
from tokengate.shared.redis_server import RedisServer

SLOTS = 16384


class RedisCluster:
    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.masters = masters
        self.servers: list[RedisServer] = []
        for i in range(masters):
            folder = directory / f"node{i}"
            folder.mkdir(parents=True, exist_ok=True)
            self.servers.append(RedisServer(directory=str(folder), options=(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000")))

    @property
    def url(self) -> str:
        """Any one node: the gateway finds the node that owns its shard's slot."""
        return self.servers[0].url

    def clients(self) -> list[redis.Redis]:
        return [redis.Redis(host="127.0.0.1", port=s.port) for s in self.servers]

    def start(self) -> RedisCluster:
        for server in self.servers:
            server.start()
        clients = self.clients()[:self.masters]
        share = SLOTS // len(clients)
        for i, client in enumerate(clients):
            last = SLOTS - 1 if i == len(clients) - 1 else (i + 1) * share - 1
            for first in range(i * share, last + 1, 1000):  # ADDSLOTS: Redis 6 has no RANGE
                client.execute_command("CLUSTER", "ADDSLOTS",
                                       *range(first, min(first + 1000, last + 1)))
        for server in self.servers[1:self.masters]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", server.port)
        deadline = time.monotonic() + 30
        while not all(self._ok(c) for c in clients):
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)  # gossip converges in its own time: nothing to wait on
        for client in clients:
            client.close()
        return self

    @staticmethod
    def _ok(client: redis.Redis) -> bool:
        info = client.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text and "cluster_known_nodes:" in text and \
            int(text.split("cluster_known_nodes:")[1].split()[0]) >= 3

    def add_replica(self, directory: Path, master_port: int) -> RedisServer:
        """A replica of the master on ``master_port``, joined and in sync."""
        directory.mkdir(parents=True, exist_ok=True)
        replica = RedisServer(directory=str(directory), options=(
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000")).start()
        self.servers.append(replica)
        master = redis.Redis(port=master_port)
        node = redis.Redis(port=replica.port)
        try:
            master_id = master.execute_command("CLUSTER", "MYID")
            node.execute_command("CLUSTER", "MEET", "127.0.0.1", master_port)
            deadline = time.monotonic() + 30
            while True:
                try:
                    node.execute_command("CLUSTER", "REPLICATE", master_id)
                    break
                except redis.ResponseError:  # it does not know the master yet: gossip
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            while node.info("replication").get("master_link_status") != "up" or \
                    not self._known_everywhere(replica.port):
                if time.monotonic() > deadline:
                    raise TimeoutError("the replica did not sync, or the masters do not all "
                                       "know it (a failover needs their votes)")
                time.sleep(0.05)  # replication and gossip come up in their own time
        finally:
            master.close()
            node.close()
        return replica

    def _known_everywhere(self, port: int) -> bool:
        """Whether every master lists the node on ``port`` as a replica."""
        for server in self.servers[:self.masters]:
            client = redis.Redis(port=server.port)
            try:
                nodes = client.execute_command("CLUSTER", "NODES")
            finally:
                client.close()
            text = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
            if not any(f":{port}@" in line and "slave" in line for line in text.splitlines()):
                return False
        return True

    def fail_over(self, replica: RedisServer, attempts: int = 3) -> None:
        """A manual failover (CLUSTER FAILOVER on ``replica``: the master stops, the replica
        catches up, is elected and takes the slots, nothing lost), asked again if the
        election did not happen within 10 s."""
        node = redis.Redis(port=replica.port)
        try:
            for _ in range(attempts):
                node.execute_command("CLUSTER", "FAILOVER")
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if node.info("replication")["role"] == "master":
                        return
                    time.sleep(0.05)  # the election ends in its own time
            raise TimeoutError(f"the replica on {replica.port} was not promoted")
        finally:
            node.close()

    def port_of_slot(self, slot: int) -> int:
        """The port of the master the slot was given to at start."""
        masters = self.servers[:self.masters]
        share = SLOTS // len(masters)
        return masters[min(slot // share, len(masters) - 1)].port

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
