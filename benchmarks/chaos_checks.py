"""The chaos soak's checks: pure functions over what the soak recorded (no clock, no I/O).

:class:`Soak` holds the record: every call as the load made it and as its client saw it end,
every outcome the gateway pushed per token id (before the client's dedup), the runs counted on
disk, the chaos events, the agent losses the gateway logged, every process incarnation, memory
samples, the Redis state of the tokens whose receipts were withheld, and the final liveness.
:func:`run_checks` judges it:

- ``told once``: no accepted call was told more than one outcome;
- ``stored = told``: each token whose receipt was withheld is stored in Redis in the final
  state, with the error type and result payload, that its client was told;
- ``values``: every completed call returned the expected value and ran at least once on disk;
- ``never twice``: no never-twice call ran more than once;
- ``no failures``: no idempotent call failed or was refused; never-twice calls failed only
  with ``AgentLost`` (counted apart);
- ``reruns explained``: every idempotent call that ran twice had, between its two runs, a real
  loss of the agent that ran it first: that pid SIGKILLed or SIGSTOPped (past the heartbeat
  timeout) by the chaos thread, or crashed, or the gateway logged that agent lost or replaced;
- ``no healthy agent lost``: the gateway declared an agent lost only within
  ``LOSS_GRACE`` seconds (plus the heartbeat timeout) after the chaos thread killed or froze it;
- ``nothing lost``: every submitted call had an outcome by the end;
- ``all alive``: no process died unprompted, and at the end Redis, the gateway and every agent
  run and ``status`` lists every agent UP;
- ``agents moved`` (several gateways only): when a gateway was killed (and kept down), each
  of its agents was connected to another gateway, in its own shard, within ``MOVE_TIMEOUTS``
  (2) heartbeat timeouts;
- ``memory flat``: every role's memory is flat over the last third of the load: it grows
  less than ``max(MEMORY_FRACTION of its start, MEMORY_FLOOR)`` (10 %, 16 MiB). A process that
  lived through the whole last third is judged on its own samples: the medians of those in the
  first and last ``EDGE`` (10 %, at least 5 s) of the third. Redis is judged by ``INFO
  used_memory`` that way whatever its pid (its dataset outlives a restart: it is read back from
  the AOF). A role restarted in the last third (with every fault on, most are) is judged by its
  peaks: the largest sample of any of its processes in the last third against the largest in
  the middle third, so memory that leaks in each incarnation, or in what a new one inherits,
  still shows. The soak's own process (the client) is a role too.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tokengate.shared.errors import AgentLost, wire_name

SLACK = 1.0                  # seconds of clock slack between the soak's, agents' and logs' times
LOSS_GRACE = 5.0             # seconds after a fault ends in which the gateway may declare it
MEMORY_FLOOR = 16 * 2**20    # bytes of growth always allowed over the last third
MEMORY_FRACTION = 0.10       # growth allowed as a fraction of the start value
EDGE = 0.10                  # fraction of the last third whose samples give its start and end
MIN_EDGE = 5.0               # seconds, at least
AGENT_FAULTS = frozenset({"agent-kill", "agent-stop"})
NEVER_TWICE_LOSS = wire_name(AgentLost)
SHOWN = 5                    # examples quoted in a failed check's detail
MOVE_TIMEOUTS = 2            # heartbeat timeouts in which a dead gateway's agents move (issue 15)


@dataclass(frozen=True)
class Call:
    """One call the load made; ``outcome`` as its client saw it end: "completed",
    "failed:<ErrorType>", "refused:<ErrorType>" (submit raised), or "" (none by the end)."""

    seq: int
    task: str
    idempotent: bool
    token_id: str
    submitted: float
    outcome: str
    value_ok: bool

    @property
    def error(self) -> str:
        return self.outcome.partition(":")[2]


@dataclass(frozen=True)
class Run:
    """One execution, from its side-effect line on disk."""

    seq: int
    pid: int
    at: float


@dataclass(frozen=True)
class Event:
    """One chaos event: ``kind`` one of the fault names (or "crash"), against ``target``
    (a role), whose process had ``pid``; unix times."""

    kind: str
    target: str
    pid: int
    start: float
    end: float
    note: str = ""
    moved: float | None = None  # gateway-kill of one of several: seconds until its agents
    #                             were at another gateway (inf: not while it was down)


@dataclass(frozen=True)
class Loss:
    """The gateway's log: ``agent`` declared lost ("declared") or replaced by a new process
    under its name ("replaced") at ``at``."""

    agent: str
    at: float
    how: str
    why: str = ""


@dataclass(frozen=True)
class Incarnation:
    """One process of one role; ``cause`` says how it ended ("" while it runs)."""

    role: str
    pid: int
    started: float
    ended: float | None
    cause: str


@dataclass(frozen=True)
class Sample:
    at: float
    role: str
    pid: int
    rss: int
    used: int  # Redis INFO used_memory; 0 for other roles or when Redis did not answer


@dataclass(frozen=True)
class Stored:
    """A token whose receipt was withheld: what its client was told, what Redis holds."""

    token_id: str
    told: str
    told_payload: bytes
    state: str | None  # None: no such token in Redis
    error_type: str
    payload: bytes
    note: str = ""  # why Redis could not be read


@dataclass(frozen=True)
class Final:
    alive: Mapping[str, bool]
    nodes: Mapping[str, str]  # agent name -> state in ``status``
    error: str = ""


@dataclass(frozen=True)
class Soak:
    started: float
    load_stopped: float
    heartbeat_timeout: float
    agents: tuple[str, ...]
    calls: tuple[Call, ...]
    told: Mapping[str, tuple[str, ...]]
    accepted: frozenset[str]
    runs: tuple[Run, ...]
    events: tuple[Event, ...]
    losses: tuple[Loss, ...]
    incarnations: tuple[Incarnation, ...]
    samples: tuple[Sample, ...]
    stored: tuple[Stored, ...]
    final: Final
    gateways: tuple[str, ...] = ("gateway",)  # the gateway roles (one per shard)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _examples(items: Iterable[object]) -> str:
    shown = [str(item) for item in list(items)[:SHOWN]]
    return f" (e.g. {'; '.join(shown)})" if shown else ""


def runs_by_seq(runs: Iterable[Run]) -> dict[int, list[Run]]:
    out: dict[int, list[Run]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: r.at):
        out[run.seq].append(run)
    return out


# -- outcomes ---------------------------------------------------------------------------------


def told_twice(soak: Soak) -> list[str]:
    ids = {c.token_id for c in soak.calls if c.token_id}
    return [i for i in ids if len(soak.told.get(i, ())) > 1]


def told_once(soak: Soak) -> Check:
    accepted = {c.token_id for c in soak.calls if c.token_id in soak.accepted
                or soak.told.get(c.token_id)}
    twice = told_twice(soak)
    return Check("told once", not twice,
                 f"{len(accepted)} accepted; {len(twice)} told more than once"
                 + _examples(f"{i}: {list(soak.told[i])}" for i in twice))


def _stored_mismatch(s: Stored) -> str:
    told_state, _, told_error = s.told.partition(":")
    if s.note:
        return s.note
    if told_state == "rejected":
        return "" if s.state is None else f"rejected, yet stored {s.state}"
    if s.state is None:
        return "not in Redis"
    if s.state != told_state:
        return f"stored {s.state}"
    if s.error_type != told_error:
        return f"stored error {s.error_type!r}"
    if told_state == "completed" and s.payload != s.told_payload:
        return "stored another result"
    return ""


def stored_equals_told(soak: Soak) -> Check:
    bad = [(s.token_id, s.told, why) for s in soak.stored if (why := _stored_mismatch(s))]
    return Check("stored = told", bool(soak.stored) and not bad,
                 f"{len(soak.stored)} tokens with receipts withheld, {len(bad)} differ"
                 + _examples(f"{i} told {t}: {w}" for i, t, w in bad)
                 + ("" if soak.stored else "; none sampled"))


def values(soak: Soak) -> Check:
    ran = {r.seq for r in soak.runs}
    wrong = [c for c in soak.calls if c.outcome == "completed" and not c.value_ok]
    unrun = [c for c in soak.calls if c.outcome == "completed" and c.seq not in ran]
    return Check("values", not wrong and not unrun,
                 f"{len(wrong)} completed with a wrong value, {len(unrun)} completed without "
                 "a run on disk" + _examples(f"{c.task}#{c.seq}" for c in [*wrong, *unrun]))


def never_twice(soak: Soak) -> Check:
    runs = runs_by_seq(soak.runs)
    twice = [c for c in soak.calls if not c.idempotent and len(runs.get(c.seq, ())) > 1]
    return Check("never twice", not twice,
                 f"{len(twice)} never-twice calls ran more than once"
                 + _examples(f"{c.task}#{c.seq} pids {[r.pid for r in runs[c.seq]]}"
                             for c in twice))


def _allowed_failure(call: Call) -> bool:
    return not call.idempotent and call.outcome == f"failed:{NEVER_TWICE_LOSS}"


def bad_failures(soak: Soak) -> list[Call]:
    """Calls that failed or were refused and should not have."""
    return [c for c in soak.calls if c.outcome.startswith(("failed:", "refused:"))
            and not _allowed_failure(c)]


def no_failures(soak: Soak) -> Check:
    bad = bad_failures(soak)
    kinds: dict[str, int] = defaultdict(int)
    for call in bad:
        kinds[f"{call.task} {call.outcome}"] += 1
    lost_once = sum(1 for c in soak.calls if _allowed_failure(c))
    return Check("no failures", not bad,
                 f"{len(bad)} calls failed that must not"
                 + _examples(f"{k} x{n}" for k, n in sorted(kinds.items(), key=lambda x: -x[1]))
                 + f"; never-twice calls failed {NEVER_TWICE_LOSS} (allowed): {lost_once}")


def lost(soak: Soak) -> list[Call]:
    return [c for c in soak.calls if c.token_id and not c.outcome]


def nothing_lost(soak: Soak) -> Check:
    missing = lost(soak)
    never_acked = [c for c in missing if c.token_id not in soak.accepted]
    return Check("nothing lost", not missing,
                 f"{len(missing)} calls had no outcome by the end ({len(never_acked)} of them "
                 "never acknowledged)" + _examples(f"{c.task}#{c.seq} {c.token_id}"
                                                  for c in missing))


# -- reruns and losses ------------------------------------------------------------------------


def _role_of(soak: Soak) -> dict[int, str]:
    return {inc.pid: inc.role for inc in soak.incarnations}


def _explain_rerun(soak: Soak, first: Run, again: Run, role: str) -> str:
    low, high = first.at - SLACK, again.at + SLACK
    for event in soak.events:
        if event.kind in AGENT_FAULTS and event.pid == first.pid and low <= event.start <= high:
            return "agent fault"
    for inc in soak.incarnations:
        if inc.pid == first.pid and inc.cause.startswith("crash") and inc.ended is not None \
                and low <= inc.ended <= high:
            return "agent crash"
    for loss in soak.losses:
        if loss.agent == role and low <= loss.at <= high:
            return "declared loss"
    return "unexplained"


RANK = {"agent fault": 0, "agent crash": 1, "declared loss": 2, "unexplained": 3}


def reruns(soak: Soak) -> dict[int, str]:
    """Each idempotent call that ran more than once -> why (its least explained rerun)."""
    runs, roles = runs_by_seq(soak.runs), _role_of(soak)
    out = {}
    for call in soak.calls:
        seen = runs.get(call.seq, [])
        if not call.idempotent or len(seen) < 2:
            continue
        whys = [_explain_rerun(soak, a, b, roles.get(a.pid, "?"))
                for a, b in itertools.pairwise(seen)]
        out[call.seq] = max(whys, key=RANK.__getitem__)
    return out


def reruns_explained(soak: Soak) -> Check:
    why = reruns(soak)
    bad = [seq for seq, w in why.items() if w == "unexplained"]
    runs = runs_by_seq(soak.runs)
    counts = {w: sum(1 for x in why.values() if x == w) for w in RANK}
    return Check("reruns explained", not bad,
                 f"{len(why)} idempotent calls ran twice: "
                 + ", ".join(f"{w} {n}" for w, n in counts.items())
                 + _examples(f"#{s} runs (pid, +s) "
                             f"{[(r.pid, round(r.at - soak.started, 2)) for r in runs[s]]}"
                             for s in bad))


def spurious_losses(soak: Soak) -> list[Loss]:
    """Agents the gateway declared lost though no fault of theirs came just before."""
    faults = [(e.target, e.start, e.end) for e in soak.events if e.kind in AGENT_FAULTS]
    faults += [(i.role, i.ended, i.ended) for i in soak.incarnations
               if i.cause.startswith("crash") and i.ended is not None]
    grace = soak.heartbeat_timeout + LOSS_GRACE
    return [loss for loss in soak.losses if loss.how == "declared" and not any(
        target == loss.agent and start - SLACK <= loss.at <= end + grace
        for target, start, end in faults)]


def no_healthy_agent_lost(soak: Soak) -> Check:
    bad = spurious_losses(soak)
    declared = sum(1 for loss in soak.losses if loss.how == "declared")
    return Check("no healthy agent lost", not bad,
                 f"{declared} agents declared lost, {len(bad)} with no fault of theirs"
                 + _examples(f"{x.agent} at +{x.at - soak.started:.1f}s ({x.why})" for x in bad))


# -- processes --------------------------------------------------------------------------------


def all_alive(soak: Soak) -> Check:
    dead = [role for role, up in soak.final.alive.items() if not up]
    not_up = {a: soak.final.nodes.get(a, "absent") for a in soak.agents
              if soak.final.nodes.get(a) != "UP"}
    crashes = [f"{i.role} pid {i.pid} {i.cause}" for i in soak.incarnations
               if i.cause.startswith("crash")]
    ok = not dead and not not_up and not crashes and not soak.final.error
    detail = (f"dead at the end: {dead or 'none'}; agents not UP: {not_up or 'none'}; "
              f"died unprompted: {crashes or 'none'}")
    return Check("all alive", ok, detail + (f"; status: {soak.final.error}"
                                            if soak.final.error else ""))


@dataclass(frozen=True)
class MemoryRow:
    role: str
    pid: int
    metric: str
    start: int
    end: int
    verdict: str  # "ok", "GREW", or why it was not judged

    @property
    def growth(self) -> int:
        return self.end - self.start


def last_third(soak: Soak) -> tuple[float, float]:
    return soak.load_stopped - (soak.load_stopped - soak.started) / 3, soak.load_stopped


def _value(sample: Sample, metric: str) -> int:
    return sample.used if metric == "used_memory" else sample.rss


def _verdict(start: int, end: int) -> str:
    return "ok" if end - start < max(MEMORY_FRACTION * start, MEMORY_FLOOR) else "GREW"


def _memory_row(soak: Soak, role: str, pid: int | None, low: float, high: float) -> MemoryRow:
    """Medians at the start and the end of [low, high] of one process (``pid``), or of the
    role whatever its process (None: Redis's dataset; the client, which never restarts)."""
    edge = max(EDGE * (high - low), MIN_EDGE)
    metric = "used_memory" if role == "redis" else "rss"
    mine = [s for s in soak.samples if s.role == role and (pid is None or s.pid == pid)
            and _value(s, metric)]
    head = [_value(s, metric) for s in mine if low <= s.at <= low + edge]
    tail = [_value(s, metric) for s in mine if high - edge <= s.at <= high]
    shown = pid if pid is not None else (mine[-1].pid if mine else 0)
    if not head or not tail:
        return MemoryRow(role, shown, metric, 0, 0, "no samples")
    start, end = int(statistics.median(head)), int(statistics.median(tail))
    return MemoryRow(role, shown, metric, start, end, _verdict(start, end))


def _peaks(soak: Soak, role: str, low: float, high: float) -> MemoryRow:
    """A role restarted in the last third: its largest sample there against its largest in
    the middle third, over all its processes."""
    middle = low - (high - low)
    mine = [s for s in soak.samples if s.role == role and s.rss]
    before = [s.rss for s in mine if middle <= s.at < low]
    after = [s.rss for s in mine if low <= s.at <= high]
    if not before or not after:
        return MemoryRow(role, 0, "rss", 0, 0, "no samples")
    start, end = max(before), max(after)
    verdict = _verdict(start, end)
    return MemoryRow(role, mine[-1].pid, "peak rss", start, end,
                     "ok (restarted: peaks)" if verdict == "ok" else verdict)


def memory_rows(soak: Soak) -> list[MemoryRow]:
    low, high = last_third(soak)
    rows = [_memory_row(soak, role, None, low, high) for role in ("redis", "client")]
    for role in (*soak.gateways, *soak.agents):
        lived = [i for i in soak.incarnations if i.role == role and i.started <= low
                 and (i.ended is None or i.ended >= high)]
        if lived:
            rows.extend(_memory_row(soak, role, inc.pid, low, high) for inc in lived)
        else:
            rows.append(_peaks(soak, role, low, high))
    return rows


def memory_flat(soak: Soak) -> Check:
    rows = memory_rows(soak)
    grew = [r for r in rows if r.verdict == "GREW"]
    judged = [r for r in rows if r.verdict != "no samples"]
    return Check("memory flat", not grew,
                 f"{len(judged)} processes judged, {len(grew)} grew"
                 + _examples(f"{r.role} {r.metric} {r.start / 2**20:.1f} -> "
                             f"{r.end / 2**20:.1f} MiB" for r in grew))


def agents_moved(soak: Soak) -> Check:
    kills = [e for e in soak.events if e.kind == "gateway-kill" and e.moved is not None]
    limit = MOVE_TIMEOUTS * soak.heartbeat_timeout
    late = [e for e in kills if e.moved is not None and e.moved > limit]
    slowest = max((e.moved for e in kills if e.moved is not None), default=0.0)
    return Check("agents moved", not late,
                 f"{len(kills)} gateways killed; their agents at another gateway after at most "
                 f"{slowest:.1f}s (limit {limit:g}s); {len(late)} later"
                 + _examples(f"{e.target} at +{e.start - soak.started:.1f}s" for e in late))


CHECKS = (told_once, stored_equals_told, values, never_twice, no_failures, reruns_explained,
          no_healthy_agent_lost, nothing_lost, all_alive, memory_flat)
GATEWAYS_CHECKS = (agents_moved,)  # with several gateways


def run_checks(soak: Soak) -> list[Check]:
    checks = CHECKS if len(soak.gateways) == 1 else (*CHECKS, *GATEWAYS_CHECKS)
    return [check(soak) for check in checks]
