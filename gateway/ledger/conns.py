"""The calling thread's own Redis connection, outside the client's pool.

Scripts go out on a connection of the calling thread's own: no pool check-out per call, one
reconnection and resend if that connection turns out dead (a Redis restart), as the pooled
client's retry did. Each thread owns its connection (``threading.local``); ``retarget`` is the
one write other threads see, a counter each thread compares before its next use.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.sentinel import SentinelConnectionPool, SentinelManagedConnection


class ThreadConns:
    """The Redis connection of the calling thread, made with the client's settings but
    outside its pool: it lives as long as its thread (and closes with it), and a dead one is
    dropped and made anew. Not ``pool.make_connection()``: the pool counts what it makes
    against ``max_connections`` and only a release gives the count back, so every thread
    that ended and every connection dropped in a Redis restart used up one of its hundred
    slots until it refused all ("Too many connections"). Scripts may be pipelined on it
    (``pending`` replies not read yet, in the order they were sent)."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._make: Callable[..., Any] = _connection_factory(pool)
        self._local = threading.local()
        self._target = 0  # bumped when the shard's slot moved to another node

    def retarget(self, host: str, port: int) -> None:
        """New connections go to ``host:port``; each thread's current one is dropped before
        its next use (``get``)."""
        self._make = functools.partial(self._make, host=host, port=port)
        self._target += 1

    def pending(self) -> int:
        """Replies sent on this thread's connection and not read yet (pipelined)."""
        return getattr(self._local, "pending", 0)

    def generation(self) -> int:
        """Bumped whenever the connection is dropped: a reply sent before is lost."""
        return getattr(self._local, "generation", 0)

    def sent(self, delta: int) -> None:
        self._local.pending = self.pending() + delta

    def wrote(self) -> None:
        """A script went out on this thread's connection: replicas have not confirmed it."""
        self._local.unconfirmed = True

    def unconfirmed(self) -> tuple[bool, bool]:
        """(whether a connection died holding writes not confirmed, whether the current one
        holds some), both cleared: the caller confirms them now or fails their batch."""
        local = self._local
        lost, held = getattr(local, "lost", False), getattr(local, "unconfirmed", False)
        local.lost = local.unconfirmed = False
        return lost, held

    def get(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "target", 0) != self._target:
            self.drop()  # made for a node that no longer serves the slot
            conn = None
        if conn is None:
            self._local.target = self._target
            conn = self._make()
            # Connected here, as the pool connects what it hands out: a Sentinel-managed
            # connection asks for the primary's address only in connect(); left to the first
            # send, it would connect to its default host instead.
            conn.connect()
            self._local.conn = conn
        return conn

    def fresh(self) -> Any:
        """The connection for a new command: one the server closed meanwhile (it
        restarted), or that holds a reply nobody asked for, is replaced first. A command
        written to a dead connection may or may not have run; this way one sent while Redis
        is down is refused at once, and only one in flight when it dies is in doubt."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            # One redis-py closed (after an error) is stale too: reconnecting by itself, a
            # Sentinel-managed connection would not ask for the primary again.
            try:
                stale = not conn.is_connected or conn.can_read(0)
            except redis.ConnectionError:
                stale = True
            if stale:
                self.drop()
        return self.get()

    def drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if getattr(self._local, "unconfirmed", False):  # WAIT on a new one cannot vouch
            self._local.lost, self._local.unconfirmed = True, False  # for these
        self._local.conn = None
        self._local.pending = 0
        self._local.generation = self.generation() + 1
        if conn is not None:
            conn.disconnect()


def _connection_factory(pool: redis.ConnectionPool) -> Callable[[], Any]:
    """Makes connections as ``pool`` would. A Sentinel pool's connections hold the pool (its
    proxy) and ask it, each time they connect, for the primary's address, which it asks the
    sentinels for: so a connection made after a failover reaches the new primary."""
    kwargs = dict(pool.connection_kwargs)
    if isinstance(pool, SentinelConnectionPool) and \
            issubclass(pool.connection_class, SentinelManagedConnection):
        kwargs.setdefault("connection_pool", getattr(pool, "proxy", None) or
                          weakref.proxy(pool))  # redis-py < 5.1 put no proxy in the kwargs
    return functools.partial(pool.connection_class, **kwargs)

