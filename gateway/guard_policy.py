"""The cluster's Guard House verdict: pure functions over the agents' reports.

Each agent's snapshot carries its Guard House (its policy and, per function, its finished
attempts and failures). The cluster judges a function by the sum over the agents, with the
agents' own rule (``docs/guards.md``): blocked when the summed attempts reach
``min_attempts`` and the summed failure rate reaches ``failure_threshold``. The cluster is
in auto-block mode when any agent is; with agents configured differently the strictest
threshold and the fewest attempts win (a block is the safe side of a disagreement).
No locks, clock or I/O here: :mod:`.guards` owns the state and calls these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tokengate.shared.snapshot_guards import GuardHouseStatus

PASSIVE, AUTO_BLOCK = "passive", "auto-block"


@dataclass(frozen=True, slots=True)
class Counts:
    """Finished attempts and failures of one function (one node's, or the cluster's)."""

    attempts: int = 0
    failures: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.attempts + other.attempts, self.failures + other.failures)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.attempts - other.attempts, self.failures - other.failures)

    @property
    def failure_rate(self) -> float:
        """Failures as a percentage (0..100), as the agents report it."""
        return 100.0 * self.failures / self.attempts if self.attempts else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """When the cluster blocks; passive (never) unless ``auto_block``."""

    auto_block: bool = False
    failure_threshold: float = 1.0  # failure rate (0..1) at which a function is blocked
    min_attempts: int = 1

    @property
    def mode(self) -> str:
        return AUTO_BLOCK if self.auto_block else PASSIVE


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeReport:
    """What one agent's snapshot says of its Guard House."""

    policy: Policy = Policy()
    counts: Mapping[str, Counts] = field(default_factory=dict)


def report_of(house: GuardHouseStatus | None) -> NodeReport:
    """An agent's Guard House, as its snapshot's schema read it, as a :class:`NodeReport`. The
    schema checked the types; a record that cannot be true (more failures than attempts)
    counts as nothing (a bad report never blocks a function)."""
    if house is None:
        return NodeReport()
    threshold = 1.0 if house.failure_threshold is None else house.failure_threshold
    policy = Policy(auto_block=house.auto_block, failure_threshold=threshold,
                    min_attempts=max(1, house.min_attempts or 1))
    counts = {name: Counts(rec.attempts, rec.failures) for name, rec in house.methods.items()
              if 0 <= rec.failures <= rec.attempts}
    return NodeReport(policy=policy, counts=counts)


def cluster_policy(policies: Iterable[Policy]) -> Policy:
    """The cluster's policy: auto-block if any agent's is, with the strictest settings of
    the agents that auto-block; passive if none does (or no agent reported)."""
    blocking = [p for p in policies if p.auto_block]
    if not blocking:
        return Policy()
    return Policy(auto_block=True,
                  failure_threshold=min(p.failure_threshold for p in blocking),
                  min_attempts=min(p.min_attempts for p in blocking))


def over_threshold(counts: Counts, policy: Policy) -> bool:
    """Whether a record is bad enough to block, by the agents' own rule."""
    return (counts.attempts >= policy.min_attempts
            and counts.failure_rate >= 100.0 * policy.failure_threshold)


def should_block(counts: Counts, policy: Policy) -> bool:
    """Whether the cluster blocks a function with this summed record now."""
    return policy.auto_block and over_threshold(counts, policy)


def blocked_message(name: str, counts: Counts | None) -> str:
    """The refusal a client gets: the summed record and how to lift the block."""
    record = "" if counts is None else (
        f" due to high failure rate across the cluster ({counts.failure_rate:.1f}%, "
        f"{counts.failures}/{counts.attempts} attempts summed over the nodes)")
    return (f"Method '{name}' is auto-blocked{record}. Review the function's implementation, "
            f"then re-enable it: tokengate reenable {name} (or the dashboard's button).")
