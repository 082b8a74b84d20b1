"""The gateway's lease on its shard: one gateway serves a shard at a time.

A shard is one gateway's part of the cluster's bookkeeping: every key under
``<key prefix>{<shard>}:`` (schema.shard_prefix), all in one Redis Cluster hash slot.
Several gateways serve one cluster at once, each on a shard of its own; two on one shard
would each dispatch and push for agents and sessions the other holds, and lose deliveries.
So a gateway takes a lease (a key with a TTL holding its id, host and pid) before it serves,
and renews it from its own thread. A second gateway on the same shard waits up to one TTL for
it and then refuses to start; a gateway restarted on the same host after its predecessor died
takes the lease over at once.

Taking the lease also takes the shard's fencing epoch (lease.lua), which every other script
checks: a lease alone does not fence, since a gateway paused past its TTL (SIGSTOP, a long
GC or swap) would write what it was about to write before it next renewed. With the epoch,
its first write after another gateway took the shard is refused (``Fenced``), and it stops.
Owner of nothing but its thread; the record is fixed for the process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import msgpack
import psutil
from tokengate.gateway.ledger import TokenLedger
from tokengate.shared.backoff import Backoff
from tokengate.shared.errors import ConfigurationError, RedisUnavailable

logger = logging.getLogger(__name__)

TTL = 3.0


class AnotherGateway(ConfigurationError):
    """Another live gateway serves this Redis and key prefix."""


class GatewayLease:
    def __init__(self, ledger: TokenLedger, *, ttl: float = TTL,
                 on_lost: Callable[[str], None] | None = None, adopted: bool = False) -> None:
        self.ledger = ledger
        self.ttl = ttl
        # An adopted shard (its own gateway died) is given back once its own gateway,
        # started again, asks for it; the own gateway asks when it finds it taken.
        self.adopted = adopted
        self.on_lost = on_lost
        self.host = socket.gethostname()
        self.record = msgpack.packb({"id": uuid.uuid4().hex, "host": self.host,
                                     "pid": os.getpid(), "started": time.time()})
        self._stopping = threading.Event()
        self._wake = threading.Event()  # renew now (Redis lost the shard's epoch)
        self._thread: threading.Thread | None = None
        ledger.on_no_epoch = self._wake.set

    def acquire(self, wait: float | None = None) -> None:
        """Take the lease, waiting up to ``wait`` seconds (default: one TTL and a bit)."""
        deadline = time.monotonic() + (self.ttl + 1.0 if wait is None else wait)
        mode = "acquire" if self.adopted else "home"
        while True:
            ok, holder = self.ledger.lease(mode, self.record, self.ttl)
            if ok:
                return
            if dead_here(holder):
                ok, holder = self.ledger.lease("takeover", self.record, self.ttl, holder)
                if ok:
                    logger.info("took over the lease of a gateway that died on this host")
                    return
            if time.monotonic() > deadline:
                raise AnotherGateway(
                    f"another gateway holds shard {self.ledger.prefix!r} on this Redis "
                    f"({_describe(holder)}); only one gateway may serve a shard: stop it, or "
                    "give this one a shard of its own (--shard)")
            time.sleep(0.2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._renew, name="tg-lease", daemon=True)
        self._thread.start()

    def renew(self) -> bool:
        """Renew the lease now; False (and ``on_lost``) if another gateway holds it."""
        ok, holder = self.ledger.lease("renew-adopted" if self.adopted else "renew",
                                       self.record, self.ttl)
        if not ok:
            message = (f"the gateway lease on {self.ledger.prefix!r} was taken, or is wanted, "
                       f"by {_describe(holder)} (or its fencing epoch was taken); this "
                       "gateway stops serving it")
            logger.critical(message)
            if self.on_lost is not None:
                self.on_lost(message)
        return ok

    def _renew(self) -> None:
        backoff = Backoff(cap=self.ttl / 3)
        pause = self.ttl / 3
        while True:
            self._wake.wait(pause)
            self._wake.clear()
            if self._stopping.is_set():
                return
            pause = self.ttl / 3
            try:
                if not self.renew():
                    return
                backoff.succeeded()
            except RedisUnavailable as exc:
                logger.error("cannot renew the gateway lease: %s", exc)
            except Exception:  # a bug: say so, and try again soon (the lease must not lapse)
                logger.exception("renewing the gateway lease failed; renewing goes on")
                pause = backoff.failed()

    def release(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        try:
            self.ledger.lease("release", self.record, self.ttl)
        except RedisUnavailable:
            pass


def dead_here(holder: bytes) -> bool:
    """Whether a lease record is a gateway of this host whose process is gone."""
    try:
        info = msgpack.unpackb(holder)
    except (ValueError, msgpack.UnpackException):
        return False
    return info.get("host") == socket.gethostname() and \
        not psutil.pid_exists(int(info.get("pid", 0)))


def _describe(holder: bytes) -> str:
    try:
        info = msgpack.unpackb(holder)
        return f"host {info.get('host')}, pid {info.get('pid')}"
    except (ValueError, msgpack.UnpackException):
        return "an unknown holder"
