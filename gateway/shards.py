"""The shards one gateway process serves: its own, and those it adopted.

A gateway serves its own shard (``--shard``) from start to stop. When another gateway of the
cluster dies, its agents and clients come to the addresses they were given next, naming the
shard they belong to in their headers (``tokengate-shard``, learned from the first headers of
their first session or link). This gateway then *adopts* that shard: it takes the shard's lease,
which raises its fencing epoch (a paused predecessor can write nothing when it wakes), and
serves it with a :class:`Gateway` of its own on the same loop and port: its waiting tokens are
dispatched to the agents that came, what those agents hold is reconciled by their join, and
results and watches reach the clients that came. Each token's whole life stays in its shard.

The lease decides who may adopt: while the shard's gateway lives (renews), a request for its
shard here is refused with ``GatewayUnavailable`` (UNAVAILABLE: the caller tries its next
address); once the lease lapsed (a TTL after a crash, at once for a dead process on this
host) the first request adopts it.

Nobody asking: a shard whose gateway died and none of whose agents or clients came elsewhere
(they had one address) still holds work. Every gateway looks at the cluster's shards
(:mod:`.directory`) every few seconds and adopts one that has had no lease for two looks and
holds work, so its waiting calls are dispatched to agents that come, or fail visibly
(PlacementTimeout, AgentLost) instead of waiting for a gateway that may never return.

Giving back: the shard's own gateway, started again, finds its lease held and says it wants
it (lease.lua ``home``); the adopter's next renewal (a third of a TTL) yields, and the shard
is stopped here: its sessions and links end, reconnect, are refused here and go on to the
next address, the shard's own gateway, which took the lease (and raised the epoch) as soon as
it was released. An adopted shard whose lease or epoch is lost any other way (another gateway
adopted it while this one was paused) is stopped the same way; this process goes on with its
own shard. Losing its own shard stops the process (:mod:`.server`).

Loop-owned: ``served`` and ``_adopting`` change only on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable

from tokengate.gateway.aio import Background
from tokengate.gateway.config import GatewayConfig, check_shard
from tokengate.gateway.directory import Directory
from tokengate.gateway.gateway import Gateway
from tokengate.gateway.items import MAX_ID_LENGTH
from tokengate.gateway.lease import AnotherGateway, dead_here
from tokengate.gateway.ledger import TokenLedger
from tokengate.shared.errors import (
    BadRequest,
    ConfigurationError,
    GatewayUnavailable,
    RedisUnavailable,
)

logger = logging.getLogger(__name__)

SCAN_EVERY = 3.0  # seconds between looks for shards that no gateway serves

LedgerFactory = Callable[[GatewayConfig], TokenLedger]


class Shards:
    """The home shard's gateway and the adopted ones, by shard name."""

    def __init__(self, home: Gateway, make_ledger: LedgerFactory | None,
                 directory: Directory | None = None) -> None:
        self.home = home
        self.served: dict[str, Gateway] = {home.config.shard: home}
        self._make_ledger = make_ledger
        self._adopting: dict[str, asyncio.Future[Gateway]] = {}
        self._tasks = Background()
        self._directory = directory
        if directory is not None:
            self._tasks.spawn(self._scan(directory), "tg-shard-scan")

    async def get(self, name: str) -> Gateway:
        """The gateway of shard ``name`` ("" or the home shard: this gateway's own);
        adopted on first use if its lease lapsed. Raises GatewayUnavailable when another
        gateway serves it, BadRequest for a name that cannot be a shard."""
        if not name or name == self.home.config.shard:
            return self.home
        gateway = self.served.get(name)
        if gateway is not None and not gateway.lost_lease.is_set():
            return gateway
        if self._make_ledger is None:
            raise GatewayUnavailable(f"this gateway serves shard {self.home.config.shard!r} "
                                     f"only; shard {name!r} is served elsewhere")
        pending = self._adopting.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._adopt(name))
            self._adopting[name] = pending
            pending.add_done_callback(lambda _: self._adopting.pop(name, None))
        return await asyncio.shield(pending)

    async def shard_of(self, token_id: str) -> str | None:
        """The shard that holds ``token_id`` (None: none does, or no directory to ask)."""
        if self._directory is None or not token_id or len(token_id) > MAX_ID_LENGTH:
            return None
        return await asyncio.to_thread(self._directory.shard_of, token_id)

    async def _adopt(self, name: str) -> Gateway:
        try:
            check_shard(name)
        except ConfigurationError as exc:
            raise BadRequest(str(exc)) from None
        assert self._make_ledger is not None
        if self._directory is not None:  # a cheap look first: a live holder refuses at once
            if not await asyncio.to_thread(self._directory.known, name):
                raise BadRequest(f"no gateway of this cluster ever served shard {name!r}: "
                                 "a header can name only an existing shard")
            holder = await asyncio.to_thread(self._directory.holder, name)
            if holder is not None and not dead_here(holder):
                raise GatewayUnavailable(f"shard {name!r} is served by another gateway now; "
                                         "try the next gateway address")
        config = dataclasses.replace(self.home.config, shard=name)
        ledger = await asyncio.to_thread(self._make_ledger, config)
        try:
            gateway = await Gateway(config, ledger, adopted=True).start(lease_wait=0)
        except (AnotherGateway, RedisUnavailable) as exc:
            close = getattr(ledger, "close", None)
            if close is not None:
                close()
            raise GatewayUnavailable(f"shard {name!r} cannot be taken here now ({exc}); try "
                                     "the next gateway address") from None
        self.served[name] = gateway
        gateway.when_lost(lambda: self._tasks.spawn(self._retire(name, gateway),
                                                    f"tg-retire-{name}"))
        logger.warning("adopted shard %r (epoch %s): its gateway is gone, and its agents or "
                       "clients came here", name, ledger.epoch)
        return gateway

    async def _scan(self, directory: Directory) -> None:
        """Adopt the shards nobody serves that hold work, once seen so twice in a row
        (a shard's own gateway restarting takes its lease back within that)."""
        seen: set[str] = set()
        while True:
            await asyncio.sleep(SCAN_EVERY)  # a periodic look: nothing tells of a death
            try:
                orphans = await asyncio.to_thread(directory.orphans)
            except RedisUnavailable:
                continue
            for name in (orphans & seen) - set(self.served) - set(self._adopting):
                with contextlib.suppress(GatewayUnavailable, BadRequest):
                    await self.get(name)
            seen = orphans
            with contextlib.suppress(RedisUnavailable):
                await self._follow_drain(await asyncio.to_thread(directory.drain))

    async def _follow_drain(self, reason: str | None) -> None:
        """Bring the cluster drain of every shard served here to what the directory says."""
        for gateway in list(self.served.values()):
            draining = gateway.dispatch.drain_state().cluster is not None
            if reason is not None and not draining:
                await gateway.control.drain("", reason, actor="cluster")
            elif reason is None and draining:
                await gateway.control.resume("", actor="cluster")

    async def drain(self, reason: str | None, actor: str) -> str:
        """Drain (``reason``) or resume (None) the whole cluster: the shards served here at
        once, the others at their gateways' next look at the directory."""
        message = ""
        for gateway in list(self.served.values()):
            message = await (gateway.control.resume("", actor) if reason is None else
                             gateway.control.drain("", reason, actor))
        if self._directory is not None:
            await asyncio.to_thread(self._directory.set_drain, reason)
        return message

    async def _retire(self, name: str, gateway: Gateway) -> None:
        """Stop an adopted shard whose lease or epoch this process lost."""
        if self.served.get(name) is gateway:
            del self.served[name]
        logger.warning("shard %r is no longer this gateway's (its own gateway is back, or "
                       "another took it): its sessions and links go there", name)
        gateway.close_streams()
        with contextlib.suppress(Exception):
            await gateway.stop()

    async def stop(self) -> None:
        """Stop the adopted shards (the home gateway is the server's to stop)."""
        await self._tasks.stop()
        if self._directory is not None:
            self._directory.close()
        for name, gateway in list(self.served.items()):
            if gateway is not self.home:
                await self._retire(name, gateway)
