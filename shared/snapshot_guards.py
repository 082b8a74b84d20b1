"""The guards' panels of the agent's status snapshot that readers read, typed.

Part of the schema of :mod:`tokengate.shared.snapshot` (its docstring states the reading
rules): the Guard House (its policy and a record per function, which the gateway sums into
the cluster's Guard House), the quarantine's newest calls and the recent executions. The
guards' other panels stay open maps (``AgentSnapshot.panels``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tokengate.shared.wire_fields import Extra, Fields, schema_keys


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodRecord:
    """One function's reputation in this agent's Guard House (``failure_rate`` in percent,
    ``mean_time`` in seconds, ``health`` one of excellent/good/fair/poor/unknown)."""

    attempts: int = 0
    successes: int = 0
    failures: int = 0
    retries: int = 0
    failure_rate: float = 0.0
    mean_time: float = 0.0
    health: str = ""
    blocked: bool = False
    over_threshold: bool = False

    @classmethod
    def read(cls, f: Fields) -> MethodRecord:
        return cls(attempts=f.integer("attempts"), successes=f.integer("successes"),
                   failures=f.integer("failures"), retries=f.integer("retries"),
                   failure_rate=f.number("failure_rate"), mean_time=f.number("mean_time"),
                   health=f.text("health"), blocked=f.flag("blocked"),
                   over_threshold=f.flag("over_threshold"))

    def to_wire(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "successes": self.successes,
                "failures": self.failures, "retries": self.retries,
                "failure_rate": self.failure_rate, "mean_time": self.mean_time,
                "health": self.health, "blocked": self.blocked,
                "over_threshold": self.over_threshold}


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardHouseStatus:
    """The agent's Guard House: its policy (``failure_threshold`` a rate 0..1; None: not
    said, each reader has its own default), what it blocks, and a record per function."""

    mode: str = "passive"
    auto_block: bool = False
    enforced_by: str = ""
    failure_threshold: float | None = None
    min_attempts: int | None = None
    methods_tracked: int = 0
    executions: int = 0
    blocked: tuple[str, ...] = ()
    refusals: int = 0
    methods: Mapping[str, MethodRecord] = field(default_factory=dict)
    extra: Extra = field(default_factory=dict)

    @classmethod
    def read(cls, f: Fields) -> GuardHouseStatus:
        return cls(mode=f.text("mode", "passive"), auto_block=f.flag("auto_block"),
                   enforced_by=f.text("enforced_by"),
                   failure_threshold=f.opt_number("failure_threshold"),
                   min_attempts=f.opt_integer("min_attempts"),
                   methods_tracked=f.integer("methods_tracked"),
                   executions=f.integer("executions"), blocked=f.texts("blocked"),
                   refusals=f.integer("refusals"),
                   methods={name: MethodRecord.read(m) for name, m in f.named("methods")},
                   extra=f.rest(_HOUSE_KEYS))

    def to_wire(self) -> dict[str, Any]:
        return {"mode": self.mode, "auto_block": self.auto_block,
                "enforced_by": self.enforced_by, "failure_threshold": self.failure_threshold,
                "min_attempts": self.min_attempts, "methods_tracked": self.methods_tracked,
                "executions": self.executions, "blocked": list(self.blocked),
                "refusals": self.refusals,
                "methods": {name: m.to_wire() for name, m in self.methods.items()},
                **self.extra}


_HOUSE_KEYS = schema_keys(GuardHouseStatus)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantinedCall:
    """One quarantined call: where to find it, why (``deviation_percent`` above its
    function's mean), a summary of its arguments' shapes, when, whether it can be replayed."""

    id: str = ""
    task: str = ""
    operation_type: str = ""
    deviation_percent: float = 0.0
    reason: str = ""
    args_summary: str = ""
    timestamp: float = 0.0
    replayable: bool = False

    @classmethod
    def read(cls, f: Fields) -> QuarantinedCall:
        # an older agent sent the summary as a list of strings
        summary = (", ".join(f.texts("args_summary")) if f.is_list("args_summary")
                   else f.text("args_summary"))
        return cls(id=f.text("id"), task=f.text("task"), operation_type=f.text("operation_type"),
                   deviation_percent=f.number("deviation_percent"), reason=f.text("reason"),
                   args_summary=summary, timestamp=f.number("timestamp"),
                   replayable=f.flag("replayable"))

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "operation_type": self.operation_type,
                "deviation_percent": self.deviation_percent, "replayable": self.replayable,
                "reason": self.reason, "timestamp": self.timestamp,
                "args_summary": self.args_summary}


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantinePanel:
    """Spike detection: on or off (None: not said), the newest quarantined calls, and
    open-ended figures (its directory, counts, the detector's per-function history)."""

    enabled: bool | None = None
    recent: tuple[QuarantinedCall, ...] = ()
    extra: Extra = field(default_factory=dict)

    @classmethod
    def read(cls, f: Fields) -> QuarantinePanel:
        return cls(enabled=f.opt_flag("enabled"),
                   recent=tuple(QuarantinedCall.read(r) for r in f.records("recent")),
                   extra=f.rest(frozenset({"enabled", "recent"})))

    def to_wire(self) -> dict[str, Any]:
        return {"enabled": self.enabled, **self.extra,
                "recent": [call.to_wire() for call in self.recent]}


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One finished attempt in the agent's execution history (``ExecutionRecord``)."""

    token_id: str = ""
    operation_type: str = ""
    success: bool = False
    execution_time: float = 0.0
    core_id: int | None = None
    worker_id: str | None = None
    complexity_score: float = 0.0
    attempt: int = 1
    error_type: str = ""
    finished_at: float = 0.0

    @classmethod
    def read(cls, f: Fields) -> Execution:
        return cls(token_id=f.text("token_id"), operation_type=f.text("operation_type"),
                   success=f.flag("success"), execution_time=f.number("execution_time"),
                   core_id=f.opt_integer("core_id"), worker_id=f.opt_text("worker_id"),
                   complexity_score=f.number("complexity_score"),
                   attempt=f.integer("attempt", 1), error_type=f.text("error_type"),
                   finished_at=f.number("finished_at"))

    def to_wire(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "operation_type": self.operation_type,
                "success": self.success, "execution_time": self.execution_time,
                "core_id": self.core_id, "worker_id": self.worker_id,
                "complexity_score": self.complexity_score, "attempt": self.attempt,
                "error_type": self.error_type, "finished_at": self.finished_at}
