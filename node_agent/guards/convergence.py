"""Convergence loop: per-core pressure in, each core's active worker pattern out.

Each core has ``workers_per_core`` mailboxes, of which the first ``active`` receive new tokens
(its *pattern*). Every ``interval`` seconds the loop reads each core's pressure - queued tokens
and the mean queue wait of the tokens started since the last look - and :func:`decide`:

- grow a core by one active mailbox when it is under pressure (more queued tokens per active
  mailbox than ``high_depth``, or a mean wait above ``high_wait``), up to ``max_active``;
- shrink it by one, down to ``min_active``, after ``idle_cycles`` looks in a row with nothing
  queued and a mean wait under ``low_wait`` (hysteresis: it does not flap).

:func:`decide` is pure. :class:`WaitMeter` collects queue waits from the workers;
:class:`ConvergenceLoop` owns the thread, the idle streaks and the decision log, and changes
patterns only through the callable it was given (the scheduler's public method).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvergenceBounds:
    """Limits and thresholds of the convergence decisions."""

    min_active: int = 1
    max_active: int = 4
    high_depth: float = 2.0     # queued tokens per active mailbox that count as pressure
    high_wait: float = 0.05     # mean queue wait (s) that counts as pressure
    low_wait: float = 0.005     # mean queue wait (s) under which a core may be idle
    idle_cycles: int = 3        # idle looks in a row before shrinking

    def clamp(self, active: int) -> int:
        return max(self.min_active, min(self.max_active, active))


@dataclass(frozen=True, slots=True)
class CorePressure:
    """One core at one look."""

    core_id: int
    active: int
    queue_depth: int
    mean_wait: float = 0.0


@dataclass(frozen=True, slots=True)
class PatternDecision:
    """A change of one core's active pattern, and why."""

    core_id: int
    old: int
    new: int
    reason: str
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pressure_reason(p: CorePressure, bounds: ConvergenceBounds) -> str | None:
    per_mailbox = p.queue_depth / max(1, p.active)
    if per_mailbox > bounds.high_depth:
        return f"{p.queue_depth} queued on {p.active} active mailboxes"
    if p.mean_wait > bounds.high_wait:
        return f"mean queue wait {p.mean_wait * 1000:.1f} ms"
    return None


def decide(pressures: Sequence[CorePressure], idle_streaks: Mapping[int, int],
           bounds: ConvergenceBounds) -> tuple[list[PatternDecision], dict[int, int]]:
    """Pattern changes for this look, and the idle streaks to carry to the next one."""
    decisions: list[PatternDecision] = []
    streaks: dict[int, int] = {}
    for p in pressures:
        reason = _pressure_reason(p, bounds)
        idle = p.queue_depth == 0 and p.mean_wait < bounds.low_wait
        streak = idle_streaks.get(p.core_id, 0) + 1 if idle else 0
        target = bounds.clamp(p.active)
        if reason is not None and p.active < bounds.max_active:
            target = p.active + 1
            reason = f"grow: {reason}"
        elif streak >= bounds.idle_cycles and p.active > bounds.min_active:
            target = p.active - 1
            reason = f"shrink: idle for {streak} looks"
            streak = 0
        elif target != p.active:
            reason = f"clamp into [{bounds.min_active}, {bounds.max_active}]"
        if target != p.active:
            decisions.append(PatternDecision(p.core_id, p.active, target, reason or ""))
        streaks[p.core_id] = streak
    return decisions, streaks


class WaitMeter:
    """Queue waits per core since the last :meth:`take`; workers add, the loop takes."""

    def __init__(self) -> None:
        self._waits_lock = threading.Lock()  # guards _sums
        self._sums: dict[int, tuple[float, int]] = {}

    def add(self, core_id: int, seconds: float) -> None:
        with self._waits_lock:
            total, count = self._sums.get(core_id, (0.0, 0))
            self._sums[core_id] = (total + seconds, count + 1)

    def take(self) -> dict[int, float]:
        """Mean wait per core since the previous call, and start a new window."""
        with self._waits_lock:
            sums, self._sums = self._sums, {}
        return {core: total / count for core, (total, count) in sums.items() if count}


ReadPressure = Callable[[], Sequence[CorePressure]]
ApplyPattern = Callable[[int, int], None]


class ConvergenceLoop:
    """A thread that looks every ``interval`` seconds and applies :func:`decide`'s changes."""

    def __init__(self, read: ReadPressure, apply: ApplyPattern, bounds: ConvergenceBounds,
                 *, interval: float = 5.0, log_size: int = 100) -> None:
        self.bounds = bounds
        self.interval = interval
        self._read = read
        self._apply = apply
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log_lock = threading.Lock()  # guards _log, looks
        self._log: deque[PatternDecision] = deque(maxlen=log_size)
        self._streaks: dict[int, int] = {}  # owned by the loop thread (or step's caller)
        self.looks = 0
        self.changed = threading.Condition(self._log_lock)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tokengate-convergence",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:  # a bad look must not end the loop; it is logged, not hidden
                logger.exception("convergence look failed")

    def step(self) -> list[PatternDecision]:
        """One look: read, decide, apply, log. Public so tests can drive it directly."""
        decisions, self._streaks = decide(self._read(), self._streaks, self.bounds)
        now = time.time()
        applied = []
        for decision in decisions:
            self._apply(decision.core_id, decision.new)
            logger.info("convergence: core %d pattern %d -> %d (%s)", decision.core_id,
                        decision.old, decision.new, decision.reason)
            applied.append(PatternDecision(decision.core_id, decision.old, decision.new,
                                           decision.reason, now))
        with self.changed:
            self.looks += 1
            self._log.extend(applied)
            self.changed.notify_all()
        return applied

    def decisions(self) -> list[PatternDecision]:
        with self._log_lock:
            return list(self._log)

    def wait_for(self, predicate: Callable[[list[PatternDecision]], bool],
                 timeout: float) -> bool:
        """Block until ``predicate(decisions)`` holds after a look (tests use it)."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(list(self._log)), timeout)

    def snapshot(self) -> dict[str, Any]:
        with self._log_lock:
            recent = [d.to_dict() for d in list(self._log)[-20:]]
            looks = self.looks
        return {
            "interval": self.interval, "looks": looks,
            "bounds": asdict(self.bounds), "decisions": recent,
        }
