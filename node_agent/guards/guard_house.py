"""Guard House: per-function reputation, and auto-blocking of functions that keep failing.

Every finished call of a function updates its :class:`Reputation` (attempts, successes,
failures, failure rate, mean time); an attempt that failed and is retried counts only as a
retry, since the call's outcome is still open. The Guard House is passive by default: it
observes and reports, and never refuses anything. With ``auto_block`` on, a function whose
failure rate reaches the threshold (after a minimum number of calls) is blocked: its next
submissions are refused with :class:`MethodBlockedException` until an operator calls
:meth:`GuardHouse.reenable`.

The decisions are pure functions over frozen data (:func:`should_block`, :func:`health_of`,
:func:`blocked_message`); :class:`GuardHouse` owns the mutable table.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from tokengate.shared.errors import MethodBlockedException

logger = logging.getLogger(__name__)


class Health(StrEnum):
    """How a function is doing, by success rate (the seed's report headings)."""

    EXCELLENT = "excellent"  # > 95 % success
    GOOD = "good"            # > 80 %
    FAIR = "fair"            # > 50 %
    POOR = "poor"            # the rest
    UNKNOWN = "unknown"      # never finished an attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardPolicy:
    """When a function is blocked. Passive (never blocks) unless ``auto_block`` is True."""

    auto_block: bool = False
    failure_threshold: float = 0.5   # failure rate (0..1) at which a function is blocked
    min_attempts: int = 10           # no verdict before this many finished attempts


@dataclass(frozen=True, slots=True)
class Reputation:
    """What one function has done so far."""

    name: str
    total_attempts: int = 0
    successful_executions: int = 0
    failed_executions: int = 0
    total_time: float = 0.0
    last_error: str = ""
    retries: int = 0                 # failed attempts that were retried (not outcomes)

    @property
    def failure_rate(self) -> float:
        """Failed calls as a percentage (0..100), as the seed reports it."""
        return 100.0 * self.failed_executions / self.total_attempts if self.total_attempts else 0.0

    @property
    def success_rate(self) -> float:
        return 100.0 - self.failure_rate if self.total_attempts else 0.0

    @property
    def mean_time(self) -> float:
        """Mean execution time of an attempt (retried attempts included)."""
        runs = self.total_attempts + self.retries
        return self.total_time / runs if runs else 0.0

    def recorded(self, success: bool, seconds: float, error: str = "") -> Reputation:
        """A new reputation with one more finished attempt."""
        return replace(
            self,
            total_attempts=self.total_attempts + 1,
            successful_executions=self.successful_executions + (1 if success else 0),
            failed_executions=self.failed_executions + (0 if success else 1),
            total_time=self.total_time + max(0.0, seconds),
            last_error=self.last_error if success else error,
        )


def over_threshold(rep: Reputation, policy: GuardPolicy) -> bool:
    """Whether the reputation is bad enough to block (auto-block on or not)."""
    return (
        rep.total_attempts >= policy.min_attempts
        and rep.failure_rate >= 100.0 * policy.failure_threshold
    )


def should_block(rep: Reputation, policy: GuardPolicy) -> bool:
    """Whether the Guard House blocks the function now."""
    return policy.auto_block and over_threshold(rep, policy)


def health_of(rep: Reputation) -> Health:
    if rep.total_attempts == 0:
        return Health.UNKNOWN
    rate = rep.success_rate
    if rate > 95.0:
        return Health.EXCELLENT
    if rate > 80.0:
        return Health.GOOD
    if rate > 50.0:
        return Health.FAIR
    return Health.POOR


def blocked_message(rep: Reputation | None, name: str) -> str:
    """The refusal message: the rate, the counts, and what to do about it."""
    how = (
        f"Review the function's implementation, then re-enable it with "
        f"coordinator.reenable({name!r}) (or GuardHouse.reenable)."
    )
    if rep is None:
        return f"Method '{name}' is auto-blocked. {how}"
    return (
        f"Method '{name}' is auto-blocked due to high failure rate "
        f"({rep.failure_rate:.1f}%, {rep.failed_executions}/{rep.total_attempts} attempts; "
        f"last error: {rep.last_error or 'n/a'}). {how}"
    )


class _Tally:
    """The Guard House's mutable counts of one function (its table lock guards them)."""

    __slots__ = ("attempts", "failures", "last_error", "retries", "total_time")

    def __init__(self) -> None:
        self.attempts = 0
        self.failures = 0
        self.retries = 0
        self.total_time = 0.0
        self.last_error = ""

    def reputation(self, name: str) -> Reputation:
        return Reputation(name, self.attempts, self.attempts - self.failures, self.failures,
                          self.total_time, self.last_error, self.retries)


class GuardHouse:
    """Owns the reputation table and the blocked set; thread-safe.

    ``enforce=False`` (an agent linked to a gateway): it records and reports, and leaves the
    verdict to the gateway, which sums every node's record (``gateway/guards.py``).
    """

    def __init__(self, policy: GuardPolicy | None = None, *, enforce: bool = True) -> None:
        self.policy = policy or GuardPolicy()
        self.enforce = enforce
        self._table_lock = threading.Lock()  # guards _tallies, _blocked, _refusals
        self._tallies: dict[str, _Tally] = {}
        self._blocked: set[str] = set()
        self._refusals = 0

    def check_allowed(self, name: str) -> None:
        """Raise :class:`MethodBlockedException` if ``name`` is blocked (auto-block only)."""
        if not self.policy.auto_block or name not in self._blocked:
            return
        with self._table_lock:
            if name not in self._blocked:
                return
            self._refusals += 1
            rep = self._reputation_locked(name)
        raise MethodBlockedException(blocked_message(rep, name))

    def record(self, name: str, success: bool, seconds: float, error: str = "") -> bool:
        """Record one finished attempt; True if this attempt got the function blocked."""
        with self._table_lock:
            tally = self._tallies.get(name)
            if tally is None:
                tally = self._tallies[name] = _Tally()
            tally.attempts += 1
            tally.total_time += seconds
            if not success:
                tally.failures += 1
                tally.last_error = error
            if not (self.policy.auto_block and self.enforce) or name in self._blocked:
                return False
            rep = tally.reputation(name)
            if not should_block(rep, self.policy):
                return False
            self._blocked.add(name)
        logger.warning("Guard House blocked %s: %.1f%% failures (%d/%d attempts)",
                       name, rep.failure_rate, rep.failed_executions, rep.total_attempts)
        return True

    def record_retry(self, name: str, seconds: float) -> None:
        """Count an attempt that failed and will be retried (not an outcome: no verdict)."""
        with self._table_lock:
            tally = self._tallies.get(name)
            if tally is None:
                tally = self._tallies[name] = _Tally()
            tally.retries += 1
            tally.total_time += seconds

    def _reputation_locked(self, name: str) -> Reputation | None:
        tally = self._tallies.get(name)
        return None if tally is None else tally.reputation(name)

    def reenable(self, name: str, *, reset: bool = True) -> bool:
        """Operator action: unblock ``name`` (and by default forget its record); True if blocked."""
        with self._table_lock:
            was = name in self._blocked
            self._blocked.discard(name)
            if reset:
                self._tallies.pop(name, None)
        logger.info("Guard House re-enabled %s (was blocked: %s)", name, was)
        return was

    def is_blocked(self, name: str) -> bool:
        return name in self._blocked

    def reputation(self, name: str) -> Reputation | None:
        with self._table_lock:
            return self._reputation_locked(name)

    def snapshot(self) -> dict[str, Any]:
        """Plain data for the status panel."""
        with self._table_lock:
            reps = [tally.reputation(name) for name, tally in self._tallies.items()]
            blocked = sorted(self._blocked)
            refusals = self._refusals
        methods = {
            rep.name: {
                "attempts": rep.total_attempts, "successes": rep.successful_executions,
                "failures": rep.failed_executions, "retries": rep.retries,
                "failure_rate": round(rep.failure_rate, 2),
                "mean_time": round(rep.mean_time, 6), "health": health_of(rep).value,
                "blocked": rep.name in blocked,
                "over_threshold": over_threshold(rep, self.policy),
            }
            for rep in sorted(reps, key=lambda r: r.name)
        }
        return {
            "mode": "auto-block" if self.policy.auto_block else "passive",
            "auto_block": self.policy.auto_block,
            "enforced_by": "node" if self.enforce else "gateway",
            "failure_threshold": self.policy.failure_threshold,
            "min_attempts": self.policy.min_attempts,
            "methods_tracked": len(methods),
            "executions": sum(rep.total_attempts for rep in reps),
            "blocked": blocked,
            "refusals": refusals,
            "methods": methods,
        }
