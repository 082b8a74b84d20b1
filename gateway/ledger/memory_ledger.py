"""The ledger in dicts, with RedisLedger's exact contract, for unit tests of the gateway.

It keeps token hashes under :class:`.schema.Field`'s names, one field each (the Lua scripts
fold weight, session and task into ``ROUTE`` and leave default attempt and idempotent flags
unwritten; :meth:`TokenRecord.parse` reads both layouts), and moves them along the same table
(:mod:`.transitions`) as the Lua scripts; the parametrized ledger tests
run against both. One lock, ``_lock``, guards every field (it stands in for Redis's single
thread). Results do not expire; the lease is honoured but never lapses by itself.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from tokengate.gateway.ledger import schema
from tokengate.gateway.ledger.base import AUDIT_KEEP, EXPIRE_BATCH, DrainState, LossPolicy
from tokengate.gateway.ledger.rows import (
    Adoption,
    Applied,
    AuditEntry,
    Claimed,
    KillOutcome,
    LostToken,
    NewToken,
    Outcome,
    Requeued,
    StartReport,
    SubmitStatus,
    TaskRule,
    TokenRecord,
)
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import Weight

F = schema.Field
_HELD = {s.value.encode() for s in schema.HELD_STATES}
_FINAL = {s.value.encode() for s in schema.FINAL_STATES}
S = {state: state.value.encode() for state in TokenState}


def _b(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


KEPT = "kept"  # give_back left a returned token that had started where it was


class MemoryLedger:
    """Token, queue, agent, drain and audit state in dicts."""

    def __init__(self, *, prefix: str = schema.DEFAULT_PREFIX, result_ttl: int = 600,
                 key_ttl: int = 86_400) -> None:
        self.prefix = prefix
        self.result_ttl = result_ttl  # dicts expire nothing: kept for the Redis twin's shape
        self.key_ttl = key_ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, dict[str, bytes]] = {}
        # Queue name -> ids (a bare weight's queue always exists; Weight members are their
        # names as keys: they are str).
        self._queues: dict[str, deque[str]] = {w.value: deque() for w in schema.WEIGHTS}
        self._inflight: dict[str, set[str]] = {}
        self._counts = dict.fromkeys(schema.COUNTERS, 0)
        self._executing: dict[str, int] = {}  # agent -> tokens it runs
        self._agents: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, float] = {}
        self._rules: dict[str, bool] = {}
        self._drain = DrainState()
        self._audit: deque[AuditEntry] = deque(maxlen=AUDIT_KEEP)
        self._lease: bytes | None = None
        self.trouble_at = 0.0  # dicts never fail or stall
        self.epoch = "1:memory"  # one process holds the dicts: nothing to fence
        self.on_fenced: Callable[[str], None] | None = None
        self.on_no_epoch: Callable[[], None] | None = None

    def ping(self) -> bool:
        return True

    def confirm_writes(self) -> None:
        """Dicts have no replicas: every write is as safe as it will be."""

    def lease(self, mode: str, record: bytes, ttl: float,
              replaces: bytes = b"") -> tuple[bool, bytes]:
        with self._lock:
            current = self._lease
            if mode == "release":
                if current == record:
                    self._lease = None
                return True, b""
            if current is not None and current != record and not (
                    mode == "takeover" and current == replaces):
                return False, current
            self._lease = record
            return True, b""

    # -- hot path -------------------------------------------------------------------------

    def submit(self, tokens: Sequence[NewToken]) -> list[SubmitStatus]:
        now = _b(time.time())
        out = []
        made: set[str] = set()
        with self._lock:
            for t in tokens:
                if t.token_id in self._tokens:
                    out.append(SubmitStatus.DUPLICATE if t.token_id in made else
                               self._replayed(self._tokens[t.token_id], t))
                    continue
                made.add(t.token_id)
                self._counts["submitted"] += 1
                record = {F.ATTEMPT: b"1", F.WEIGHT: _b(t.queue_name), F.TASK: _b(t.task),
                          F.IDEMPOTENT: b"1" if t.idempotent else b"0", F.ITEM: t.item,
                          F.OWNER: _b(t.owner), F.SESSION: _b(t.session), F.CREATED: now}
                if t.key:
                    record.update({F.KEY: _b(t.key), F.KEEP: _b(self.key_ttl)})
                self._tokens[t.token_id] = record
                if t.agent and t.agent in self._agents:
                    record.update({F.STATE: S[TokenState.ADMITTED], F.AGENT: _b(t.agent)})
                    self._inflight.setdefault(t.agent, set()).add(t.token_id)
                    out.append(SubmitStatus.DISPATCHED)
                else:
                    record[F.STATE] = S[TokenState.WAITING]
                    self._queue(t.queue_name).append(t.token_id)
                    out.append(SubmitStatus.QUEUED)
        return out

    @staticmethod
    def _replayed(record: dict[str, bytes], t: NewToken) -> SubmitStatus:
        """An existing id: what a first run of this same call answered (submit.lua); a keyed
        call whose key names another call is a conflict."""
        if t.key and record.get(F.KEY) != _b(t.key):
            return SubmitStatus.CONFLICT
        if record.get(F.SESSION) == _b(t.session):
            if record[F.STATE] == S[TokenState.WAITING]:
                return SubmitStatus.QUEUED
            if record[F.STATE] == S[TokenState.ADMITTED] and t.agent and \
                    record.get(F.AGENT) == _b(t.agent):
                return SubmitStatus.DISPATCHED
        return SubmitStatus.DUPLICATE

    def submit_begin(self, tokens: Sequence[NewToken], forget: Sequence[str] = (),
                     ) -> Callable[[], list[SubmitStatus]]:
        statuses = self.submit(tokens)
        if forget:
            self.forget(forget, tokens[0].owner if tokens else "")
        return lambda: statuses

    # The pipelined forms run at once (in the order they are called) and hand the value back.
    def claim_begin(self, queue: Weight | str, count: int, agent: str, budget: int,
                    ) -> Callable[[], list[Claimed]]:
        claimed = self.claim(queue, count, agent, budget)
        return lambda: claimed

    def start_begin(self, agent: str, reports: Sequence[StartReport]) -> Callable[[], int]:
        started = self.start(agent, reports)
        return lambda: started

    def complete_begin(self, agent: str, outcomes: Sequence[Outcome],
                       ) -> Callable[[], list[Applied]]:
        applied = self.complete(agent, outcomes)
        return lambda: applied

    def _queue(self, name: str) -> deque[str]:
        """The queue of this name, under ``_lock`` (made when first used)."""
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = deque()
        return queue

    def claim(self, queue: Weight | str, count: int, agent: str, budget: int,
              ) -> list[Claimed]:
        out: list[Claimed] = []
        size = 0
        with self._lock:
            if agent not in self._agents:
                return out
            queue = self._queue(queue)
            while queue and len(out) < count and size < budget:
                token_id = queue.popleft()
                record = self._tokens.get(token_id)
                if record is None or record[F.STATE] != S[TokenState.WAITING]:
                    continue
                record.update({F.STATE: S[TokenState.ADMITTED], F.AGENT: _b(agent)})
                self._inflight.setdefault(agent, set()).add(token_id)
                out.append(Claimed(token_id, int(record[F.ATTEMPT]), record[F.ITEM]))
                size += len(record[F.ITEM])
        return out

    def _held(self, token_id: str, agent: str, attempt: int | None = None,
              ) -> dict[str, bytes] | None:
        record = self._tokens.get(token_id)
        if record is None or record[F.STATE] not in _HELD or record.get(F.AGENT) != _b(agent):
            return None
        if attempt is not None and int(record[F.ATTEMPT]) != attempt:
            return None
        return record

    def start(self, agent: str, reports: Sequence[StartReport]) -> int:
        applied = 0
        with self._lock:
            for r in reports:
                record = self._held(r.token_id, agent, r.attempt)
                if record is not None and record[F.STATE] == S[TokenState.ADMITTED]:
                    record.update({F.STATE: S[TokenState.EXECUTING], F.STARTED_AT: _b(r.at)})
                    applied += 1
            self._executing[agent] = self._executing.get(agent, 0) + applied
        return applied

    def complete(self, agent: str, outcomes: Sequence[Outcome]) -> list[Applied]:
        out = []
        with self._lock:
            for o in outcomes:
                record = self._held(o.token_id, agent, o.attempt)
                if record is None:
                    out.append(self._stored_before(o, agent))
                    continue
                if record[F.STATE] == S[TokenState.EXECUTING]:
                    self._executing[agent] -= 1
                record.update({F.STATE: S[o.state], F.RESULT: o.result})
                if o.state is not TokenState.FAILED:
                    record.pop(F.ITEM, None)  # a failed call's arguments stay, for its detail
                self._inflight.get(agent, set()).discard(o.token_id)
                self._counts[o.state.value] += 1
                out.append(Applied(o.token_id, True, float(record[F.CREATED])))
        return out

    def _stored_before(self, o: Outcome, agent: str) -> Applied:
        """complete.lua's second case: this agent's report of this attempt, stored before."""
        record = self._tokens.get(o.token_id)
        if record is not None and record.get(F.AGENT) == _b(agent) \
                and int(record[F.ATTEMPT]) == o.attempt and record[F.STATE] == S[o.state]:
            return Applied(o.token_id, False, float(record[F.CREATED]), True)
        return Applied(o.token_id, False)

    def _give_back(self, token_id: str, agent: str, mode: str, policy: LossPolicy,
                   into: Requeued) -> str | None:
        """lib.lua's give_back, under ``_lock``: what it did (KEPT: a returned token that
        started stays where it is)."""
        record = self._held(token_id, agent)
        if record is None:
            return None
        if mode == "returned" and record[F.STATE] == S[TokenState.EXECUTING]:
            return KEPT
        if record[F.STATE] == S[TokenState.EXECUTING]:
            self._executing[agent] -= 1
        attempt = int(record[F.ATTEMPT])
        if mode == "lost":
            rule = self._rules.get(record[F.TASK].decode(), True)
            if record[F.IDEMPOTENT] == b"0" or not rule or attempt >= policy.max_attempts:
                record.update({F.STATE: S[TokenState.FAILED], F.ERROR_TYPE: b"AgentLost",
                               F.ERROR_MESSAGE: _b(policy.message),
                               F.FINISHED_AT: _b(time.time())})
                record.pop(F.AGENT, None)
                into.failed.append(LostToken(token_id, attempt, record[F.SESSION].decode()))
                return "failed"
            attempt += 1
        record.update({F.STATE: S[TokenState.WAITING], F.ATTEMPT: _b(attempt)})
        for name in (F.AGENT, F.STARTED_AT):
            record.pop(name, None)
        name = record[F.WEIGHT].decode()  # its queue
        self._queue(name).appendleft(token_id)
        into.requeued[name] = into.requeued.get(name, 0) + 1
        return "requeued"

    def _tally(self, result: Requeued) -> Requeued:
        self._counts["requeued"] += sum(result.requeued.values())
        self._counts["failed"] += len(result.failed)
        self._counts["lost"] += len(result.failed)
        return result

    def give_back(self, agent: str, ids: Sequence[str], policy: LossPolicy,
                  returned: bool = False) -> Requeued:
        result = Requeued()
        mode = "returned" if returned else "transit"
        with self._lock:
            held = self._inflight.setdefault(agent, set())
            for token_id in ids:
                if self._give_back(token_id, agent, mode, policy, result) is not KEPT:
                    held.discard(token_id)
            return self._tally(result)

    def lose(self, agent: str, policy: LossPolicy) -> Requeued:
        result = Requeued()
        with self._lock:
            for token_id in sorted(self._inflight.pop(agent, set())):
                self._give_back(token_id, agent, "lost", policy, result)
            self._agents.pop(agent, None)
            self._seen.pop(agent, None)
            return self._tally(result)

    def join(self, agent: str, incarnation: str, held: Sequence[str], record: dict[str, Any],
             rules: Sequence[TaskRule], policy: LossPolicy) -> Adoption:
        adoption = Adoption()
        with self._lock:
            previous = self._agents.get(agent)
            adoption.restarted = previous is not None and \
                previous.get("incarnation") != incarnation
            holding = self._inflight.setdefault(agent, set())
            keep = set(held)
            for token_id in sorted(holding):
                if adoption.restarted or token_id not in keep:
                    mode = "lost" if adoption.restarted else "transit"
                    self._give_back(token_id, agent, mode, policy, adoption.requeue)
                    holding.discard(token_id)
            adoption.revoked = [token_id for token_id in dict.fromkeys(held)
                                if adoption.restarted or self._held(token_id, agent) is None]
            self._agents[agent] = {**record, "incarnation": incarnation}
            self._seen[agent] = time.time()
            self._rules.update({rule.name: rule.idempotent for rule in rules})
            self._tally(adoption.requeue)
        return adoption

    def kill(self, token_id: str, message: str) -> tuple[KillOutcome, str]:
        with self._lock:
            record = self._tokens.get(token_id)
            if record is None:
                return KillOutcome.UNKNOWN, ""
            if record[F.STATE] == S[TokenState.WAITING]:
                record.update({F.STATE: S[TokenState.KILLED], F.ERROR_TYPE: b"TokenKilled",
                               F.ERROR_MESSAGE: _b(message), F.FINISHED_AT: _b(time.time())})
                record.pop(F.ITEM, None)
                self._queue(record[F.WEIGHT].decode()).remove(token_id)
                self._counts["killed"] += 1
                return KillOutcome.KILLED, ""
            if record[F.STATE] in _HELD:
                return KillOutcome.FORWARDED, record.get(F.AGENT, b"").decode()
            return KillOutcome.FINISHED, ""

    def expire(self, queue: Weight | str, cutoff: float, message: str,
               limit: int = EXPIRE_BATCH) -> list[LostToken]:
        out: list[LostToken] = []
        with self._lock:
            waiting = self._queue(queue)
            looked = [waiting.popleft() for _ in range(min(limit, len(waiting)))]
            keep = []
            for token_id in looked:
                record = self._tokens.get(token_id)
                if record is None or record[F.STATE] != S[TokenState.WAITING]:
                    continue
                if float(record[F.CREATED]) > cutoff:
                    keep.append(token_id)
                    continue
                record.update({F.STATE: S[TokenState.FAILED],
                               F.ERROR_TYPE: b"PlacementTimeout", F.ERROR_MESSAGE: _b(message),
                               F.FINISHED_AT: _b(time.time())})
                out.append(LostToken(token_id, int(record[F.ATTEMPT]),
                                     record[F.SESSION].decode()))
            waiting.extendleft(reversed(keep))
            self._counts["failed"] += len(out)
        return out

    def forget(self, ids: Sequence[str], owner: str) -> int:
        deleted = 0
        with self._lock:
            for token_id in ids:
                record = self._tokens.get(token_id)
                if record is not None and record[F.STATE] in _FINAL \
                        and record.get(F.OWNER) == _b(owner) and F.KEY not in record:
                    del self._tokens[token_id]
                    deleted += 1
        return deleted

    # -- reads ----------------------------------------------------------------------------

    def records(self, ids: Sequence[str]) -> list[TokenRecord | None]:
        with self._lock:
            return [TokenRecord.parse(i, dict(self._tokens.get(i, {}))) for i in ids]

    def queues(self) -> dict[str, int]:
        with self._lock:
            return {name: len(q) for name, q in self._queues.items()
                    if q or name in schema.WEIGHTS}

    def queue_lengths(self) -> dict[Weight, int]:
        return schema.per_weight(self.queues())

    def inflight_ids(self, agent: str) -> set[str]:
        with self._lock:
            return set(self._inflight.get(agent, ()))

    def inflight_counts(self, agents: Sequence[str]) -> dict[str, int]:
        with self._lock:
            return {a: len(self._inflight.get(a, ())) for a in agents}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def executing_counts(self, agents: Sequence[str]) -> tuple[int, dict[str, int]]:
        with self._lock:
            return (sum(self._executing.values()),
                    {a: self._executing.get(a, 0) for a in agents})

    def memory_bytes(self) -> int:
        return 0

    # -- agents, tasks, drain, audit --------------------------------------------------------

    def agents(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._agents.items()}

    def touch_agents(self, seen: dict[str, float]) -> None:
        with self._lock:
            self._seen.update({k: v for k, v in seen.items() if k in self._seen})

    def last_seen(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seen)

    def task_rules(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._rules)

    def set_drain(self, node: str, reason: str) -> None:
        with self._lock:
            self._drain = self._drain.drained(node, reason, time.time())

    def clear_drain(self, node: str) -> None:
        with self._lock:
            self._drain = self._drain.resumed(node)

    def drain_state(self) -> DrainState:
        with self._lock:
            return self._drain

    def audit(self, entry: AuditEntry) -> None:
        with self._lock:
            self._audit.appendleft(entry)

    def audit_log(self, limit: int) -> list[AuditEntry]:
        with self._lock:
            return list(reversed(list(self._audit)[:limit]))
