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

The guards' panels are typed (in :mod:`.snapshot_guards`) where a reader reads them: the
Guard House, the quarantine's newest records, the recent executions. The rest of them
(history, overflow, convergence, retry policies, the functions' complexity, metrics) is
open-ended display data that only ``build_status`` passes through, so it stays a map:
:attr:`AgentSnapshot.panels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack
from tokengate.shared.errors import SnapshotError
from tokengate.shared.snapshot_guards import (
    Execution,
    GuardHouseStatus,
    MethodRecord,
    QuarantinedCall,
    QuarantinePanel,
)
from tokengate.shared.wire_fields import Extra, Fields, optional, schema_keys

__all__ = ["AgentSnapshot", "CoreStatus", "Execution", "GuardHouseStatus", "HostTopology",
           "MethodRecord", "NestedCounts", "NodeShape", "ProcessLoad", "QuarantinePanel",
           "QuarantinedCall", "TierLoad", "TokenCounts", "as_snapshot"]

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


_HOST_KEYS = schema_keys(HostTopology)


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


_COUNT_KEYS = schema_keys(TokenCounts)


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


_NESTED_KEYS = schema_keys(NestedCounts)


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
_SNAPSHOT_KEYS = (schema_keys(AgentSnapshot) - {"shape"}) | _SHAPE_KEYS
