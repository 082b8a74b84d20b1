"""The gateway, composed: its owners, wired once, and the entry points the servicers call.

No base class and no state of its own beyond its owners: admission (screen, place, store,
answer), dispatch (credit book, waiting mirror, the dispatcher), results (store, push,
sessions, watches), registry (join, heartbeats, loss), control (drain, resume, kill,
commands to agents, audit), views (status, Guard House, token detail), the lease on the Redis
prefix and the per-second series. Each seam has one direction: admission hands placed tokens
to dispatch; dispatch hands frames to the connections; results own the push; the registry
tells dispatch about agents and credit; control and views read and steer the others.

Everything here runs on one asyncio event loop (the one :mod:`.server` serves gRPC on), so
the owners' state needs no locks: it changes only between awaits. Redis is reached through
the :class:`~tokengate.gateway.store.Store`'s threads, never from the loop; the lease is
renewed from a thread of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable

from tokengate.gateway.admission import Admission
from tokengate.gateway.aio import Background
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn, ClientConn
from tokengate.gateway.control import Control
from tokengate.gateway.dispatch import Dispatch
from tokengate.gateway.gate import Gate
from tokengate.gateway.guards import ClusterGuards
from tokengate.gateway.items import MAX_ID_LENGTH
from tokengate.gateway.lease import GatewayLease
from tokengate.gateway.ledger import StartReport, TokenLedger
from tokengate.gateway.registry import Registry
from tokengate.gateway.results import Results
from tokengate.gateway.series import Series
from tokengate.gateway.store import Store
from tokengate.gateway.views import Views
from tokengate.shared import wire
from tokengate.shared.rpc import tokengate_pb2 as pb

logger = logging.getLogger(__name__)


class Gateway:
    """The whole gateway minus gRPC: start it, hand it frames, stop it. Made, used and
    stopped on its event loop."""

    def __init__(self, config: GatewayConfig, ledger: TokenLedger, *,
                 adopted: bool = False) -> None:
        self.config = config
        self.ledger = ledger
        self.loop = asyncio.get_running_loop()
        self.store = store = Store(ledger, self.loop)
        self.background = Background()  # tasks nobody awaits (a link's departure, a retire)
        self.series = Series()
        self.adopted = adopted  # the shard of another gateway, served until it is back
        self.lease = GatewayLease(ledger, on_lost=self._lease_lost, adopted=adopted)
        self.dispatch = Dispatch(config, ledger, store)
        self.results = Results(ledger, store, self.series)
        self.dispatch.on_expired(self.results.push_expired)
        self.registry = Registry(config, ledger, store, self.dispatch, self.results,
                                 self.background, serving=self.lease.renew)
        self.gate = Gate(config.fair_policy(), config.max_held, config.max_held_per_client)
        self.guards = ClusterGuards()  # the Guard House's cluster-wide blocks
        self.registry.lost_hooks.append(self.guards.agent_lost)
        self.registry.lost_hooks.append(self.dispatch.agent_lost)
        self.results.on_final = self._finished
        self.admission = Admission(config, ledger, store, self.dispatch, self.results,
                                   self.registry, self.series, self.gate, self.guards)
        self.views = Views(ledger, store, self.dispatch, self.registry, self.results,
                           self.series, self.guards)
        self.control = Control(ledger, store, self.dispatch, self.registry, self.results,
                               self.views, self.gate, self.guards)
        self.lost_lease = threading.Event()  # set when another gateway took the shard
        self._on_lost: list[Callable[[], object]] = []  # run on the loop when it is set
        ledger.on_fenced = self._lease_lost  # a write refused: another holds the epoch

    async def start(self, lease_wait: float | None = None) -> Gateway:
        try:
            await self.store.write(self.ledger.ping)
            await self.store.write(self.lease.acquire, lease_wait)
            drain = await self.store.read(self.ledger.drain_state)
            self.registry.known.update(await self.store.read(self.ledger.task_rules))
            await self.dispatch.start(drain)
        except BaseException:
            self.store.stop()
            raise
        self.registry.start()
        self.gate.start(self.admission.admit_released)
        self.lease.start()
        logger.info("gateway started on prefix %r; waiting %s; drain %r", self.ledger.prefix,
                    {w.value: n for w, n in self.dispatch.waiting().items()}, drain.cluster)
        return self

    def close_streams(self) -> None:
        """End every session and agent link of this shard (after what is queued on them):
        they reconnect, and find the gateway that serves the shard now."""
        for conn in self.results.sessions():
            conn.close()
        for agent in self.registry.connected():
            agent.close()

    async def stop(self) -> None:
        await self.registry.stop()
        await self.gate.stop()
        await self.dispatch.stop()
        await self.background.stop()
        await self.store.write(self.lease.release)
        self.store.stop()

    def _finished(self, ids: Iterable[str]) -> None:
        """Tokens that reached their outcome: out of the fair-share gate's flight, and out
        of their shared storage's slots (when any are held)."""
        if self.dispatch.storage.holding:
            ids = list(ids)
            self.dispatch.finished(ids)
        self.gate.finished(ids)

    def _lease_lost(self, message: str) -> None:
        """The lease or the epoch is gone (called from the lease's or a lane's thread)."""
        if self.lost_lease.is_set():
            return
        self.lost_lease.set()
        for callback in self._on_lost:
            self.loop.call_soon_threadsafe(callback)

    def when_lost(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop once this gateway has lost its shard."""
        self._on_lost.append(callback)

    # -- client sessions -----------------------------------------------------------------------

    def open_session(self, conn: ClientConn) -> None:
        self.results.attach(conn)

    async def on_client_frame(self, conn: ClientConn, frame: pb.ClientFrame) -> None:
        stats = self.dispatch.stats
        stats["client_frames"] += 1
        stats["client_items"] += len(frame.submit)
        if frame.submit:
            await self.admission.submit(conn, frame.submit, frame.resubmit, frame.received)
        elif frame.received:
            await self.results.received(conn, frame.received)
        if frame.watch:
            await self.results.watch(conn, list(frame.watch), any_owner=frame.watch_any,
                                     asked=True)

    def close_session(self, conn: ClientConn) -> None:
        conn.close(discard=True)
        self.results.detach(conn)

    # -- agent links ---------------------------------------------------------------------------

    async def join(self, first: pb.AgentFrame) -> AgentConn:
        conn = await self.registry.join(first.hello, list(first.credits))
        if first.seq:
            conn.send_seen(first.seq)
        return conn

    async def on_agent_frame(self, conn: AgentConn, frame: pb.AgentFrame) -> None:
        """One frame of an agent: results first (someone waits for them), then the rest."""
        snapshot = self.registry.heard(conn, frame)
        if snapshot is not None:  # a snapshot that fits its schema
            self.guards.report(conn.name, snapshot.guard_house)
        stats = self.dispatch.stats
        stats["agent_frames"] += 1
        finished: set[str] = set()
        if frame.results:
            stats["agent_results"] += len(frame.results)
            await self.results.report(conn, frame.results)  # RedisUnavailable: link drops
            self.dispatch.observe(frame.results)
            conn.send_ack(frame.seq)
            finished = {r.token_id for r in frame.results}
        if frame.credits:
            self.dispatch.credits(conn, wire.credits_of(frame.credits), frame.received)
        if frame.started:
            starts = [StartReport(s.token_id, s.attempt, s.started_at) for s in frame.started
                      if s.token_id not in finished]
            if starts:
                await self.store.pipelined(self.ledger.start_begin, conn.name, starts)
        if frame.replies:
            self.control.on_replies(list(frame.replies))
        if frame.returned:  # never started (it is leaving, or they waited behind blocked
            # workers): they go to the others now, same attempt
            ids = list(dict.fromkeys(i for i in frame.returned if 0 < len(i) <= MAX_ID_LENGTH))
            logger.info("agent %s gave back %d tokens it never started", conn.name, len(ids))
            await self.dispatch.give_back(conn.name, ids, returned=True)

    async def agent_left(self, conn: AgentConn) -> None:
        await self.registry.disconnected(conn)
