"""The ledger's reads and its plain writes (agents' heartbeats, drain, audit): single
commands or one pipeline each, no script; no token changes state here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import msgpack
from tokengate.gateway.ledger import schema
from tokengate.gateway.ledger.base import AUDIT_KEEP, DrainState
from tokengate.gateway.ledger.codec import text
from tokengate.gateway.ledger.edge import redis_errors
from tokengate.gateway.ledger.redis_core import RedisCore
from tokengate.gateway.ledger.rows import AuditEntry, TokenRecord
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import Weight


class RedisReads(RedisCore):
    """What the gateway reads of the ledger, and the writes that move no token."""

    @redis_errors
    def records(self, ids: Sequence[str]) -> list[TokenRecord | None]:
        pipe = self.redis.pipeline(transaction=False)
        for token_id in ids:
            pipe.hgetall(self.key(schema.TOKEN, token_id))
        return [TokenRecord.parse(token_id, {k.decode(): v for k, v in raw.items()})
                for token_id, raw in zip(ids, pipe.execute(), strict=True)]

    @redis_errors
    def queues(self) -> dict[str, int]:
        """Tokens waiting per queue (each weight's bare queue always; others while they
        hold any)."""
        names = [w.value for w in schema.WEIGHTS]
        names += sorted(text(n) for n in self.redis.smembers(self.key(schema.QUEUES))
                        if text(n) not in names)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.llen(self.key(schema.QUEUE, name))
        return dict(zip(names, pipe.execute(), strict=True))

    def queue_lengths(self) -> dict[Weight, int]:
        """Tokens waiting per weight, over all its queues."""
        return schema.per_weight(self.queues())

    @redis_errors
    def inflight_ids(self, agent: str) -> set[str]:
        return {text(m) for m in self.redis.smembers(self.key(schema.INFLIGHT, agent))}

    @redis_errors
    def inflight_counts(self, agents: Sequence[str]) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for agent in agents:
            pipe.scard(self.key(schema.INFLIGHT, agent))
        return dict(zip(agents, pipe.execute(), strict=True))

    @redis_errors
    def counts(self) -> dict[str, int]:
        raw = self.redis.hgetall(self.key(schema.COUNTS))
        out = dict.fromkeys(schema.COUNTERS, 0)
        out.update({text(k): int(v) for k, v in raw.items()})
        return out

    @redis_errors
    def executing_counts(self, agents: Sequence[str]) -> tuple[int, dict[str, int]]:
        gauge = TokenState.EXECUTING.value  # the field lib.lua's executing_changed keeps
        fields = [gauge, *(f"{gauge}@{a}" for a in agents)]
        total, *values = (max(0, int(v or 0)) for v in
                          self.redis.hmget(self.key(schema.GAUGES), fields))
        return total, dict(zip(agents, values, strict=True))

    @redis_errors
    def memory_bytes(self) -> int:
        return int(self.redis.info("memory").get("used_memory", 0))

    # -- agents, tasks ---------------------------------------------------------------------

    @redis_errors
    def agents(self) -> dict[str, dict[str, Any]]:
        raw = self.redis.hgetall(self.key(schema.AGENTS))
        return {text(k): msgpack.unpackb(v, raw=False) for k, v in raw.items()}

    @redis_errors
    def touch_agents(self, seen: dict[str, float]) -> None:
        """Heartbeats of registered agents (a name deregistered meanwhile stays out)."""
        if seen:
            self.redis.zadd(self.key(schema.SEEN), seen, xx=True)

    @redis_errors
    def last_seen(self) -> dict[str, float]:
        seen = self.redis.zrange(self.key(schema.SEEN), 0, -1, withscores=True)
        return {text(k): v for k, v in cast(list[tuple[bytes, float]], seen)}

    @redis_errors
    def task_rules(self) -> dict[str, bool]:
        raw = self.redis.hgetall(self.key(schema.TASKS))
        return {text(k): v == b"1" for k, v in raw.items()}

    # -- drain, audit ----------------------------------------------------------------------

    @redis_errors
    def set_drain(self, node: str, reason: str) -> None:
        if node:
            self.redis.hset(self.key(schema.NODE_DRAIN), node, reason)
        else:
            self.redis.hset(self.key(schema.DRAIN), mapping={"reason": reason,
                                                             "since": time.time()})

    @redis_errors
    def clear_drain(self, node: str) -> None:
        if node:
            self.redis.hdel(self.key(schema.NODE_DRAIN), node)
        else:
            self.redis.delete(self.key(schema.DRAIN))

    @redis_errors
    def drain_state(self) -> DrainState:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.key(schema.DRAIN))
        pipe.hgetall(self.key(schema.NODE_DRAIN))
        cluster, nodes = pipe.execute()
        return DrainState(
            cluster=cluster[b"reason"].decode() if b"reason" in cluster else None,
            since=float(cluster.get(b"since", 0.0)),
            nodes={k.decode(): v.decode() for k, v in nodes.items()})

    @redis_errors
    def audit(self, entry: AuditEntry) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(self.key(schema.AUDIT), msgpack.packb(
            [entry.at, entry.actor, entry.action, entry.target, entry.ok, entry.result]))
        pipe.ltrim(self.key(schema.AUDIT), 0, AUDIT_KEEP - 1)
        pipe.execute()

    @redis_errors
    def audit_log(self, limit: int) -> list[AuditEntry]:
        raw = self.redis.lrange(self.key(schema.AUDIT), 0, max(0, limit - 1))
        return [AuditEntry(*msgpack.unpackb(blob, raw=False)) for blob in reversed(raw)]
