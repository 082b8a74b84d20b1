"""The agent registry: joins, heartbeats, losses; the monitor task.

Owned by the event loop (no locks): the connected agents by name (:class:`AgentConn`) and
the tasks they registered (a mapping replaced whole on every change). Its ledger calls go
out on the store's write lane, in order with the submissions and reports around them.

An agent joins in one step: ``join.lua`` reconciles what it holds with what the ledger says
it holds (and revokes what is no longer its own) before dispatch may give it anything. An
agent is declared lost when no frame came from it for ``heartbeat_timeout`` seconds (its
link broken or silent): ``lose`` deregisters it in Redis (it can be given nothing more) and
requeues what it held with attempt + 1, or fails it with ``AgentLost``. A drain never looks
like loss: agents keep heartbeating while drained.

Loss is judged only on heartbeats the gateway was able to record. Every agent gets a full
timeout afresh (``_grace_from``) after the gateway starts (registered agents reconnect),
after Redis failed or stalled a call (``TokenLedger.trouble_at``: while Redis is away or
SIGSTOPped, links drop or their readers wait on it, and their frames go unread), and after
the monitor itself was held up (the gateway process paused, or its loop blocked).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from tokengate.gateway import storage
from tokengate.gateway.aio import Background
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn
from tokengate.gateway.dispatch import Dispatch
from tokengate.gateway.ledger import LossPolicy, TaskRule, TokenLedger
from tokengate.gateway.results import Results
from tokengate.gateway.store import Store
from tokengate.shared import labels, wire
from tokengate.shared.backoff import Backoff
from tokengate.shared.errors import AgentRejected, InvalidTags, RedisUnavailable, SnapshotError
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.snapshot import AgentSnapshot

logger = logging.getLogger(__name__)

MAX_NAME = 128
ANY = object()  # declare_lost: whichever connection the agent has
LEASE_FRACTION = 0.5  # an agent's work lease, as a part of the heartbeat timeout
STALL_SECONDS = 1.0  # the monitor woke this much later than it asked: the process was paused
BAD_SNAPSHOT_LOG_EVERY = 60.0  # seconds between warnings about one agent's unfit snapshots


def _requires(info: pb.TaskInfo) -> labels.Labels:
    """The labels a registered task requires; what an agent sent malformed is left out."""
    try:
        return labels.parse(info.requires, "requires")
    except InvalidTags as exc:
        logger.warning("task %s: its requires are ignored: %s", info.name, exc)
        return ()


class Registry:
    def __init__(self, config: GatewayConfig, ledger: TokenLedger, store: Store,
                 dispatch: Dispatch, results: Results, background: Background,
                 serving: Callable[[], bool] = lambda: True) -> None:
        self.config = config
        self.ledger = ledger
        self.store = store
        self.dispatch = dispatch
        self.results = results
        self.serving = serving  # does this gateway still hold its lease (asked of Redis)?
        self._grace_from = time.time()  # no agent is judged on silence before this (wall)
        self._agents: dict[str, AgentConn] = {}
        self.tasks: Mapping[str, TaskRule] = MappingProxyType({})
        # Every task an agent ever registered on this prefix (Redis keeps them; loaded at
        # start): a call of one no live agent has now waits for one instead of being refused.
        self.known: set[str] = set()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._background = background  # the gateway's, which stops it after the registry
        self.lost_hooks: list[Callable[[str], None]] = []  # told each agent declared lost
        # agent -> (when its unfit snapshots were last logged, how many since): one warning a
        # minute, not one a second, for an agent that keeps sending them
        self._unfit: dict[str, tuple[float, int]] = {}

    def _policy(self, message: str) -> LossPolicy:
        return LossPolicy(self.config.max_attempts, message, self.config.result_ttl)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._monitor(), name="tg-monitor")

    async def stop(self) -> None:
        self._stopping = True
        for conn in self.connected():
            conn.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def connected(self) -> list[AgentConn]:
        return list(self._agents.values())

    def get(self, name: str) -> AgentConn | None:
        return self._agents.get(name)

    # -- joining -------------------------------------------------------------------------------

    async def join(self, hello: pb.Hello, credits: list[pb.Credit]) -> AgentConn:
        """Register an agent and adopt what it holds, as one step; then it may get work."""
        self._check_hello(hello)
        conn = AgentConn(hello)
        previous = self._agents.get(hello.name)
        if previous is not None and previous.incarnation != hello.incarnation \
                and previous.connected and not self._silent(previous):
            raise AgentRejected(f"agent name {hello.name!r} is taken by a live agent "
                                f"on {previous.host} (pid {previous.pid})")
        if previous is not None:
            await self._retire(previous)
        record = {"host": conn.host, "pid": conn.pid, "registered": time.time()}
        rules = [TaskRule(i.name, i.idempotent) for i in conn.tasks.values()]
        message = f"agent {conn.name} restarted while holding the token"
        adoption = await self.store.write(self.ledger.join, conn.name, conn.incarnation,
                                          list(hello.held), record, rules,
                                          self._policy(message))
        if adoption.requeue.failed:
            self.results.push_lost(adoption.requeue.failed, message)
        self.dispatch.queued(adoption.requeue.requeued)
        replaced = self._agents.get(conn.name)
        if replaced is not None and replaced is not previous:  # joined twice at once
            await self._retire(replaced)
        self._agents[conn.name] = conn
        self._refresh_tasks()
        conn.welcome(adoption.revoked, self.config.heartbeat_timeout * LEASE_FRACTION)
        self.dispatch.agent_joined(conn, wire.credits_of(credits), hello.held)
        logger.info("agent %s joined from %s (pid %d): %d held, %d revoked, %s requeued%s",
                    conn.name, conn.host, conn.pid, len(hello.held), len(adoption.revoked),
                    dict(adoption.requeue.requeued),
                    " (a new process: its predecessor's tokens requeued)"
                    if adoption.restarted else "")
        return conn

    def _check_hello(self, hello: pb.Hello) -> None:
        if not hello.name or not hello.incarnation:
            raise AgentRejected("an agent's hello needs a name and an incarnation")
        if len(hello.name) > MAX_NAME or len(hello.incarnation) > MAX_NAME:
            raise AgentRejected(f"agent names and incarnations are at most {MAX_NAME} "
                                "characters")
        try:
            labels.parse(hello.labels)
            storage.parse(hello.storage)
        except InvalidTags as exc:
            raise AgentRejected(f"agent {hello.name!r}: {exc}") from None

    def _silent(self, conn: AgentConn) -> bool:
        return time.monotonic() - conn.last_seen > self.config.heartbeat_timeout

    def _refresh_tasks(self) -> None:
        """Rebuild the task table from the connected agents."""
        tasks: dict[str, TaskRule] = {}
        for conn in self._agents.values():
            for name, info in conn.tasks.items():
                weight = wire.weight_of(info.weight) if info.weight else None
                tasks[name] = TaskRule(name, info.idempotent, weight, _requires(info))
        self.tasks = MappingProxyType(tasks)
        self.known.update(tasks)

    async def _retire(self, conn: AgentConn) -> None:
        """Close a connection that is no longer the agent's; what it had not sent goes back."""
        self.dispatch.agent_left(conn)
        unsent = conn.close()
        if unsent:
            await self.dispatch.give_back(conn.name, [item.token_id for item in unsent])

    def reconnect(self, conn: AgentConn) -> None:
        """End ``conn``'s link: the agent registers again, and ``join`` reconciles what it
        holds with what the ledger placed on it."""
        self._background.spawn(self._retire(conn), f"tg-retire-{conn.name}")

    # -- frames and departures -----------------------------------------------------------------

    def heard(self, conn: AgentConn, frame: pb.AgentFrame) -> AgentSnapshot | None:
        """Any frame is a heartbeat; its seq renews the agent's work lease. The snapshot it
        brought, read through its schema, when there is one that fits: now the agent's newest
        (one that does not fit is logged, and the previous one kept)."""
        conn.touch()
        if frame.seq and not frame.results:  # a frame with results is acked once stored
            conn.send_seen(frame.seq)
        snapshot = self._read(conn.name, frame.snapshot) if frame.snapshot else None
        if snapshot is not None:
            conn.snapshot = bytes(frame.snapshot)
        conn.stuck, conn.blocked = frame.stuck, frame.blocked
        if frame.leaving and not conn.leaving:
            conn.leaving = True
            logger.info("agent %s is stopping: no more dispatch to it", conn.name)
        return snapshot

    def _read(self, agent: str, blob: bytes) -> AgentSnapshot | None:
        """An agent's snapshot read through :class:`AgentSnapshot`; None if it does not fit
        (logged, at most once a minute per agent, with how many were not logged)."""
        try:
            return AgentSnapshot.decode(blob)
        except SnapshotError as exc:
            now = time.monotonic()
            last, quiet = self._unfit.get(agent, (now - BAD_SNAPSHOT_LOG_EVERY, 0))
            if now - last < BAD_SNAPSHOT_LOG_EVERY:
                self._unfit[agent] = (last, quiet + 1)
                return None
            self._unfit[agent] = (now, 0)
            logger.warning("agent %s sent a status snapshot that does not fit its schema (%s); "
                           "keeping its previous one%s", agent, exc,
                           f" ({quiet} more since the last warning)" if quiet else "")
            return None

    async def disconnected(self, conn: AgentConn) -> None:
        """The link broke: no more dispatch; the monitor decides whether it is lost.

        An agent that said it was leaving is gone for good: what it still holds is handed to
        other agents at once.
        """
        await self._retire(conn)
        current = self._agents.get(conn.name) is conn
        logger.info("agent %s disconnected", conn.name)
        if current and conn.leaving and not self._stopping:
            await self.declare_lost(conn.name, reason="it stopped", expected=conn)

    # -- loss ----------------------------------------------------------------------------------

    async def _monitor(self) -> None:
        interval = min(1.0, self.config.heartbeat_timeout / 4)
        last = time.monotonic()
        backoff = Backoff()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            if now - last > interval + STALL_SECONDS:  # this process (or its loop) was held up
                self._grace_from = max(self._grace_from, time.time())
            last = now
            try:  # a gateway paused past its lease must not judge others
                if await self.store.write(self.serving):
                    await self._check_heartbeats()
                backoff.succeeded()
            except RedisUnavailable as exc:
                logger.error("heartbeat bookkeeping paused: %s", exc)
            except Exception:  # a bug: say so, and keep watching
                logger.exception("heartbeat check failed; watching goes on")
                await asyncio.sleep(backoff.failed())

    async def _check_heartbeats(self) -> None:
        live = {c.name: c.last_seen_wall for c in self.connected() if c.connected}
        await self.store.write(self.ledger.touch_agents, live)
        seen_at = await self.store.write(self.ledger.last_seen)
        deadline = time.time() - self.config.heartbeat_timeout
        grace = max(self._grace_from, self.ledger.trouble_at)  # read after the calls above
        for name, seen in seen_at.items():
            conn = self.get(name)
            if conn is not None:
                seen = max(seen, conn.last_seen_wall)
            if max(seen, grace) < deadline:
                await self.declare_lost(name, expected=conn)

    async def declare_lost(self, name: str, reason: str = "", expected: Any = ANY) -> None:
        """``name`` is lost. Given ``expected`` (the connection judged, or None), only if
        that is still its connection: an agent that joined again meanwhile is left alone."""
        reason = reason or f"no heartbeat for {self.config.heartbeat_timeout:.1f}s"
        if expected is not ANY and self._agents.get(name) is not expected:
            return
        conn = self._agents.pop(name, None)
        self._refresh_tasks()
        for hook in self.lost_hooks:
            hook(name)
        logger.warning("agent %s declared lost: %s", name, reason)
        if conn is not None:
            await self._retire(conn)
        message = f"agent {name} was lost ({reason}) while holding the token"
        back = await self.store.write(self.ledger.lose, name, self._policy(message))
        if back.failed:
            logger.warning("%d tokens of agent %s failed with %s", len(back.failed), name,
                           wire.AGENT_LOST)
            self.results.push_lost(back.failed, message)
        if back.requeued:
            logger.info("requeued %s tokens of agent %s", dict(back.requeued), name)
        self.dispatch.queued(back.requeued)
