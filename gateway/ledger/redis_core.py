"""What every part of the Redis ledger stands on: the client, the shard's prefix, the loaded
scripts, the calling thread's connection, the ordering barrier, and where the shard lives.

:class:`RedisCore` also answers what :func:`.edge.redis_errors` asks of a ledger (``fenced``,
``follow``, ``drop_connection``, ``script_shas``). ``trouble_at`` is when Redis last failed a
call or kept one waiting longer than ``STALL_SECONDS`` (wall time, written by any thread as a
single float store): the registry judges no agent lost on heartbeats it could not record
meanwhile.

On a Redis Cluster the shard's keys are in one hash slot, and the ledger talks to the master
of that slot alone; :meth:`RedisCore.follow` moves every connection when the slot moves
(``_target_lock`` guards the retargeting and when the cluster was last asked).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from redis.commands.core import Script
from tokengate.gateway.ledger import schema
from tokengate.gateway.ledger.conns import ThreadConns
from tokengate.gateway.ledger.edge import redis_errors
from tokengate.gateway.ledger.scripts import LEASE, SCRIPTS, script_text
from tokengate.gateway.ledger.slots import slot_owner
from tokengate.gateway.ledger.tickets import Tickets
from tokengate.shared.errors import TokenGateError

logger = logging.getLogger(__name__)

RELOOK_EVERY = 1.0  # seconds between looks for the slot's master after connection errors
DEFAULT_PREFIX = schema.shard_prefix(schema.DEFAULT_PREFIX, schema.DEFAULT_SHARD)


class RedisCore:
    """The connection side of :class:`~tokengate.gateway.ledger.redis_ledger.RedisLedger`."""

    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX,
                 result_ttl: int = 600, replicas: int = 0,
                 replica_timeout: float = 1.0, key_ttl: int = 86_400) -> None:
        self.redis = client
        self.prefix = prefix
        self.result_ttl = result_ttl
        self.key_ttl = key_ttl  # a keyed call's hash is kept this long once final
        self.replicas = replicas  # confirm_writes waits for this many (0: it does not wait)
        self.replica_timeout = replica_timeout
        self.epoch = ""  # the fencing epoch this gateway holds (set by the lease)
        self.on_fenced: Callable[[str], None] | None = None  # told once a script is fenced
        self.on_no_epoch: Callable[[], None] | None = None  # told when Redis lost the epoch
        self._fence = [self.key(schema.EPOCH)]
        self.cluster_seeds: list[str] = []  # on a Redis Cluster: nodes to ask for the slot
        self._target_lock = threading.Lock()  # guards retargeting and _looked_at
        self._looked_at = 0.0
        self._scripts: dict[str, Script] = {
            name: client.register_script(script_text(name)) for name in SCRIPTS}
        self._lease = client.register_script(script_text(LEASE))
        self.script_shas = {s.sha: name for name, s in (*self._scripts.items(),
                                                        (LEASE, self._lease))}
        self._tickets = Tickets()
        self._conns = ThreadConns(client.connection_pool)
        self.errors = 0  # Redis calls that failed (approximate: not under a lock)
        self.trouble_at = 0.0  # when Redis last failed or stalled a call (module docstring)

    def follow(self, exc: BaseException) -> None:
        """On a Redis Cluster, follow the shard's slot after ``exc``: to where a MOVED
        says, or, after a connection error, to where the cluster says now."""
        if isinstance(exc, redis.exceptions.MovedError):
            self.retarget(exc.host, int(exc.port))
        elif isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            self.relook()

    def retarget(self, host: str, port: int) -> None:
        """The shard's slot is served by ``host:port`` now (a Redis Cluster moved it, or
        promoted a replica): every connection made from here on goes there, and each
        thread's current one is dropped before its next use."""
        pool = self.redis.connection_pool
        with self._target_lock:
            if (pool.connection_kwargs.get("host"), pool.connection_kwargs.get("port")) == \
                    (host, port):
                return
            pool.connection_kwargs.update(host=host, port=port)
            self._conns.retarget(host, port)
            pool.disconnect()
            pool.reset()  # the pooled connections keep their address: made anew from here
        logger.warning("Redis Cluster: shard %r is served by %s:%d now", self.prefix, host, port)

    def relook(self) -> None:
        """After a connection error on a Redis Cluster: ask the cluster (the first of its
        nodes known at start that answers, at most once a second) which master serves the
        shard's slot now."""
        if not self.cluster_seeds:
            return
        now = time.monotonic()
        with self._target_lock:
            if now - self._looked_at < RELOOK_EVERY:
                return
            self._looked_at = now
        for seed in self.cluster_seeds:
            probe = redis.Redis.from_url(seed, socket_timeout=1, socket_connect_timeout=1)
            try:
                view = slot_owner(probe, self.key(schema.EPOCH))
            except (redis.RedisError, TokenGateError):
                continue
            finally:
                probe.close()
            if view is not None:
                self.retarget(*view[0])  # a no-op if it is where we already are
            return

    def key(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    def fenced(self, message: str) -> None:
        """A script was refused: another gateway holds this shard's epoch now."""
        logger.critical("fenced: %s", message)
        if self.on_fenced is not None:
            self.on_fenced(message)


    def drop_connection(self) -> None:
        """Drop this thread's connection: its next one is made anew (after a demotion,
        Sentinel is asked for the primary)."""
        self._conns.drop()

    def close(self) -> None:
        """Close the client's pooled connections (this thread's own close with it)."""
        self._conns.drop()
        self.redis.close()

    @redis_errors
    def ping(self) -> bool:
        return bool(self.redis.ping())
