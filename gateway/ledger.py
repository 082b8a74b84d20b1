"""The token ledger: every durable fact of the cluster, kept in Redis.

Each hot-path operation is one Lua script call for a whole batch (``gateway/lua/*.lua``, whose
headers document every key). Redis errors become :class:`RedisUnavailable` here.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any, TypeVar

import msgpack
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from tokengate.gateway import keys
from tokengate.shared.errors import RedisUnavailable
from tokengate.shared.framing import FRAME_SOFT_LIMIT

logger = logging.getLogger(__name__)

T = TypeVar("T")

QUEUED, DISPATCHED, DUPLICATE = 0, 1, -1


def _script_text(name: str) -> str:
    return resources.files("tokengate.gateway").joinpath("lua", name).read_text(encoding="utf-8")


def _redis_errors(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RedisUnavailable(f"Redis unreachable: {exc}") from None
    return wrapper


def _pack(value: Any) -> bytes:
    # Lua's cmsgpack reads raw strings, not the bin type.
    return msgpack.packb(value, use_bin_type=False)


class RedisLedger:
    """Token, queue, agent and drain state in one Redis database."""

    def __init__(self, client: redis.Redis, *, prefix: str = keys.DEFAULT_PREFIX,
                 result_ttl: int = 3600) -> None:
        self.redis = client
        self.prefix = prefix
        self.result_ttl = result_ttl
        self._submit = client.register_script(_script_text("submit.lua"))
        self._claim = client.register_script(_script_text("claim.lua"))
        self._complete = client.register_script(_script_text("complete.lua"))
        self._requeue = client.register_script(_script_text("requeue.lua"))
        self._kill = client.register_script(_script_text("kill.lua"))
        self._forget = client.register_script(_script_text("forget.lua"))

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLedger:
        # A short retry budget: an outage is answered with RedisUnavailable within a second.
        client = redis.Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=2, health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.25, base=0.02), retries=3))
        return cls(client, **kwargs)

    def key(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    @_redis_errors
    def ping(self) -> bool:
        return bool(self.redis.ping())

    # -- hot path: one script call per batch --------------------------------------------

    @_redis_errors
    def submit(self, items: Sequence[tuple[str, str, int, bytes, str, str]]) -> list[int]:
        """Store ``[id, weight, idempotent, item_bytes, agent, session]`` rows; see submit.lua."""
        return self._submit(args=[self.prefix, time.time(), _pack(items)])

    @_redis_errors
    def submit_begin(self, items: Sequence[tuple[str, str, int, bytes, str, str]],
                     ) -> Callable[[], list[int]]:
        """Send the submit script now and return a function that reads its reply.

        What the caller does in between (dispatching) overlaps the Redis round trip; Redis
        has the command before any agent can report on those tokens.
        """
        args = [self.prefix, time.time(), _pack(items)]
        pool = self.redis.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_command("EVALSHA", self._submit.sha, 0, *args)
        except BaseException:
            pool.release(conn)
            raise

        @_redis_errors
        def finish() -> list[int]:
            try:
                return conn.read_response()
            except redis.exceptions.NoScriptError:  # Redis restarted: load it and run again
                return self._submit(args=args)
            finally:
                pool.release(conn)
        return finish

    @_redis_errors
    def claim(self, weight: str, count: int, agent: str,
              budget: int = FRAME_SOFT_LIMIT) -> list[tuple[str, int, bytes]]:
        flat = self._claim(args=[self.prefix, weight, count, agent, budget])
        return [(flat[i].decode(), int(flat[i + 1]), flat[i + 2]) for i in range(0, len(flat), 3)]

    @_redis_errors
    def complete(self, items: Sequence[tuple[str, str, bytes]]) -> list[int]:
        """Record ``[id, state, result_bytes]`` rows; 1 where applied (first final wins)."""
        return self._complete(args=[self.prefix, self.result_ttl, _pack(items)])

    @_redis_errors
    def requeue(self, agent: str, max_attempts: int, message: str,
                ids: Sequence[str] | None = None, *, transit: bool = False,
                ) -> tuple[list[tuple[str, int]], dict[str, int]]:
        """Requeue (or fail with AgentLost) what ``agent`` held; see requeue.lua."""
        failed, requeued = self._requeue(args=[
            self.prefix, agent, max_attempts, self.result_ttl,
            "" if ids is None else _pack(list(ids)), message, "1" if transit else "0"])
        lost = [(failed[i].decode(), int(failed[i + 1])) for i in range(0, len(failed), 2)]
        counts = {requeued[i].decode(): int(requeued[i + 1]) for i in range(0, len(requeued), 2)}
        return lost, counts

    @_redis_errors
    def forget(self, ids: Sequence[str]) -> int:
        """Drop results their client has received; see forget.lua."""
        return self._forget(args=[self.prefix, _pack(list(ids))])

    @_redis_errors
    def kill(self, token_id: str, message: str) -> tuple[str, str]:
        outcome, agent = self._kill(args=[self.prefix, token_id, self.result_ttl, message])
        return outcome.decode(), agent.decode()

    # -- reads ---------------------------------------------------------------------------

    @_redis_errors
    def token_records(self, ids: Sequence[str]) -> list[dict[str, bytes]]:
        pipe = self.redis.pipeline(transaction=False)
        for token_id in ids:
            pipe.hgetall(self.key(keys.TOKEN, token_id))
        return [{k.decode(): v for k, v in rec.items()} for rec in pipe.execute()]

    @_redis_errors
    def queue_lengths(self, weights: Iterable[str]) -> dict[str, int]:
        weights = list(weights)
        pipe = self.redis.pipeline(transaction=False)
        for weight in weights:
            pipe.llen(self.key(keys.QUEUE, weight))
        return dict(zip(weights, pipe.execute(), strict=True))

    @_redis_errors
    def inflight_ids(self, agent: str) -> set[str]:
        return {m.decode() for m in self.redis.smembers(self.key(keys.INFLIGHT, agent))}

    @_redis_errors
    def inflight_counts(self, agents: Sequence[str]) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for agent in agents:
            pipe.scard(self.key(keys.INFLIGHT, agent))
        return dict(zip(agents, pipe.execute(), strict=True))

    @_redis_errors
    def counts(self) -> dict[str, int]:
        raw = self.redis.hgetall(self.key(keys.COUNTS))
        out = dict.fromkeys(keys.COUNTERS, 0)
        out.update({k.decode(): int(v) for k, v in raw.items()})
        return out

    # -- agents ----------------------------------------------------------------------------

    @_redis_errors
    def register_agent(self, name: str, record: dict[str, Any]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.key(keys.AGENTS), name, msgpack.packb(record))
        pipe.zadd(self.key(keys.SEEN), {name: time.time()})
        pipe.execute()

    @_redis_errors
    def agents(self) -> dict[str, dict[str, Any]]:
        raw = self.redis.hgetall(self.key(keys.AGENTS))
        return {k.decode(): msgpack.unpackb(v) for k, v in raw.items()}

    @_redis_errors
    def touch_agents(self, seen: dict[str, float]) -> None:
        if seen:
            self.redis.zadd(self.key(keys.SEEN), seen)

    @_redis_errors
    def last_seen(self) -> dict[str, float]:
        return {k.decode(): v for k, v in self.redis.zrange(self.key(keys.SEEN), 0, -1,
                                                            withscores=True)}

    @_redis_errors
    def forget_agent(self, name: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.key(keys.AGENTS), name)
        pipe.zrem(self.key(keys.SEEN), name)
        pipe.execute()

    # -- drain -----------------------------------------------------------------------------

    @_redis_errors
    def set_drain(self, node: str, reason: str) -> None:
        if node:
            self.redis.hset(self.key(keys.NODE_DRAIN), node, reason)
        else:
            self.redis.hset(self.key(keys.DRAIN), mapping={"reason": reason, "since": time.time()})

    @_redis_errors
    def clear_drain(self, node: str) -> None:
        if node:
            self.redis.hdel(self.key(keys.NODE_DRAIN), node)
        else:
            self.redis.delete(self.key(keys.DRAIN))

    @_redis_errors
    def drain_state(self) -> tuple[str | None, dict[str, str]]:
        """(cluster drain reason or None, {node: reason})."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(self.key(keys.DRAIN), "reason")
        pipe.hgetall(self.key(keys.NODE_DRAIN))
        cluster, nodes = pipe.execute()
        return (None if cluster is None else cluster.decode(),
                {k.decode(): v.decode() for k, v in nodes.items()})
