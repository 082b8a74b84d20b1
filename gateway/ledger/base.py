"""The ledger's contract: every durable fact of the cluster, behind one interface.

:class:`~tokengate.gateway.ledger.redis_ledger.RedisLedger` keeps them in Redis (one Lua
script call per batch), and is the one implementation: the token state machine lives in its
scripts alone, which move tokens only along :mod:`.transitions`' table and check each move
against it. Backend errors surface as :class:`~tokengate.shared.errors.RedisUnavailable`
(Redis cannot serve now) or :class:`~tokengate.shared.errors.LedgerError` (it refused)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
from tokengate.shared.tags import Weight


@dataclass(frozen=True, slots=True)
class DrainState:
    cluster: str | None = None   # the cluster's drain reason, None when it runs
    since: float = 0.0
    nodes: dict[str, str] = field(default_factory=dict)  # node -> reason

    def drained(self, node: str, reason: str, now: float) -> DrainState:
        """This state with ``node`` (or the cluster, when ``node`` is empty) drained."""
        if node:
            return DrainState(self.cluster, self.since, {**self.nodes, node: reason})
        return DrainState(reason, now, self.nodes)

    def resumed(self, node: str) -> DrainState:
        """This state with ``node`` (or the cluster, when ``node`` is empty) running again."""
        if node:
            return DrainState(self.cluster, self.since,
                              {k: v for k, v in self.nodes.items() if k != node})
        return DrainState(None, 0.0, self.nodes)


@dataclass(frozen=True, slots=True)
class LossPolicy:
    """How tokens of a lost agent are given back."""

    max_attempts: int
    message: str
    ttl: int


class TokenLedger(Protocol):
    """What the gateway needs of its store. Batches in, typed rows out."""

    prefix: str
    trouble_at: float  # wall time the store last failed or stalled a call (0: never)
    epoch: str  # the shard's fencing epoch this gateway holds (set by ``lease``)
    on_fenced: Callable[[str], None] | None  # told when a write was refused: not ours now
    on_no_epoch: Callable[[], None] | None  # told when the store lost the epoch (renew now)

    def ping(self) -> bool: ...

    def confirm_writes(self) -> None:
        """Return once the writes this thread made are safe from a failover (as many
        replicas as configured hold them); RedisUnavailable if they are not. Called by the
        write lane after each batch, before anyone is told of its outcome."""

    # -- the gateway's lease ------------------------------------------------------------
    def lease(self, mode: str, record: bytes, ttl: float,
              replaces: bytes = b"") -> tuple[bool, bytes]: ...

    # -- hot path -------------------------------------------------------------------------
    def submit(self, tokens: Sequence[NewToken]) -> list[SubmitStatus]: ...
    def submit_begin(self, tokens: Sequence[NewToken], forget: Sequence[str] = (),
                     ) -> Callable[[], list[SubmitStatus]]: ...
    def claim(self, queue: Weight | str, count: int, agent: str, budget: int,
              ) -> list[Claimed]: ...
    def start(self, agent: str, reports: Sequence[StartReport]) -> int: ...
    def complete(self, agent: str, outcomes: Sequence[Outcome]) -> list[Applied]: ...
    # Pipelined forms: send now, behind what this thread sent before; read with the function
    # returned, in the order they were sent (the gateway's write lane batches with these).
    def claim_begin(self, queue: Weight | str, count: int, agent: str, budget: int,
                    ) -> Callable[[], list[Claimed]]: ...
    def start_begin(self, agent: str, reports: Sequence[StartReport]) -> Callable[[], int]: ...
    def complete_begin(self, agent: str, outcomes: Sequence[Outcome],
                       ) -> Callable[[], list[Applied]]: ...
    def give_back(self, agent: str, ids: Sequence[str], policy: LossPolicy,
                  returned: bool = False) -> Requeued: ...
    def lose(self, agent: str, policy: LossPolicy) -> Requeued: ...
    def join(self, agent: str, incarnation: str, held: Sequence[str], record: dict[str, Any],
             rules: Sequence[TaskRule], policy: LossPolicy) -> Adoption: ...
    def kill(self, token_id: str, message: str) -> tuple[KillOutcome, str]: ...
    def forget(self, ids: Sequence[str], owner: str) -> int: ...
    def expire(self, queue: Weight | str, cutoff: float, message: str,
               limit: int = ...) -> list[LostToken]: ...

    # -- reads ----------------------------------------------------------------------------
    def records(self, ids: Sequence[str]) -> list[TokenRecord | None]: ...
    def queue_lengths(self) -> dict[Weight, int]: ...
    def queues(self) -> dict[str, int]: ...
    def inflight_ids(self, agent: str) -> set[str]: ...
    def inflight_counts(self, agents: Sequence[str]) -> dict[str, int]: ...
    def counts(self) -> dict[str, int]: ...
    def executing_counts(self, agents: Sequence[str]) -> tuple[int, dict[str, int]]:
        """The cluster's executing total and each agent's, read at one instant."""
    def memory_bytes(self) -> int: ...

    # -- agents, tasks, drain, audit ------------------------------------------------------
    def agents(self) -> dict[str, dict[str, Any]]: ...
    def touch_agents(self, seen: dict[str, float]) -> None: ...
    def last_seen(self) -> dict[str, float]: ...
    def task_rules(self) -> dict[str, bool]: ...
    def set_drain(self, node: str, reason: str) -> None: ...
    def clear_drain(self, node: str) -> None: ...
    def drain_state(self) -> DrainState: ...
    def audit(self, entry: AuditEntry) -> None: ...
    def audit_log(self, limit: int) -> list[AuditEntry]: ...


AUDIT_KEEP = 1000  # audit entries kept, newest first
EXPIRE_BATCH = 1000  # waiting tokens one expire call looks at
