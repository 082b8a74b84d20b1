"""Formatting shared by the seed's suites: duration spreads, the two ratios, Guard House report.

Pure: numbers in, lines of text out. The seed's "concurrency ratio" (sum of task durations /
wall) counts overlap, so it reads 5-7x for threads that share one GIL; true speedup (serial
time of the same calls / wall) is the figure that measures parallelism. Both are printed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

RULE = "=" * 70
CONCURRENCY_NOTE = "sum of task durations / wall: counts overlap, NOT parallelism"
SPEEDUP_NOTE = "serial time / wall: THIS measures parallelism"


def spread_lines(durations: Sequence[float], wall: float) -> list[str]:
    if not durations:
        return ["(no task finished)"]
    stdev = statistics.pstdev(durations) if len(durations) > 1 else 0.0
    return [
        f"Overall wall-clock: {wall:.6f}s",
        f"Min task duration: {min(durations):.6f}s",
        f"Max task duration: {max(durations):.6f}s",
        f"Mean task duration: {statistics.fmean(durations):.6f}s",
        f"Stdev (clustering indicator): {stdev:.6f}s",
    ]


def ratio_lines(durations: Sequence[float], wall: float, serial: float, serial_how: str,
                prefix: str = "") -> list[str]:
    """The seed's concurrency ratio, then true speedup, each saying what it measures."""
    total = sum(durations)
    ratio = total / wall if wall > 0 else 0.0
    speedup = serial / wall if wall > 0 else 0.0
    return [
        f"Serial estimate (sum): {total:.6f}s",
        f"Actual wall-clock: {wall:.6f}s",
        f"{prefix}Concurrency ratio: {ratio:.2f}x ({CONCURRENCY_NOTE})",
        f"Serial time ({serial_how}): {serial:.6f}s",
        f"True speedup: {speedup:.2f}x ({SPEEDUP_NOTE})",
    ]


HEALTH_HEADINGS = (
    ("excellent", "EXCELLENT PERFORMERS (>95% success):"),
    ("good", "GOOD PERFORMERS (>80% success):"),
    ("fair", "FAIR PERFORMERS (>50% success):"),
    ("poor", "POOR PERFORMERS (<=50% success):"),
)


def guard_house_lines(guard_house: Mapping[str, Any]) -> list[str]:
    """The seed's Guard House report, grouped by health."""
    methods = guard_house.get("methods", {})
    lines = [f"Guard House: {guard_house.get('mode', '?')} mode, "
             f"{guard_house.get('methods_tracked', 0)} methods tracked, "
             f"{guard_house.get('executions', 0)} executions, "
             f"blocked: {', '.join(guard_house.get('blocked', [])) or 'none'}"]
    for health, heading in HEALTH_HEADINGS:
        group = {name: m for name, m in methods.items() if m["health"] == health}
        if not group:
            continue
        lines += [heading, "─" * 37]
        width = max(len(name.rpartition(":")[2]) for name in group)
        for name, m in sorted(group.items(), key=lambda item: -item[1]["attempts"]):
            rate = 100.0 - m["failure_rate"]
            lines.append(f"{name.rpartition(':')[2]:<{width}}  Rate: {rate:.1f}% "
                         f"({m['successes']}/{m['attempts']})  Avg: {m['mean_time']:.4f}s")
    return lines
