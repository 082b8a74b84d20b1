"""Dispatch: the credit book, the mirror of what waits in Redis, drains, the dispatcher.

Owned by the event loop (no locks): the agents that may be given work (their connections,
added by the registry once an agent's registration and adoption are done, removed when it
leaves), each agent's credit (:class:`~tokengate.gateway.placement.AgentCredit`), the run time
of each kind of task (:class:`~tokengate.gateway.runtimes.RunTimes`, for chunking), the number
of tokens waiting in Redis per queue (weight and need, :mod:`~tokengate.gateway.needs`: a
mirror, synced from Redis every second, so it may only lag), when each waiting need was
first seen with no live agent serving it, the drain flags, and the slots of shared storages
held by tokens out on agents (:class:`~tokengate.gateway.storage.SharedStorage`: both paths
below send a storage-tagged token to an agent that declares a shared storage only while the
storage has room; what cannot go waits in Redis and is claimed once a slot frees). The
dispatcher task claims waiting tokens for agents with credit that serve their need (a queue
at a time, starting one further each round, so queues of one weight share the credit); its
claims go out on the store's write lane, so they run in order with submissions and reports.
Once a second it fails (``expire``) the tokens that have waited ``placement_timeout`` with
no live agent serving their need.

Admission hands placed tokens here (:meth:`place`, then :meth:`send`); the registry tells it
about agents and their credit reports; control sets drains. Sending goes through each
agent's connection; a send that cannot go out gives the tokens back at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from tokengate.gateway import needs, placement, storage
from tokengate.gateway.aio import Signal
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn
from tokengate.gateway.ledger import DrainState, LossPolicy, LostToken, TokenLedger
from tokengate.gateway.ledger.schema import per_weight
from tokengate.gateway.runtimes import RunTimes
from tokengate.gateway.store import Store
from tokengate.shared import framing
from tokengate.shared.backoff import Backoff
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
        self._waiting: dict[str, int] = {w.value: 0 for w in placement.WEIGHTS}  # per queue
        self._unserved: dict[str, float] = {}  # queue -> when first seen with no agent for it
        self._turn = 0  # the queue a round starts with, rotating
        self._expired: Callable[[list[LostToken], str], None] = lambda lost, message: None
        self._drain = DrainState()
        self._kick = Signal()
        self._task: asyncio.Task[None] | None = None
        self.storage = storage.SharedStorage()
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

    def agent_joined(self, conn: AgentConn, free: Mapping[Weight, int],
                     held: Iterable[str] = ()) -> None:
        """Registration and adoption are done: the agent may be given work from now on
        (``held``: the tokens it still holds, whose shared-storage slots stay taken)."""
        if conn.storage is not None or self.storage.active:
            bound = [name for name, info in conn.tasks.items() if info.storage_speed]
            self.storage.joined(conn.name, conn.storage, bound, held)
        credit = placement.AgentCredit()
        credit.report(free, 0)
        self._conns[conn.name] = conn
        self._book[conn.name] = credit
        self._kick.set()

    def agent_left(self, conn: AgentConn) -> None:
        if self._conns.get(conn.name) is conn:
            del self._conns[conn.name]
            del self._book[conn.name]
            self.storage.left(conn.name)

    def agent_lost(self, name: str) -> None:
        """Declared lost (the registry's hook): the shared-storage slots its tokens held free."""
        if self.storage.lost(name):
            self._kick.set()

    def finished(self, ids: Iterable[str]) -> None:
        """Tokens that reached their outcome (the results owner tells): their slots free."""
        if self.storage.release(ids) and any(n > 0 for n in self._waiting.values()):
            self._kick.set()

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
        """The agent can take none of what waits for it (or nothing at all, when nothing
        waits that it could run)."""
        credit, conn = self._book.get(name), self._conns.get(name)
        if credit is None or conn is None:
            return False
        mine = {q: n for q, n in self._waiting.items()
                if n > 0 and needs.serves(conn.offer, needs.parse_queue(q)[1])}
        return placement.saturated(credit, per_weight(mine))

    def on_expired(self, callback: Callable[[list[LostToken], str], None]) -> None:
        """Who is told of tokens failed for want of an agent (results, which push them)."""
        self._expired = callback

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

    def place(self, queues: Sequence[str], kinds: Sequence[str],
              ids: Sequence[str] = ()) -> list[AgentConn | None]:
        """An agent per token (named by the queue it would wait in) that serves its need and
        has credit for it now, or None (it waits in Redis); short tokens (by their ``kinds``'
        run times) in chunks per agent.

        A queue with tokens waiting keeps new ones behind them; spends the credit. A token
        placed on an agent that declares a shared storage takes a slot of it (by its id in
        ``ids``) or waits.
        """
        out: list[AgentConn | None] = [None] * len(queues)
        eligible = self._eligible()
        if not eligible:
            return out
        groups: dict[str, list[int]] = defaultdict(list)
        for i, queue in enumerate(queues):
            if self._waiting.get(queue, 0) <= 0:
                groups[queue].append(i)
        for queue, direct in groups.items():
            weight, need = needs.parse_queue(queue)
            serving = self._serving(eligible, need)
            if not serving:
                continue
            costs = self.runtimes.costs([kinds[i] for i in direct])
            chosen = placement.assign([weight] * len(direct), self._book, serving, costs,
                                      self.config.chunk_budget)
            if self.storage.active and ids:
                self._cap_placed(need.task, chosen, [ids[i] for i in direct])
            for i, name in zip(direct, chosen, strict=True):
                out[i] = self._conns[name] if name else None
        return out

    def _cap_placed(self, task: str, chosen: list[str], ids: Sequence[str]) -> None:
        """Unplace (in ``chosen``) what its agent's shared storage has no room for."""
        shared = self.storage
        for j, (agent, token_id) in enumerate(zip(chosen, ids, strict=True)):
            name = shared.storage_for(agent, task) if agent else None
            if name is None:
                continue
            if shared.room(name) > 0 or shared.holds(token_id):
                shared.take(token_id, name, agent, placed=True)
            else:
                placement.refund(self._book, agent, 1)
                chosen[j] = ""

    def _serving(self, names: Iterable[str], need: needs.Need) -> list[str]:
        conns = self._conns
        return [name for name in names if needs.serves(conns[name].offer, need)]

    def refund(self, targets: Iterable[AgentConn | None], ids: Iterable[str] = ()) -> None:
        """Placed tokens (``ids``) that will not be sent after all (duplicates, a failed
        write): their credit and shared-storage slots come back."""
        if self.storage.unplace(ids):
            self._kick.set()
        counts: dict[str, int] = defaultdict(int)
        for conn in targets:
            if conn is not None:
                counts[conn.name] += 1
        for name, n in counts.items():
            placement.refund(self._book, name, n)

    def waiting_room(self) -> int:
        """How many more tokens may wait in Redis before new calls are refused."""
        return self.config.max_pending - sum(self._waiting.values())

    def queued(self, counts: Mapping[str, int]) -> None:
        """Tokens now wait in Redis (stored as waiting, or given back), per queue."""
        if not any(counts.values()):
            return
        waiting = self._waiting
        for queue, n in counts.items():
            waiting[queue] = waiting.get(queue, 0) + n
        self._kick.set()

    def waiting(self) -> dict[Weight, int]:
        """Tokens waiting per weight, over all its queues."""
        return per_weight(self._waiting)

    def waiting_queues(self) -> dict[str, int]:
        return {q: n for q, n in self._waiting.items() if n > 0}

    def send(self, conn: AgentConn, items: list[pb.TaskItem], *, split: bool = False,
             ) -> list[str]:
        """Hand tokens placed on ``conn`` to its link; the ids it could not take (it closed),
        which the caller gives back (:meth:`give_back`) once their submission is stored.

        ``split`` cuts a claimed batch (which may hold many large calls) into frame-sized
        pieces; a client's batch is one already.
        """
        unsent: list[str] = []
        if self.storage.placing:
            self.storage.sent(item.token_id for item in items)
        chunks = framing.split(items, count=len(items)) if split else (items,)
        for chunk in chunks:
            if not conn.send_tasks(chunk):
                unsent.extend(item.token_id for item in chunk)
        return unsent

    async def give_back(self, agent: str, ids: list[str], *, returned: bool = False) -> None:
        """Tokens placed on ``agent`` that never reached it (``returned``: that it gave back
        unstarted as it left): they wait again, same attempt."""
        self.storage.release(ids)
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
        self._waiting = dict(await self.store.read(self.ledger.queues))

    async def _loop(self) -> None:
        last_sync = 0.0
        backoff = Backoff()
        while True:
            kicked = await self._kick.wait(SYNC_EVERY)
            try:
                if time.monotonic() - last_sync > SYNC_EVERY:
                    await self.sync()
                    last_sync = time.monotonic()
                    await self._expire()
                # A quiet second: any credit counts, so an agent whose capacity no longer
                # grows (every worker stuck) still gets its last free slots filled.
                while await self._round(eager=not kicked):
                    pass
                backoff.succeeded()
            except RedisUnavailable as exc:
                logger.error("dispatch paused: %s", exc)
                await asyncio.sleep(0.5)
            except Exception:  # a bug: say so, and keep dispatching (the round is retried)
                logger.exception("dispatch round failed; dispatching goes on")
                await asyncio.sleep(backoff.failed())
                self._kick.set()

    async def _round(self, eager: bool = False) -> bool:
        progress = False
        queues = [q for q, n in self._waiting.items() if n > 0]
        if not queues:
            return False
        self._turn = (self._turn + 1) % len(queues)
        for queue in queues[self._turn:] + queues[:self._turn]:
            want = min(self._waiting.get(queue, 0), self.config.dispatch_batch)
            if want <= 0:
                continue
            weight, need = needs.parse_queue(queue)
            eligible = self._serving(self._eligible(), need)
            ready = placement.ready(1 if eager else want, weight, self._book, eligible)
            plan = placement.split(want, weight, self._book, ready)
            if self.storage.active:
                plan = self._cap_plan(need.task, plan)
            conns = {name: self._conns[name] for name in plan}
            self._waiting[queue] -= sum(plan.values())
            for i, (name, count) in enumerate(plan.items()):
                try:
                    progress = await self._claim_for(conns[name], queue, count) or progress
                except BaseException:  # the credit spent on the plan was not used: give it back
                    for unclaimed, n in list(plan.items())[i:]:
                        placement.refund(self._book, unclaimed, n)
                    raise
        return progress

    def _cap_plan(self, task: str, plan: dict[str, int]) -> dict[str, int]:
        """Trim a claim plan to the room of the agents' shared storages (credit refunded)."""
        shared = self.storage
        room: dict[str, int] = {}
        out = {}
        for agent, count in plan.items():
            name = shared.storage_for(agent, task)
            if name is not None:
                left = room.setdefault(name, shared.room(name))
                room[name] = left - min(count, left)
                placement.refund(self._book, agent, count - min(count, left))
                count = min(count, left)
            if count:
                out[agent] = count
        return out

    async def _claim_for(self, conn: AgentConn, queue: str, count: int) -> bool:
        name = self.storage.storage_for(conn.name, needs.parse_queue(queue)[1].task) \
            if self.storage.active else None
        if name is None:
            return await self._claim(conn, queue, count, None)
        self.storage.reserve(name, count)  # no placement takes these slots meanwhile
        try:
            return await self._claim(conn, queue, count, name)
        finally:
            self.storage.unreserve(name, count)

    async def _claim(self, conn: AgentConn, queue: str, count: int, shared: str | None,
                     ) -> bool:
        claimed = await self.store.pipelined(self.ledger.claim_begin, queue, count,
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
            if shared is not None:
                self.storage.take(item.token_id, shared, conn.name)
        unsent = self.send(conn, items, split=True)
        if unsent:
            await self.give_back(conn.name, unsent)
        return True

    # -- placement timeout ---------------------------------------------------------------------

    async def _expire(self) -> None:
        """Fail what has waited too long for a need no live agent serves (PlacementTimeout).

        A need counts as unserved from when this gateway first saw it so (a restarted
        gateway gives agents a full timeout to join again first); a token fails once both
        it and that moment are ``placement_timeout`` old, its age read from its creation
        time in Redis (so a token that waited long for a busy agent is not failed the
        moment that agent leaves, and nothing is lost to a gateway restart)."""
        timeout = self.config.placement_timeout
        offers = [c.offer for c in self._conns.values() if c.connected and not c.leaving]
        now = time.time()
        stranded = needs.stranded(self._waiting, offers)
        self._unserved = {q: self._unserved.get(q, now) for q in stranded}
        if timeout <= 0:
            return
        for queue, since in list(self._unserved.items()):
            if now - since < timeout:
                continue
            _, need = needs.parse_queue(queue)
            message = needs.timeout_message(need, timeout)
            failed = await self.store.write(self.ledger.expire, queue, now - timeout, message)
            if failed:
                logger.warning("%d tokens failed: %s", len(failed), message)
                self._waiting[queue] = max(0, self._waiting.get(queue, 0) - len(failed))
                self._expired(failed, message)
