"""The gateway's state and hot path: admission, credit dispatch, results to watchers.

Ownership: Redis (through :class:`RedisLedger`) holds every durable fact. In memory the
gateway keeps only what can be rebuilt: the live connections, the credit book and a mirror of
the queue lengths (``_dispatch_lock`` guards both), the client sessions by id (every token
carries its session's id to the agent and back, so a result finds its session with no
per-token state here: gateway memory stays flat however many tokens wait), and the watchers:
token id -> session, only for tokens a session asked for again (a resubmission after a
reconnect, a ``watch``); dict operations are atomic, ``pop`` claims a delivery.
Threads: each stream's reader calls in here; one dispatcher thread claims waiting tokens when
credits arrive; one monitor thread writes heartbeats and declares lost agents.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Sequence

from tokengate.gateway import credits as policy
from tokengate.gateway import keys
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn, ClientConn
from tokengate.gateway.items import (
    STATE_NAMES,
    check_item,
    normalize_weight,
    rejection,
    result_from_record,
)
from tokengate.gateway.ledger import DISPATCHED, DUPLICATE, QUEUED, RedisLedger
from tokengate.shared import framing
from tokengate.shared.errors import (
    GatewayBusy,
    RedisUnavailable,
    TokenGateError,
    UnknownTask,
    UnknownToken,
)
from tokengate.shared.rpc import tokengate_pb2 as pb

logger = logging.getLogger(__name__)

RECENT = 100  # outcomes kept for the status's executions feed
RECENT_PAYLOAD_LIMIT = 4096  # larger results are kept there without their payload


class GatewayCore:
    """Admission, dispatch and result routing; control and registry live in the subclass."""

    def __init__(self, config: GatewayConfig, ledger: RedisLedger) -> None:
        self.config = config
        self.ledger = ledger
        self.started = time.time()
        self.agents: dict[str, AgentConn] = {}
        self.sessions: dict[str, ClientConn] = {}
        self.watchers: dict[str, ClientConn] = {}
        self._dispatch_lock = threading.Lock()  # guards _credits, _pending, drain flags
        self._credits: policy.Credits = {}
        self._pending: dict[str, int] = dict.fromkeys(policy.WEIGHTS, 0)
        self.cluster_drain: str | None = None
        self.node_drain: dict[str, str] = {}
        self.recent: deque[pb.ResultItem] = deque(maxlen=RECENT)  # the executions feed
        self.stats: Counter[str] = Counter()  # frames and items seen (approximate, lock-free)
        self._kick = threading.Event()
        self._stopping = threading.Event()

    # -- eligibility ---------------------------------------------------------------------

    def _eligible(self) -> list[str]:
        """Agents that may receive work now; caller holds ``_dispatch_lock``."""
        if self.cluster_drain is not None:
            return []
        return [name for name, conn in self.agents.items()
                if conn.connected and not conn.leaving and name not in self.node_drain]

    # -- client submissions --------------------------------------------------------------

    def on_client_frame(self, conn: ClientConn, frame: pb.ClientFrame) -> None:
        self.stats["client_frames"] += 1
        self.stats["client_items"] += len(frame.submit)
        if frame.submit:
            self._admit(conn, frame.submit, frame.resubmit)
        if frame.watch:
            self._watch(conn, list(frame.watch))
        if frame.received:
            try:
                self.ledger.forget(frame.received)
            except RedisUnavailable as exc:  # they expire at their TTL instead
                logger.warning("cannot drop received results now: %s", exc)

    def _admit(self, conn: ClientConn, items: Sequence[pb.TaskItem], resubmit: bool) -> None:
        good, rejected = self._screen(items)
        if not good:
            conn.send(rejected=rejected)
            return
        weights = [normalize_weight(item.weight) for item in good]
        targets = self._place(weights)
        room = self.config.max_pending - sum(self._pending.values())
        if not resubmit and targets.count("") > room:
            good, weights, targets, rejected = self._refuse_busy(good, weights, targets,
                                                                 rejected, room)
        session = conn.id
        self.sessions[session] = conn
        rows = []
        for item, weight, target in zip(good, weights, targets, strict=True):
            item.attempt = 1
            item.weight = weight
            item.session = session
            rows.append((item.token_id, weight, 0 if item.not_idempotent else 1,
                         item.SerializeToString(), target, session))
        conn.expect(len(good))
        # New calls of idempotent tasks go out while their write is in flight; resent ids
        # and calls that must never run twice are stored first.
        early = not resubmit and all(not item.not_idempotent for item in good)
        sent = False
        try:
            finish = self.ledger.submit_begin(rows)
            sent = early and self._dispatch_direct(good, targets)
            statuses = finish()
        except RedisUnavailable as exc:
            if not sent:
                self._refund_all(targets, weights)
            rejected.extend(rejection(item.token_id, exc) for item in good)
            conn.send(rejected=rejected)
            logger.error("submission of %d tokens refused: %s", len(good), exc)
            return
        self._after_submit(conn, good, weights, targets, statuses, rejected, sent)

    def _screen(self, items: Sequence[pb.TaskItem]) -> tuple[list[pb.TaskItem],
                                                             list[pb.Rejected]]:
        """Split a frame into items to admit and rejections (bad fields, unknown tasks)."""
        cfg = self.config
        good: list[pb.TaskItem] = []
        rejected: list[pb.Rejected] = []
        known = self.known_tasks()
        for item in items:
            error = check_item(item, max_payload=cfg.max_payload, allow_pickle=cfg.allow_pickle)
            if error is None and known and item.task not in known:
                error = UnknownTask(f"no agent runs a task named {item.task!r}; agents include "
                                    "only the modules named with --include")
            if error is None:
                good.append(item)
            else:
                rejected.append(rejection(item.token_id, error))
        return good, rejected

    def known_tasks(self) -> frozenset[str]:
        """Tasks the connected agents registered; empty (accept all) when none is connected,
        so calls wait for agents instead of being refused."""
        tasks = frozenset().union(*(conn.tasks for conn in list(self.agents.values())
                                    if conn.connected))
        return tasks

    def _place(self, weights: list[str]) -> list[str]:
        """An agent per token with credit for it, or "" (wait in Redis); spends credits."""
        targets = [""] * len(weights)
        with self._dispatch_lock:
            eligible = self._eligible()
            # A weight with waiting tokens queues behind them; the others may go at once.
            direct = [i for i, w in enumerate(weights) if self._pending[w] <= 0]
            if eligible and direct:
                chosen = policy.assign([weights[i] for i in direct], self._credits, eligible)
                for i, target in zip(direct, chosen, strict=True):
                    targets[i] = target
        return targets

    def _dispatch_direct(self, good: list[pb.TaskItem], targets: list[str]) -> bool:
        by_agent: dict[str, list[pb.TaskItem]] = defaultdict(list)
        for item, target in zip(good, targets, strict=True):
            if target:
                by_agent[target].append(item)
        for name, batch in by_agent.items():
            self._send_to_agent(name, batch)
            self.stats["direct_frames"] += 1
            self.stats["direct"] += len(batch)
        return True

    def _refuse_busy(
        self, good: list[pb.TaskItem], weights: list[str], targets: list[str],
        rejected: list[pb.Rejected], room: int,
    ) -> tuple[list[pb.TaskItem], list[str], list[str], list[pb.Rejected]]:
        """``max_pending`` tokens wait already: refuse what can neither go straight to an
        agent nor fit in the ``room`` left."""
        keep, refused = [], []
        for i, target in enumerate(targets):
            if target or room > 0:
                keep.append(i)
                room -= 0 if target else 1
            else:
                refused.append(i)
        error = GatewayBusy(f"the gateway holds {self.config.max_pending} waiting tokens; "
                            "offer them again later")
        rejected = rejected + [rejection(good[i].token_id, error) for i in refused]
        return ([good[i] for i in keep], [weights[i] for i in keep],
                [targets[i] for i in keep], rejected)

    def _refund_all(self, targets: Sequence[str], weights: Sequence[str]) -> None:
        with self._dispatch_lock:
            for target, weight in zip(targets, weights, strict=True):
                policy.refund(self._credits, target, weight, 1)

    def _after_submit(self, conn: ClientConn, good: list[pb.TaskItem], weights: list[str],
                      targets: list[str], statuses: list[int], rejected: list[pb.Rejected],
                      sent: bool) -> None:
        queued: dict[str, int] = defaultdict(int)
        duplicates: list[str] = []
        refunds: list[tuple[str, str]] = []
        for item, weight, target, status in zip(good, weights, targets, statuses, strict=True):
            if status == QUEUED:
                queued[weight] += 1
            elif status == DUPLICATE:
                duplicates.append(item.token_id)
                if target and not sent:
                    refunds.append((target, weight))
        with self._dispatch_lock:
            for weight, n in queued.items():
                self._pending[weight] += n
            for target, weight in refunds:
                policy.refund(self._credits, target, weight, 1)
        if not sent:
            self._dispatch_direct([item for item, status in zip(good, statuses, strict=True)
                                   if status == DISPATCHED],
                                  [t for t, status in zip(targets, statuses, strict=True)
                                   if status == DISPATCHED])
        conn.send(accepted=[item.token_id for item in good], rejected=rejected or None)
        if queued:
            self._kick.set()
        if duplicates:
            conn.expect(-len(duplicates))  # _watch counts them again
            self._watch(conn, duplicates)

    def _send_to_agent(self, name: str, batch: list[pb.TaskItem], *, split: bool = False,
                       ) -> None:
        """Hand a batch to the agent's link; ``split`` cuts a claimed batch (which may hold
        many large calls) into frame-sized pieces; a client's batch is one already."""
        conn = self.agents.get(name)
        chunks = framing.split(batch, count=len(batch)) if split else (batch,)
        for chunk in chunks:
            if conn is None or not conn.send_tasks(chunk):
                # The link closed between the credit and the send: these never left.
                self._requeue(name, [item.token_id for item in chunk], transit=True)

    def _watch(self, conn: ClientConn, ids: list[str]) -> None:
        """Push results of ids already final; the rest are pushed when they finish."""
        for token_id in ids:
            self.watchers[token_id] = conn
        conn.expect(len(ids))
        try:
            records = self.ledger.token_records(ids)
        except RedisUnavailable as exc:
            logger.error("cannot look up watched tokens: %s", exc)
            return
        results, unknown = [], []
        for token_id, record in zip(ids, records, strict=True):
            if not record:
                unknown.append(token_id)
                self.watchers.pop(token_id, None)
                continue
            result = result_from_record(token_id, record)
            if result is not None and self.watchers.pop(token_id, None) is not None:
                results.append(result)
        if results or unknown:
            conn.send(results=results, rejected=[
                rejection(i, UnknownToken(f"no token {i} (never submitted, or expired)"))
                for i in unknown] or None)

    def drop_session(self, conn: ClientConn) -> None:
        """A client went away: its tokens stay in Redis; it re-watches them on reconnect."""
        self.sessions.pop(conn.id, None)
        for token_id, session in list(self.watchers.items()):
            if session is conn:
                self.watchers.pop(token_id, None)

    # -- agent results -------------------------------------------------------------------

    def on_agent_frame(self, conn: AgentConn, frame: pb.AgentFrame) -> None:
        conn.touch()
        self.stats["agent_frames"] += 1
        self.stats["agent_results"] += len(frame.results)
        # Results go to their clients before anything else here: they are what someone
        # waits for; credits, snapshots and the Redis write can follow.
        undelivered = self._push(frame.results) if frame.results else []
        if frame.credits:
            with self._dispatch_lock:
                book = self._credits.get(conn.name)
                if book is not None:
                    for credit in frame.credits:
                        book[credit.weight] = book.get(credit.weight, 0) + credit.count
                waiting = any(count > 0 for count in self._pending.values())
            if waiting:  # else nothing to dispatch; the loop's periodic sync covers drift
                self._kick.set()
        if frame.snapshot:
            conn.snapshot = bytes(frame.snapshot)
        if frame.leaving and not conn.leaving:
            conn.leaving = True
            logger.info("agent %s is stopping: no more dispatch to it", conn.name)
        if frame.results:
            self._complete(conn, frame.results, frame.seq, undelivered)

    def _complete(self, conn: AgentConn, results: Sequence[pb.ResultItem], seq: int,
                  undelivered: list[pb.ResultItem]) -> None:
        """Store results already pushed to their clients, then ack the agent.

        Pushing first saves a Redis round trip on every result's way back; it is safe
        because the agent keeps (and after a reconnect resends) each frame until its ack,
        which is sent only once Redis holds the results.
        """
        self._remember(results[-RECENT:])
        rows = [(r.token_id, STATE_NAMES.get(r.state, "failed"), r.SerializeToString())
                for r in results]
        self.ledger.complete(rows)  # RedisUnavailable: the link drops, the agent resends
        conn.send_ack(seq)
        if undelivered:
            # A session may have asked for one of these between the push and the write (a
            # client reconnecting): it either registered in time for this second look, or its
            # own lookup already sees the stored result.
            self._push(undelivered)

    def _remember(self, results: Sequence[pb.ResultItem]) -> None:
        """Feed the executions list; a large result is kept without its payload."""
        for result in results:
            if len(result.payload) > RECENT_PAYLOAD_LIMIT or len(result.traceback) > 4096:
                brief = pb.ResultItem()
                brief.CopyFrom(result)
                brief.ClearField("payload")
                brief.ClearField("traceback")
                result = brief
            self.recent.append(result)

    def _push(self, results: Iterable[pb.ResultItem]) -> list[pb.ResultItem]:
        """Send each result to the session owed it; return those no session took."""
        sessions: dict[ClientConn, list[pb.ResultItem]] = {}
        watchers, by_id = self.watchers, self.sessions
        undelivered = []
        for result in results:
            session = watchers.pop(result.token_id, None) if watchers else None
            if session is None:
                session = by_id.get(result.session)
            if session is not None:
                sessions.setdefault(session, []).append(result)
            else:
                undelivered.append(result)
        for session, batch in sessions.items():
            session.send(results=batch)  # from one agent frame: frame-sized already
        return undelivered

    # -- dispatcher thread ---------------------------------------------------------------

    def dispatch_loop(self) -> None:
        last_sync = 0.0
        while not self._stopping.is_set():
            self._kick.wait(timeout=1.0)
            self._kick.clear()
            try:
                if time.monotonic() - last_sync > 1.0:
                    self._sync_pending()
                    last_sync = time.monotonic()
                while self._dispatch_round():
                    pass
            except RedisUnavailable as exc:
                logger.error("dispatch paused: %s", exc)
                self._stopping.wait(0.5)
            except TokenGateError:
                logger.exception("dispatch round failed")

    def _sync_pending(self) -> None:
        lengths = self.ledger.queue_lengths(policy.WEIGHTS)
        with self._dispatch_lock:
            self._pending.update(lengths)

    def _dispatch_round(self) -> bool:
        progress = False
        for weight in policy.WEIGHTS:
            with self._dispatch_lock:
                want = min(self._pending[weight], self.config.dispatch_batch)
                if want <= 0:
                    continue
                ready = policy.ready(want, weight, self._credits, self._eligible(),
                                     {n: c.grant for n, c in self.agents.items()})
                plan = policy.split(want, weight, self._credits, ready)
                self._pending[weight] -= sum(plan.values())
            for name, count in plan.items():
                claimed = self.ledger.claim(weight, count, name)
                self.stats["claims"] += 1
                self.stats["claimed"] += len(claimed)
                if len(claimed) < count:
                    with self._dispatch_lock:
                        policy.refund(self._credits, name, weight, count - len(claimed))
                    self._sync_pending()
                if claimed:
                    progress = True
                    self._send_to_agent(name, [_item(blob, attempt)
                                               for _, attempt, blob in claimed], split=True)
        return progress

    def _owners(self, ids: list[str]) -> dict[str, str]:
        """The session owed each token's result (gateway-made results only: loss, kill)."""
        records = self.ledger.token_records(ids)
        return {token_id: record.get(keys.F_SESSION, b"").decode()
                for token_id, record in zip(ids, records, strict=True)}

    def _requeue(self, agent: str, ids: list[str] | None, *, transit: bool = False,
                 message: str = "") -> None:
        message = message or f"agent {agent} was lost while holding the token"
        failed, requeued = self.ledger.requeue(agent, self.config.max_attempts, message, ids,
                                               transit=transit)
        with self._dispatch_lock:
            for weight, n in requeued.items():
                self._pending[weight] = self._pending.get(weight, 0) + n
        if failed:
            owners = self._owners([token_id for token_id, _ in failed])
            self._push(pb.ResultItem(token_id=i, state=pb.FAILED, error_type="AgentLost",
                                     error_message=message, attempt=a, session=owners[i])
                       for i, a in failed)
            logger.warning("%d tokens of agent %s failed with AgentLost", len(failed), agent)
        if requeued:
            logger.info("requeued %s tokens of agent %s", dict(requeued), agent)
            self._kick.set()


def _item(blob: bytes, attempt: int) -> pb.TaskItem:
    item = pb.TaskItem.FromString(blob)
    item.attempt = attempt
    return item
