"""Admission: screen a client's frame, place its calls, store them, dispatch, answer.

Stateless between frames (it owns no mutable state; everything it changes belongs to the
ledger, dispatch or results); it runs on the event loop, one frame of a session at a time.
One :class:`Row` per call carries it through the steps, in batches of at most
``ADMIT_BATCH`` (a frame of any size becomes several script calls, so no script grows past
what Redis runs comfortably, and every id gets an answer):

1. screen: malformed items, unknown tasks, calls of functions the Guard House blocked
   cluster-wide (:mod:`.guards`) and repeated ids are answered here; the weight and
   whether a call may run twice follow the task's own registration when agents know it;
2. place: dispatch spends credit for calls an agent can take now; the rest will wait;
3. refuse: calls that would wait beyond ``max_pending`` are refused with GatewayBusy;
4. store: ``submit.lua``, on the store's write lane. New calls of idempotent tasks are
   dispatched while that write is in flight (the lane runs their agents' reports after it);
   resent frames and calls that must never run twice are stored first;
5. answer: acks; a repeated id (a resubmission) is watched instead, so its client gets the
   stored outcome.

Before step 2, the fair-share gate (:mod:`.gate`) holds the calls of a client beyond its fair
share, unstored and unacknowledged; it hands them back (:meth:`Admission.admit_released`)
as room opens, and they go through steps 2-5 then.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tokengate.gateway import items as checks
from tokengate.gateway import keys, needs
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn, ClientConn
from tokengate.gateway.dispatch import Dispatch
from tokengate.gateway.gate import Gate
from tokengate.gateway.guards import ClusterGuards
from tokengate.gateway.ledger import NewToken, SubmitStatus, TokenLedger
from tokengate.gateway.registry import Registry
from tokengate.gateway.results import Results
from tokengate.gateway.series import Series
from tokengate.gateway.store import Store
from tokengate.shared import labels, wire
from tokengate.shared.errors import (
    BadRequest,
    GatewayBusy,
    InvalidTags,
    RedisUnavailable,
    UnknownTask,
)
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight

logger = logging.getLogger(__name__)

ADMIT_BATCH = 1000


@dataclass(slots=True)
class Row:
    """One call on its way through admission."""

    item: pb.TaskItem
    weight: Weight
    idempotent: bool
    queue: str  # where it waits: its weight and need (gateway/needs.py)
    target: AgentConn | None = None
    status: SubmitStatus | None = None
    digest: str = ""  # a keyed call's digest (gateway/keys.py); "" no key
    counted: bool = False  # the gate counts it in flight (until stored as new, or not)

    def token(self, owner: str, session: str) -> NewToken:
        item, target = self.item, self.target
        return NewToken(item.token_id, item.task, self.weight, self.idempotent,
                        item.SerializeToString(), target.name if target else "", owner, session,
                        self.queue, self.digest)


@dataclass(slots=True)
class Screened:
    rows: list[Row]
    rejected: list[pb.Rejected]
    copies: list[str]  # ids repeated within the frame, answered like their first copy


class Admission:
    def __init__(self, config: GatewayConfig, ledger: TokenLedger, store: Store,
                 dispatch: Dispatch, results: Results, registry: Registry,
                 series: Series, gate: Gate, guards: ClusterGuards) -> None:
        self.config = config
        self.guards = guards
        self.gate = gate
        self.ledger = ledger
        self.store = store
        self.dispatch = dispatch
        self.results = results
        self.registry = registry
        self.series = series

    async def submit(self, conn: ClientConn, items: Sequence[pb.TaskItem], resubmit: bool,
                     received: Sequence[str] = ()) -> None:
        """Admit a frame's calls; ``received`` (results the client has) are dropped from
        Redis in the same round trip as the first batch (or alone, when no batch goes)."""
        screened = self.screen(conn, items)
        if screened.rejected:
            conn.send(rejected=screened.rejected)
        refused: set[str] = {r.token_id for r in screened.rejected}
        rows, held, busy = self.gate.split(conn, screened.rows, resubmit)
        if busy:
            conn.send(rejected=busy)
            refused.update(r.token_id for r in busy)
        batches = list(_batches(rows, ADMIT_BATCH))
        if not batches and received:
            await self.results.received(conn, received)
        for i, batch in enumerate(batches):
            refused |= await self._admit_counted(conn, batch, resubmit,
                                                 received if i == 0 else ())
        if screened.copies:  # a copy of a held call is answered with it, once it is stored
            waiting = refused.union(held)
            conn.send(accepted=[i for i in screened.copies if i not in waiting])

    async def admit_released(self, conn: ClientConn, rows: list[Row], resubmit: bool) -> None:
        """Calls the gate held, released now: steps 2-5."""
        for batch in _batches(rows, ADMIT_BATCH):
            await self._admit_counted(conn, batch, resubmit, ())

    async def _admit_counted(self, conn: ClientConn, rows: list[Row], resubmit: bool,
                             received: Sequence[str]) -> set[str]:
        """:meth:`_admit`, and the gate told of counted calls that were refused."""
        refused = await self._admit(conn, rows, resubmit, received)
        if refused:
            self.gate.not_stored(r.item.token_id for r in rows
                                 if r.counted and r.item.token_id in refused)
        return refused

    # -- 1. screen -----------------------------------------------------------------------------

    def screen(self, conn: ClientConn, items: Sequence[pb.TaskItem]) -> Screened:
        cfg = self.config
        tasks, known = self.registry.tasks, self.registry.known
        blocked = self.guards.blocked
        out = Screened([], [], [])
        seen: set[str] = set()
        session = conn.session
        for item in items:
            token_id = item.token_id
            if token_id in seen:
                out.copies.append(token_id)
                continue
            rule = None
            error = checks.check_item(item, max_payload=cfg.max_payload,
                                      allow_pickle=cfg.allow_pickle)
            if error is None and item.key:
                error = keys.key_error(item)
            if error is None and tasks:
                rule = tasks.get(item.task)
                if rule is None and item.task not in known:  # known: waits for its agent
                    error = UnknownTask(f"no agent runs a task named {item.task!r}; agents "
                                        "include only the modules named with --include")
            if blocked and error is None and item.task in blocked:
                error = self.guards.refusal(item.task)  # no agent would run it
            if error is None:
                try:
                    weight = wire.weight_of(item.weight)  # a bad one is refused, task or not
                    asked = labels.parse(item.requires, "requires") if item.requires else ()
                except BadRequest as exc:
                    error = exc
                except InvalidTags as exc:
                    error = BadRequest(str(exc))
            if error is not None:
                out.rejected.append(checks.rejection(token_id, error))
                continue
            seen.add(token_id)
            idempotent = not item.not_idempotent
            if rule is not None:  # the task's own tags win
                weight, idempotent = rule.weight or weight, idempotent and rule.idempotent
                item.weight, item.not_idempotent = weight, not idempotent
            need = needs.need_of(item.task, asked, rule.requires if rule else ())
            item.attempt, item.session = 1, session
            out.rows.append(Row(item, weight, idempotent, needs.queue_name(weight, need),
                                digest=keys.call_digest(item) if item.key else ""))
        return out

    # -- 2-5 -----------------------------------------------------------------------------------

    async def _admit(self, conn: ClientConn, rows: list[Row], resubmit: bool,
                     received: Sequence[str]) -> set[str]:
        """Admit one batch; the ids refused."""
        targets = self.dispatch.place([row.queue for row in rows],
                                      [row.item.operation_type for row in rows],
                                      _ids(rows) if self.dispatch.storage.active else ())
        for row, target in zip(rows, targets, strict=True):
            row.target = target
        rows, busy = self._refuse_busy(rows, resubmit)
        if busy:
            conn.send(rejected=busy)
        if not rows:
            if received:
                await self.results.received(conn, received)
            return {r.token_id for r in busy}
        conn.expect(row.item.token_id for row in rows)
        # A keyed call is stored first, always: a repeat of its key must not reach an agent.
        early = not resubmit and all(row.idempotent and not row.digest for row in rows)
        refused = {r.token_id for r in busy}
        owner, session = conn.client_id, conn.session
        went, stored = self.store.submit([row.token(owner, session) for row in rows],
                                         list(received))
        # Sent early only once the script is on its way: one that Redis refused outright
        # (it is down) stored nothing, and its calls must not run. Whatever the agents
        # report on them goes out on the same write lane, after it.
        sent = early and await went
        unsent = self._send(rows) if sent else {}
        try:
            answer: list[SubmitStatus] | Exception = await stored
        except Exception as exc:
            answer = exc
        if unsent:
            await self._give_back(unsent)
        if isinstance(answer, Exception):
            if await went:
                self._in_doubt(rows, sent)
            else:  # nothing went out, so nothing was stored
                self.dispatch.refund([row.target for row in rows], _ids(rows))
            return refused | self._refuse(conn, rows, answer)
        for row, status in zip(rows, answer, strict=True):
            row.status = status
        await self._after_store(conn, rows, sent)
        return refused

    def _refuse(self, conn: ClientConn, rows: list[Row], exc: Exception) -> set[str]:
        """Refuse a batch that could not be stored (Redis away, or a bug), visibly."""
        if isinstance(exc, RedisUnavailable):
            logger.error("submission of %d calls refused: %s", len(rows), exc)
        else:
            logger.error("submission of %d calls failed", len(rows), exc_info=exc)
            exc = RedisUnavailable(f"the calls could not be stored: {exc}")
        conn.send(rejected=[checks.rejection(row.item.token_id, exc) for row in rows])
        return {row.item.token_id for row in rows}

    def _in_doubt(self, rows: list[Row], sent: bool) -> None:
        """The batch went to Redis and no answer came back, even after running it again for
        a minute: it may be stored, placed on its agents. Calls sent to them early run there
        (their client, refused, offers them again and is answered by id). Calls not sent
        never reached their agents: those links are closed, so each agent registers again
        and ``join`` gives back what it was placed on but does not hold."""
        if sent:
            return
        self.dispatch.refund([row.target for row in rows], _ids(rows))
        for target in {row.target for row in rows if row.target is not None}:
            logger.warning("agent %s may have been given calls it never got: it registers "
                           "again", target.name)
            self.registry.reconnect(target)

    def _refuse_busy(self, rows: list[Row], resubmit: bool) -> tuple[list[Row],
                                                                     list[pb.Rejected]]:
        """``max_pending`` tokens wait already: refuse what can neither go to an agent now
        nor fit in the room left. A resent frame is let through: mostly repeats of tokens
        stored already, whose outcomes its client is waiting for."""
        room = self.dispatch.waiting_room()
        if resubmit or sum(row.target is None for row in rows) <= room:
            return rows, []
        keep, refused = [], []
        error = GatewayBusy(f"the gateway holds {self.config.max_pending} waiting tokens; "
                            "offer them again later")
        for row in rows:
            if row.target is not None or room > 0:
                keep.append(row)
                room -= row.target is None
            else:
                refused.append(checks.rejection(row.item.token_id, error))
        return keep, refused

    def _send(self, rows: Sequence[Row]) -> dict[str, list[str]]:
        """Send placed rows to their agents; the ids an agent's closed link refused."""
        by_agent: dict[AgentConn, list[pb.TaskItem]] = defaultdict(list)
        for row in rows:
            if row.target is not None:
                by_agent[row.target].append(row.item)
        unsent: dict[str, list[str]] = {}
        for conn, batch in by_agent.items():
            refused = self.dispatch.send(conn, batch)
            if refused:
                unsent[conn.name] = refused
            self.dispatch.stats["direct_frames"] += 1
            self.dispatch.stats["direct"] += len(batch)
        return unsent

    async def _give_back(self, unsent: dict[str, list[str]]) -> None:
        for agent, ids in unsent.items():
            await self.dispatch.give_back(agent, ids)

    async def _after_store(self, conn: ClientConn, rows: list[Row], sent: bool) -> None:
        # Stored before (a repeat, or its key's) or refused (a key's conflict): not new work
        # of this client's, for the fair-share gate.
        self.gate.not_stored(row.item.token_id for row in rows if row.counted and row.status
                             in (SubmitStatus.DUPLICATE, SubmitStatus.CONFLICT))
        rows, keyed = self._key_repeats(conn, rows)
        queued: dict[str, int] = defaultdict(int)
        duplicates: list[str] = []
        unsent: list[AgentConn | None] = []
        unsent_ids: list[str] = []
        dispatch_now: list[Row] = []
        for row in rows:
            if row.status is SubmitStatus.QUEUED:
                queued[row.queue] += 1
                if not sent:
                    unsent.append(row.target)  # placed, but its agent was lost meanwhile
                    unsent_ids.append(row.item.token_id)
            elif row.status is SubmitStatus.DUPLICATE:
                duplicates.append(row.item.token_id)
                if not sent:
                    unsent.append(row.target)
                    unsent_ids.append(row.item.token_id)
            elif not sent:
                dispatch_now.append(row)
        self.dispatch.refund(unsent, unsent_ids)
        self.dispatch.queued(queued)
        self.series.submitted(len(rows) - len(duplicates))
        conn.send(accepted=[row.item.token_id for row in rows] + keyed)
        if dispatch_now:
            refused = self._send(dispatch_now)
            if refused:
                await self._give_back(refused)
        if duplicates:
            await self.results.watch(conn, duplicates)
        if keyed:
            await self.results.watch(conn, keyed, by_key=True)

    def _key_repeats(self, conn: ClientConn, rows: list[Row]) -> tuple[list[Row], list[str]]:
        """Take out the keyed calls whose key was stored already: a repeat of the same call
        (its id, to watch by key) or another call (refused: IdempotencyConflict). Their
        placements are refunded (keyed calls are never sent before they are stored)."""
        rest: list[Row] = []
        repeats: list[str] = []
        conflicts: list[pb.Rejected] = []
        refund: list[AgentConn | None] = []
        refund_ids: list[str] = []
        for row in rows:
            if row.status is SubmitStatus.CONFLICT:
                conflicts.append(checks.rejection(row.item.token_id, keys.conflict(row.item)))
            elif row.status is SubmitStatus.DUPLICATE and row.digest:
                repeats.append(row.item.token_id)
            else:
                rest.append(row)
                continue
            refund.append(row.target)
            refund_ids.append(row.item.token_id)
        if refund:
            self.dispatch.refund(refund, refund_ids)
        if conflicts:
            conn.send(rejected=conflicts)
        return rest, repeats


def _ids(rows: Sequence[Row]) -> list[str]:
    return [row.item.token_id for row in rows]


def _batches(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
