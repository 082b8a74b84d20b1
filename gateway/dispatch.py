"""Dispatch: the credit book, the mirror of what waits in Redis, drains, the dispatcher.

Owned by the event loop (no locks): the agents that may be given work (their connections,
added by the registry once an agent's registration and adoption are done, removed when it
leaves), each agent's credit (:class:`~tokengate.gateway.placement.AgentCredit`), the run time
of each kind of task (:class:`~tokengate.gateway.runtimes.RunTimes`, for chunking), the number
of tokens waiting in Redis per weight (a mirror: synced from Redis every second, so it may
only lag) and the drain flags. The dispatcher task claims waiting tokens for agents with
credit; its claims go out on the store's write lane, so they run in order with submissions
and reports.

Admission hands placed tokens here (:meth:`place`, then :meth:`send`); the registry tells it
about agents and their credit reports; control sets drains. Sending goes through each
agent's connection; a send that cannot go out gives the tokens back at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from tokengate.gateway import placement
from tokengate.gateway.aio import Signal
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn
from tokengate.gateway.ledger import DrainState, LossPolicy, TokenLedger
from tokengate.gateway.runtimes import RunTimes
from tokengate.gateway.store import Store
from tokengate.shared import framing
from tokengate.shared.errors import RedisUnavailable
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight

logger = logging.getLogger(__name__)

SYNC_EVERY = 1.0  # seconds between re-reads of the queue lengths in Redis
STATS = ("client_frames", "client_items", "agent_frames", "agent_results", "direct_frames",
         "direct", "claims", "claimed")


class Dispatch:
    """Which agent gets which token, and the task that hands waiting tokens out."""

    def __init__(self, config: GatewayConfig, ledger: TokenLedger, store: Store) -> None:
        self.config = config
        self.ledger = ledger
        self.store = store
        self._conns: dict[str, AgentConn] = {}
        self._book: placement.Book = {}
        self.runtimes = RunTimes()
        self._waiting: dict[Weight, int] = dict.fromkeys(placement.WEIGHTS, 0)
        self._drain = DrainState()
        self._kick = Signal()
        self._task: asyncio.Task[None] | None = None
        # Frames and items seen (read by the metrics thread too: every key exists from the
        # start, so a reader iterating it never sees the dict grow).
        self.stats: dict[str, int] = dict.fromkeys(STATS, 0)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, drain: DrainState) -> None:
        self._drain = drain
        await self.sync()
        self._task = asyncio.create_task(self._loop(), name="tg-dispatch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- agents (the registry calls these) -----------------------------------------------------

    def agent_joined(self, conn: AgentConn, free: Mapping[Weight, int]) -> None:
        """Registration and adoption are done: the agent may be given work from now on."""
        credit = placement.AgentCredit()
        credit.report(free, 0)
        self._conns[conn.name] = conn
        self._book[conn.name] = credit
        self._kick.set()

    def agent_left(self, conn: AgentConn) -> None:
        if self._conns.get(conn.name) is conn:
            del self._conns[conn.name]
            del self._book[conn.name]

    def credits(self, conn: AgentConn, free: Mapping[Weight, int], received: int) -> None:
        if self._conns.get(conn.name) is not conn:
            return
        self._book[conn.name].report(free, received)
        if any(n > 0 for n in self._waiting.values()):
            self._kick.set()

    def credit_of(self, name: str) -> dict[Weight, int]:
        credit = self._book.get(name)
        return credit.snapshot() if credit is not None else {}

    def saturated(self, name: str) -> bool:
        """The agent can take none of what waits (or nothing at all, when nothing waits)."""
        credit = self._book.get(name)
        return credit is not None and placement.saturated(credit, self._waiting)

    # -- drains (control calls these) ----------------------------------------------------------

    def set_drain(self, node: str, reason: str) -> None:
        self._drain = self._drain.drained(node, reason, time.time())

    def clear_drain(self, node: str) -> None:
        self._drain = self._drain.resumed(node)
        self._kick.set()

    def drain_state(self) -> DrainState:
        return self._drain

    def _eligible(self) -> list[str]:
        """Agents that may be given work now."""
        if self._drain.cluster is not None:
            return []
        return [name for name, conn in self._conns.items()
                if conn.connected and not conn.leaving and name not in self._drain.nodes]

    # -- admission hands placed tokens here ----------------------------------------------------

    def observe(self, results: Sequence[pb.ResultItem]) -> None:
        """Outcomes an agent reported: how long their kinds of task run."""
        self.runtimes.observe(results)

    def place(self, weights: Sequence[Weight], kinds: Sequence[str]) -> list[AgentConn | None]:
        """An agent per token with credit for it now, or None (it waits in Redis); short
        tokens (by their ``kinds``' run times) in chunks per agent.

        A weight with tokens waiting queues behind them; spends the credit.
        """
        out: list[AgentConn | None] = [None] * len(weights)
        eligible = self._eligible()
        direct = [i for i, w in enumerate(weights) if self._waiting[w] <= 0]
        if not (eligible and direct):
            return out
        costs = self.runtimes.costs([kinds[i] for i in direct])
        chosen = placement.assign([weights[i] for i in direct], self._book, eligible,
                                  costs, self.config.chunk_budget)
        for i, name in zip(direct, chosen, strict=True):
            out[i] = self._conns[name] if name else None
        return out

    def refund(self, targets: Iterable[AgentConn | None]) -> None:
        """Placed tokens that will not be sent after all (duplicates, a failed write)."""
        counts: dict[str, int] = defaultdict(int)
        for conn in targets:
            if conn is not None:
                counts[conn.name] += 1
        for name, n in counts.items():
            placement.refund(self._book, name, n)

    def waiting_room(self) -> int:
        """How many more tokens may wait in Redis before new calls are refused."""
        return self.config.max_pending - sum(self._waiting.values())

    def queued(self, counts: Mapping[Weight, int]) -> None:
        """Tokens now wait in Redis (stored as waiting, or given back)."""
        if not any(counts.values()):
            return
        for weight, n in counts.items():
            self._waiting[weight] += n
        self._kick.set()

    def waiting(self) -> dict[Weight, int]:
        return dict(self._waiting)

    def send(self, conn: AgentConn, items: list[pb.TaskItem], *, split: bool = False,
             ) -> list[str]:
        """Hand tokens placed on ``conn`` to its link; the ids it could not take (it closed),
        which the caller gives back (:meth:`give_back`) once their submission is stored.

        ``split`` cuts a claimed batch (which may hold many large calls) into frame-sized
        pieces; a client's batch is one already.
        """
        unsent: list[str] = []
        chunks = framing.split(items, count=len(items)) if split else (items,)
        for chunk in chunks:
            if not conn.send_tasks(chunk):
                unsent.extend(item.token_id for item in chunk)
        return unsent

    async def give_back(self, agent: str, ids: list[str], *, returned: bool = False) -> None:
        """Tokens placed on ``agent`` that never reached it (``returned``: that it gave back
        unstarted as it left): they wait again, same attempt."""
        policy = LossPolicy(self.config.max_attempts, "", self.config.result_ttl)
        try:
            back = await self.store.write(self.ledger.give_back, agent, ids, policy, returned)
        except RedisUnavailable as exc:  # the agent's next registration reconciles them
            logger.error("cannot give back %d tokens of %s now: %s", len(ids), agent, exc)
            return
        self.queued(back.requeued)

    # -- the dispatcher task -------------------------------------------------------------------

    def kick(self) -> None:
        self._kick.set()

    async def sync(self) -> None:
        self._waiting.update(await self.store.read(self.ledger.queue_lengths))

    async def _loop(self) -> None:
        last_sync = 0.0
        while True:
            kicked = await self._kick.wait(SYNC_EVERY)
            try:
                if time.monotonic() - last_sync > SYNC_EVERY:
                    await self.sync()
                    last_sync = time.monotonic()
                # A quiet second: any credit counts, so an agent whose capacity no longer
                # grows (every worker stuck) still gets its last free slots filled.
                while await self._round(eager=not kicked):
                    pass
            except RedisUnavailable as exc:
                logger.error("dispatch paused: %s", exc)
                await asyncio.sleep(0.5)
            except Exception:  # a bug: say so, and keep dispatching
                logger.exception("dispatch round failed")
                await asyncio.sleep(0.5)

    async def _round(self, eager: bool = False) -> bool:
        progress = False
        for weight in placement.WEIGHTS:
            want = min(self._waiting[weight], self.config.dispatch_batch)
            if want <= 0:
                continue
            eligible = self._eligible()
            ready = placement.ready(1 if eager else want, weight, self._book, eligible)
            plan = placement.split(want, weight, self._book, ready)
            conns = {name: self._conns[name] for name in plan}
            self._waiting[weight] -= sum(plan.values())
            for i, (name, count) in enumerate(plan.items()):
                try:
                    progress = await self._claim_for(conns[name], weight, count) or progress
                except BaseException:  # the credit spent on the plan was not used: give it back
                    for unclaimed, n in list(plan.items())[i:]:
                        placement.refund(self._book, unclaimed, n)
                    raise
        return progress

    async def _claim_for(self, conn: AgentConn, weight: Weight, count: int) -> bool:
        claimed = await self.store.pipelined(self.ledger.claim_begin, weight, count,
                                             conn.name, framing.FRAME_SOFT_LIMIT)
        self.stats["claims"] += 1
        self.stats["claimed"] += len(claimed)
        if len(claimed) < count:
            placement.refund(self._book, conn.name, count - len(claimed))
            await self.sync()
        if not claimed:
            return False
        items = []
        for row in claimed:
            item = pb.TaskItem.FromString(row.item)
            item.attempt = row.attempt
            items.append(item)
        unsent = self.send(conn, items, split=True)
        if unsent:
            await self.give_back(conn.name, unsent)
        return True
