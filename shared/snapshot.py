"""The agent's status snapshot: the schema of ``NodeStatus.snapshot`` and ``Hello.topology``.

An agent sends its status about once a second as msgpack bytes (``AgentFrame.snapshot``);
the gateway keeps the newest valid one per agent and passes it on in ``NodeStatus.snapshot``
(status replies), from which ``tokengate status``, ``tokengate top`` and the dashboard draw
their node panels; the gateway's cluster Guard House and its Guards reply read it too. The
agent's hello carries the part that does not change (:class:`NodeShape`) in
``Hello.topology``. This module is the contract for both: producer and readers build and read
these frozen dataclasses, and only :meth:`AgentSnapshot.to_wire` / :meth:`AgentSnapshot.from_wire`
(and :class:`NodeShape`'s) touch the map.

On the wire it stays the map agents have always sent (field names below are its keys, the
shape flattened into the top level). Reading follows :mod:`.wire_fields`: a missing or nil
field takes its default (an agent of an older version is read), keys the schema does not name
are kept (``extra``/``panels``) and written back unchanged, a field of the wrong type raises
:class:`~tokengate.shared.errors.SnapshotError` naming it. The gateway logs that error and
keeps the agent's previous snapshot.

The guards' panels are typed where a reader reads them (the Guard House, the quarantine's
newest records, the recent executions); the rest of them (history, overflow, convergence,
retry policies, the functions' complexity, metrics) is open-ended display data that only
``build_status`` passes through, so it stays a map: :attr:`AgentSnapshot.panels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import msgpack
from tokengate.shared.errors import SnapshotError
from tokengate.shared.wire_fields import Fields, optional

Extra = Mapping[str, Any]


def _known(cls: Any) -> frozenset[str]:
    """The wire keys a schema class names (its fields but the ones keeping the rest)."""
    return frozenset(f.name for f in fields(cls) if f.name not in ("extra", "panels"))


# -- the host and the agent's shape (the hello's ``topology``) -------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HostTopology:
    """The host's CPUs as the agent sees them (``Topology.describe()``). None: not reported."""

    physical_cores: int | None = None
    logical_cores: int | None = None
    smt_enabled: bool | None = None
    smt_ratio: float | None = None
    allowed_cpus: tuple[int, ...] = ()
    quota_cores: float | None = None  # the cgroup CPU quota, None if unlimited
    usable_cores: int | None = None
    recommended_workers: Mapping[str, int] = field(default_factory=dict)
    extra: Extra = field(default_factory=dict)

    @classmethod
    def read(cls, f: Fields) -> HostTopology:
        return cls(physical_cores=f.opt_integer("physical_cores"),
                   logical_cores=f.opt_integer("logical_cores"),
                   smt_enabled=f.opt_flag("smt_enabled"), smt_ratio=f.opt_number("smt_ratio"),
                   allowed_cpus=f.integers("allowed_cpus"),
                   quota_cores=f.opt_number("quota_cores"),
                   usable_cores=f.opt_integer("usable_cores"),
                   recommended_workers=f.integer_table("recommended_workers"),
                   extra=f.rest(_HOST_KEYS))

    @classmethod
    def from_wire(cls, data: object) -> HostTopology:
        return cls.read(Fields(data, "topology"))

    def to_wire(self) -> dict[str, Any]:
        return {"physical_cores": self.physical_cores, "logical_cores": self.logical_cores,
                "smt_enabled": self.smt_enabled, "smt_ratio": self.smt_ratio,
                "allowed_cpus": list(self.allowed_cpus), "quota_cores": self.quota_cores,
                "usable_cores": self.usable_cores,
                "recommended_workers": dict(self.recommended_workers), **self.extra}


_HOST_KEYS = _known(HostTopology)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeShape:
    """What an agent is made of, fixed while it runs: its host, its worker threads and
    mailboxes, and which cores each weight class may use (weight -> 1-based cores).
    The hello carries it alone; every snapshot carries it too (flattened). None: not said."""

    topology: HostTopology = HostTopology()
    workers: int | None = None
    workers_per_core: int | None = None
    mailbox_capacity: int | None = None
    policy: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def read(cls, f: Fields) -> NodeShape:
        return cls(topology=HostTopology.read(f.sub("topology")),
                   workers=f.opt_integer("workers"),
                   workers_per_core=f.opt_integer("workers_per_core"),
                   mailbox_capacity=f.opt_integer("mailbox_capacity"),
                   policy=f.integers_table("policy"))

    @classmethod
    def from_wire(cls, data: object) -> NodeShape:
        """A decoded map (the hello's, or a whole snapshot's) as its shape."""
        return cls.read(Fields(data, "topology"))

    def to_wire(self) -> dict[str, Any]:
        return {"topology": self.topology.to_wire(), "workers": self.workers,
                "workers_per_core": self.workers_per_core,
                "mailbox_capacity": self.mailbox_capacity,
                "policy": {weight: list(cores) for weight, cores in self.policy.items()}}


# -- the scheduler's figures ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenCounts:
    """The local scheduler's tokens: outcomes since it started, and what it holds now
    (``waiting`` includes ``held``, those a drain holds, and ``backlog``)."""

    submitted: int = 0
    completed: int = 0
    failed: int = 0
    killed: int = 0
    retried: int = 0
    reclaimed: int = 0
    executing: int = 0
    waiting: int = 0
    held: int = 0
    backlog: int = 0
    extra: Extra = field(default_factory=dict)

    @classmethod
    def read(cls, f: Fields) -> TokenCounts:
        return cls(submitted=f.integer("submitted"), completed=f.integer("completed"),
                   failed=f.integer("failed"), killed=f.integer("killed"),
                   retried=f.integer("retried"), reclaimed=f.integer("reclaimed"),
                   executing=f.integer("executing"), waiting=f.integer("waiting"),
                   held=f.integer("held"), backlog=f.integer("backlog"),
                   extra=f.rest(_COUNT_KEYS))

    @classmethod
    def from_wire(cls, data: object) -> TokenCounts:
        return cls.read(Fields(data, "tokens"))

    def to_wire(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in _COUNT_KEYS}, **self.extra}


_COUNT_KEYS = _known(TokenCounts)


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreStatus:
    """One core: its CPU, how many of its mailboxes take work (None: not said), and per
    mailbox (lists in mailbox order) the queue depth, busy workers, workers abandoned to a
    call past its time limit (``stuck``) or running past ``stuck_after`` (``blocked``), and
    the deepest queue seen; ``routed`` counts tokens routed here per weight class."""

    core: int = 0
    cpu: int | None = None
    active_mailboxes: int | None = None
    depths: tuple[int, ...] = ()
    busy: tuple[int, ...] = ()
    stuck: tuple[int, ...] = ()
    blocked: tuple[int, ...] = ()
    peak_depths: tuple[int, ...] = ()
    routed: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, f: Fields) -> CoreStatus:
        return cls(core=f.integer("core"), cpu=f.opt_integer("cpu"),
                   active_mailboxes=f.opt_integer("active_mailboxes"),
                   depths=f.integers("depths"), busy=f.integers("busy"),
                   stuck=f.integers("stuck"), blocked=f.integers("blocked"),
                   peak_depths=f.integers("peak_depths"), routed=f.integer_table("routed"))

    def to_wire(self) -> dict[str, Any]:
        return {"core": self.core, "cpu": self.cpu, "active_mailboxes": self.active_mailboxes,
                "depths": list(self.depths), "busy": list(self.busy), "stuck": list(self.stuck),
                "blocked": list(self.blocked), "peak_depths": list(self.peak_depths),
                "routed": dict(self.routed)}


@dataclass(frozen=True, slots=True, kw_only=True)
class TierLoad:
    """One storage-speed tier's throttle: its cap, the calls in it now, the most at once."""

    cap: int = 0
    active: int = 0
    peak: int = 0

    @classmethod
    def read(cls, f: Fields) -> TierLoad:
        return cls(cap=f.integer("cap"), active=f.integer("active"), peak=f.integer("peak"))

    def to_wire(self) -> dict[str, Any]:
        return {"cap": self.cap, "active": self.active, "peak": self.peak}


# -- the agent process (added by the agent, not the scheduler) ---------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessLoad:
    """The agent process: its CPU percent and resident memory, threads, when measured."""

    pid: int = 0
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    threads: int | None = None
    time: float = 0.0

    @classmethod
    def read(cls, f: Fields) -> ProcessLoad:
        return cls(pid=f.integer("pid"), cpu_percent=f.opt_number("cpu_percent"),
                   rss_bytes=f.opt_integer("rss_bytes"), threads=f.opt_integer("threads"),
                   time=f.number("time"))

    def to_wire(self) -> dict[str, Any]:
        return {"pid": self.pid, "cpu_percent": self.cpu_percent, "rss_bytes": self.rss_bytes,
                "threads": self.threads, "time": self.time}


@dataclass(frozen=True, slots=True, kw_only=True)
class NestedCounts:
    """Tasks that tasks submitted, run on this agent outside the ledger: since it started,
    and ``active``, those not final yet."""

    submitted: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0
    killed: int = 0

    @classmethod
    def read(cls, f: Fields) -> NestedCounts:
        return cls(submitted=f.integer("submitted"), active=f.integer("active"),
                   completed=f.integer("completed"), failed=f.integer("failed"),
                   killed=f.integer("killed"))

    def to_wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _NESTED_KEYS}


_NESTED_KEYS = _known(NestedCounts)


# -- the guards' panels that readers read ------------------------------------------------------


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


_HOUSE_KEYS = _known(GuardHouseStatus)


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


# -- the whole snapshot ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSnapshot:
    """One agent's status: the scheduler's state and figures, the agent process's, and the
    guards' panels. ``state`` is the scheduler's (new/running/draining/drained/stopped);
    ``stuck`` and ``blocked`` total the cores' lists; ``uptime`` in seconds. A part that is
    None was not sent (an embedded scheduler has no process or nested part; no guards, no
    guard panels)."""

    node: str | None = None
    state: str = ""
    drain_reason: str = ""
    uptime: float = 0.0
    shape: NodeShape = NodeShape()
    stuck: int = 0
    blocked: int = 0
    tokens: TokenCounts = TokenCounts()
    cores: tuple[CoreStatus, ...] = ()
    storage: Mapping[str, TierLoad] = field(default_factory=dict)
    nested: NestedCounts | None = None
    process: ProcessLoad | None = None
    guard_house: GuardHouseStatus | None = None
    quarantine: QuarantinePanel | None = None
    recent_executions: tuple[Execution, ...] | None = None
    panels: Extra = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: object) -> AgentSnapshot:
        """A decoded snapshot map; raises :class:`SnapshotError` if a field has a wrong type."""
        f = Fields(data)
        return cls(
            node=f.opt_text("node"), state=f.text("state"),
            drain_reason=f.text("drain_reason"), uptime=f.number("uptime"),
            shape=NodeShape.read(f), stuck=f.integer("stuck"), blocked=f.integer("blocked"),
            tokens=TokenCounts.read(f.sub("tokens")),
            cores=tuple(CoreStatus.read(c) for c in f.records("cores")),
            storage={tier: TierLoad.read(t) for tier, t in f.named("storage")},
            nested=optional(f, "nested", NestedCounts.read),
            process=optional(f, "process", ProcessLoad.read),
            guard_house=optional(f, "guard_house", GuardHouseStatus.read),
            quarantine=optional(f, "quarantine", QuarantinePanel.read),
            recent_executions=_executions(f), panels=f.rest(_SNAPSHOT_KEYS))

    @classmethod
    def decode(cls, blob: bytes) -> AgentSnapshot:
        """The bytes of ``NodeStatus.snapshot`` (empty: nothing sent yet, every default)."""
        if not blob:
            return cls()
        try:
            data = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException) as exc:
            raise SnapshotError(f"snapshot: not msgpack ({exc})") from None
        return cls.from_wire(data)

    def to_wire(self) -> dict[str, Any]:
        """The map agents send (keys as ever; the guards' open panels merged in)."""
        shape = self.shape.to_wire()
        wire: dict[str, Any] = {
            "node": self.node, "state": self.state, "drain_reason": self.drain_reason,
            "uptime": self.uptime, "topology": shape.pop("topology"), "workers":
            shape.pop("workers"), "stuck": self.stuck, "blocked": self.blocked, **shape,
            "tokens": self.tokens.to_wire(), "cores": [c.to_wire() for c in self.cores],
            "storage": {tier: load.to_wire() for tier, load in self.storage.items()},
        }
        for key, part in (("nested", self.nested), ("process", self.process),
                          ("guard_house", self.guard_house), ("quarantine", self.quarantine)):
            if part is not None:
                wire[key] = part.to_wire()
        if self.recent_executions is not None:
            wire["recent_executions"] = [e.to_wire() for e in self.recent_executions]
        wire.update(self.panels)
        return wire

    def encode(self) -> bytes:
        packed: bytes = msgpack.packb(self.to_wire(), default=str)
        return packed

    def with_panels(self, panels: Mapping[str, Any]) -> AgentSnapshot:
        """This snapshot with an observer's panels added (the guards'): the parts the schema
        types are read as such, the rest joins :attr:`panels`."""
        f = Fields(panels, "panels")
        return replace(
            self, guard_house=optional(f, "guard_house", GuardHouseStatus.read) or self.guard_house,
            quarantine=optional(f, "quarantine", QuarantinePanel.read) or self.quarantine,
            recent_executions=_executions(f) if f.has("recent_executions")
            else self.recent_executions,
            panels={**self.panels, **f.rest(_SNAPSHOT_KEYS)})


def as_snapshot(snapshot: Mapping[str, Any] | AgentSnapshot) -> AgentSnapshot:
    """A snapshot typed: itself, or a wire map read with :meth:`AgentSnapshot.from_wire`."""
    return snapshot if isinstance(snapshot, AgentSnapshot) else AgentSnapshot.from_wire(snapshot)


def _executions(f: Fields) -> tuple[Execution, ...] | None:
    if not f.has("recent_executions"):
        return None
    return tuple(Execution.read(r) for r in f.records("recent_executions"))


_SHAPE_KEYS = frozenset({"topology", "workers", "workers_per_core", "mailbox_capacity",
                         "policy"})
_SNAPSHOT_KEYS = (_known(AgentSnapshot) - {"shape"}) | _SHAPE_KEYS
