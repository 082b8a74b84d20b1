"""The seed's Guard House report: every function by health class, with its rate and mean time.

Pure formatting. Two sources give the same rows: one host's Guard House snapshot (embedded,
``coord.guard_report()``; an agent's status) and the gateway's ``Guards`` view, whose counts
are summed over the nodes (``tokengate guards report``). The class of a function follows
its summed counts (:func:`~tokengate.node_agent.guards.guard_house.health_of`), so a function
that fails on one node only is judged by the cluster's whole record of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokengate.node_agent.guards.guard_house import Health, Reputation, health_of
from tokengate.shared.rpc import tokengate_pb2 as pb

RULE = "=" * 70
HEADINGS = (
    (Health.EXCELLENT, "EXCELLENT PERFORMERS (>95% success):"),
    (Health.GOOD, "GOOD PERFORMERS (>80% success):"),
    (Health.FAIR, "FAIR PERFORMERS (>50% success):"),
    (Health.POOR, "POOR PERFORMERS (<=50% success):"),
    (Health.UNKNOWN, "NOT YET FINISHED (no attempt finished):"),
)
UNDERLINE = "─" * 37


@dataclass(frozen=True, slots=True)
class FunctionRow:
    """One function's record, on one host or summed over the cluster."""

    name: str
    attempts: int
    successes: int
    failures: int
    mean_time: float
    blocked_on: tuple[str, ...] = ()

    @property
    def health(self) -> Health:
        return health_of(Reputation(self.name, self.attempts, self.successes, self.failures))

    @property
    def success_rate(self) -> float:
        return 100.0 * self.successes / self.attempts if self.attempts else 0.0


def rows_from_snapshot(guard_house: Mapping[str, Any], node: str = "") -> list[FunctionRow]:
    """Rows from a Guard House snapshot (``status()["guard_house"]``)."""
    return [FunctionRow(name, m["attempts"], m["successes"], m["failures"], m["mean_time"],
                        (node or "here",) if m.get("blocked") else ())
            for name, m in guard_house.get("methods", {}).items()]


def rows_from_reply(reply: pb.GuardsReply) -> list[FunctionRow]:
    """Rows from the gateway's cluster-wide ``Guards`` view."""
    return [FunctionRow(f.name, f.attempts, f.successes, f.failures, f.mean_time,
                        tuple(f.blocked_on)) for f in reply.functions]


def _labels(rows: Sequence[FunctionRow]) -> dict[str, str]:
    """Each function by its short name (``qualname``) unless two share it."""
    short = {row.name: row.name.rpartition(":")[2] for row in rows}
    taken = Counter(short.values())
    return {name: label if taken[label] == 1 else name for name, label in short.items()}


def _row_line(row: FunctionRow, label: str, width: int) -> str:
    line = (f"{label:<{width}}  Rate: {row.success_rate:.1f}% ({row.successes}/"
            f"{row.attempts})  Avg: {row.mean_time:.4f}s")
    if row.blocked_on:
        line += f"  BLOCKED on {', '.join(row.blocked_on)}"
    return line


def report_lines(rows: Iterable[FunctionRow], *, scope: str, mode: str) -> list[str]:
    """The report: a header with the totals, then one section per health class present."""
    rows = sorted(rows, key=lambda row: (-row.attempts, row.name))
    blocked = sorted({row.name for row in rows if row.blocked_on})
    lines = [RULE, f"GUARD HOUSE REPORT ({scope})", RULE, f"Mode: {mode}",
             f"Functions tracked: {len(rows)}   Executions: "
             f"{sum(row.attempts for row in rows)}   Failures: "
             f"{sum(row.failures for row in rows)}",
             f"Blocked: {', '.join(blocked) or 'none'}"]
    if not rows:
        return [*lines, "", "No function has run yet."]
    labels = _labels(rows)
    for health, heading in HEADINGS:
        group = [row for row in rows if row.health is health]
        if group:
            width = max(len(labels[row.name]) for row in group)
            lines += ["", heading, UNDERLINE,
                      *(_row_line(row, labels[row.name], width) for row in group)]
    return lines


def mode_text(auto_block: bool, failure_threshold: float, min_attempts: int) -> str:
    if not auto_block:
        return "passive (observation only; auto-blocking DISABLED)"
    return (f"auto-block (a function failing {100 * failure_threshold:.0f}% of at least "
            f"{min_attempts} calls is refused until re-enabled)")


def snapshot_report(guard_house: Mapping[str, Any], scope: str = "this host") -> str:
    """The report of one host's Guard House snapshot."""
    mode = mode_text(bool(guard_house.get("auto_block")),
                     float(guard_house.get("failure_threshold", 0.0)),
                     int(guard_house.get("min_attempts", 0)))
    return "\n".join(report_lines(rows_from_snapshot(guard_house), scope=scope, mode=mode))


def cluster_report(reply: pb.GuardsReply, modes: Mapping[str, str]) -> str:
    """The cluster's report; ``modes``: each connected node's Guard House mode."""
    kinds = sorted(set(modes.values()))
    if not kinds:
        mode = "unknown (no agent has reported yet)"
    elif len(kinds) == 1:
        mode = f"{kinds[0]} on every node"
    else:
        mode = "mixed: " + ", ".join(f"{node} {kind}" for node, kind in sorted(modes.items()))
    scope = f"cluster, {len(modes)} node{'s' if len(modes) != 1 else ''}"
    return "\n".join(report_lines(rows_from_reply(reply), scope=scope, mode=mode))
