"""Where a shard lives on a Redis Cluster: the master of its hash slot (pure lookups over
one client; :class:`~tokengate.gateway.ledger.redis_core.RedisCore` follows the slot)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from tokengate.gateway.ledger.codec import text
from tokengate.gateway.ledger.edge import unavailable
from tokengate.shared.errors import LedgerError, RedisUnavailable


def at(url: str, host: str, port: int) -> str:
    """``url`` with another host and port (the same password, database and options)."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}:{port}" if auth else
                                     f"{host}:{port}"))


Node = tuple[str, int]


def slot_owner(client: redis.Redis, key: str) -> tuple[Node, list[Node]] | None:
    """The master of the Redis Cluster slot of ``key`` and every node of the cluster
    (masters and replicas), from one CLUSTER SLOTS; None if Redis is not a cluster."""
    try:
        if not client.info("cluster").get("cluster_enabled"):
            return None
        command = client.execute_command  # untyped in redis-py
        slot = int(command("CLUSTER", "KEYSLOT", key))  # type: ignore[no-untyped-call]
        ranges = command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
    except redis.RedisError as exc:
        if unavailable(exc):
            raise RedisUnavailable(f"Redis cannot serve now: {exc}") from None
        raise LedgerError(f"Redis refused the Redis Cluster lookup: {exc}",
                          script="slot_owner") from None

    def node(entry: Any) -> Node:
        return text(entry[0]) or "127.0.0.1", int(entry[1])
    nodes = list(dict.fromkeys(node(n) for _, _, *served in ranges for n in served))
    for first, last, master, *_ in ranges:
        if first <= slot <= last:
            return node(master), nodes
    raise RedisUnavailable(f"no Redis Cluster master serves slot {slot} (of {key!r}) now")

