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
        clients = self.clients()
        share = SLOTS // len(clients)
        for i, client in enumerate(clients):
            last = SLOTS - 1 if i == len(clients) - 1 else (i + 1) * share - 1
            for first in range(i * share, last + 1, 1000):  # ADDSLOTS: Redis 6 has no RANGE
                client.execute_command("CLUSTER", "ADDSLOTS",
                                       *range(first, min(first + 1000, last + 1)))
        for server in self.servers[1:]:
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
            int(text.split("cluster_known_nodes:")[1].split()[0]) == 3

    def port_of_slot(self, slot: int) -> int:
        share = SLOTS // len(self.servers)
        return self.servers[min(slot // share, len(self.servers) - 1)].port

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
