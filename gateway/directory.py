"""The cluster's shards, as Redis knows them: which exist, which no gateway serves, and
whether the whole cluster drains.

Every gateway adds its shard's name to one set, ``<key prefix>{shards}:names`` (a hash tag of
its own: on a Redis Cluster the set lives in one slot, wherever that is). A shard whose lease
key is gone has no gateway: its own died and nobody adopted it, because none of its agents or
clients reached another gateway (they were given one address). :class:`.shards.Shards` looks
here every few seconds and adopts such a shard if it still holds work (waiting calls, or
agents registered with what they held), so those calls run, or fail visibly, instead of
waiting for a gateway that may never come back.

A cluster-wide drain or resume is said here too (``{shards}:drain``): the gateway that got
the control applies it to its shards at once, and every other gateway to its own at its next
look.

Off the hot path: its own client (cluster-aware on a Redis Cluster, which routes each key to
its slot's master), called from a worker thread, never from the loop.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redis.cluster import RedisCluster
from tokengate.gateway.ledger import schema
from tokengate.gateway.ledger.connect import client_from_url, is_sentinel_url
from tokengate.gateway.ledger.edge import ledger_error, unavailable
from tokengate.shared.errors import RedisUnavailable

logger = logging.getLogger(__name__)

NAMES = "{shards}:names"  # after the key prefix: the set of shard names
DRAIN = "{shards}:drain"  # the cluster-wide drain's reason while it lasts (every shard's)


class Directory:
    def __init__(self, url: str, key_prefix: str) -> None:
        self.key_prefix = key_prefix
        self.key = key_prefix + NAMES
        self.drain_key = key_prefix + DRAIN
        options: dict[str, Any] = dict(socket_timeout=5, socket_connect_timeout=2)
        client: Any = client_from_url(url, **options)
        if not is_sentinel_url(url):
            try:
                if client.info("cluster").get("cluster_enabled"):
                    client.close()
                    client = RedisCluster.from_url(url, **options)
            except redis.RedisError as exc:
                raise RedisUnavailable(f"Redis cannot serve now: {exc}") from None
        self.client = client

    def add(self, shard: str) -> None:
        self._call(lambda: self.client.sadd(self.key, shard))

    def orphans(self) -> set[str]:
        """Shards without a gateway (no lease) that hold work."""
        def look() -> set[str]:
            found = set()
            for raw in self.client.smembers(self.key):
                shard = raw.decode()
                prefix = schema.shard_prefix(self.key_prefix, shard)
                if self.client.exists(prefix + schema.LEASE):
                    continue
                queues = self.client.smembers(prefix + schema.QUEUES)
                if self.client.hlen(prefix + schema.AGENTS) or any(
                        self.client.llen(prefix + schema.QUEUE + q.decode()) for q in queues):
                    found.add(shard)
            return found
        return self._call(look)

    def known(self, shard: str) -> bool:
        """Whether a gateway of the cluster ever served ``shard``."""
        return bool(self._call(lambda: self.client.sismember(self.key, shard)))

    def holder(self, shard: str) -> bytes | None:
        """The lease record of the gateway serving ``shard`` now, if any."""
        key = schema.shard_prefix(self.key_prefix, shard) + schema.LEASE
        raw = self._call(lambda: self.client.get(key))
        return raw if isinstance(raw, bytes) else None

    def shard_of(self, token_id: str) -> str | None:
        """The shard whose keys hold token ``token_id`` (tokens live in their client's
        shard), or None. A look per shard: for controls and views, never the hot path."""
        def look() -> str | None:
            for raw in self.client.smembers(self.key):
                shard = raw.decode()
                prefix = schema.shard_prefix(self.key_prefix, shard)
                if self.client.exists(prefix + schema.TOKEN + token_id):
                    return shard
            return None
        return self._call(look)

    def set_drain(self, reason: str | None) -> None:
        """The cluster drains (``reason``) or resumes (None), every shard of it."""
        if reason is None:
            self._call(lambda: self.client.delete(self.drain_key))
        else:
            self._call(lambda: self.client.set(self.drain_key, reason))

    def drain(self) -> str | None:
        """The cluster-wide drain's reason, or None."""
        raw = self._call(lambda: self.client.get(self.drain_key))
        return None if raw is None else raw.decode()

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _call(work: Any) -> Any:
        """Run one Redis command; its errors as the ledger's edge maps them (an outage is
        :class:`RedisUnavailable`, any other error reply a :class:`LedgerError`)."""
        try:
            return work()
        except redis.ResponseError as exc:
            if unavailable(exc):
                raise RedisUnavailable(f"Redis cannot serve now: {exc}") from None
            raise ledger_error(exc, {}, "the shard directory") from None
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis cannot serve now: {exc}") from None
