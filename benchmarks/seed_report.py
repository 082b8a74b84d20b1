"""Formatting shared by the seed's suites: duration spreads and the two ratios (the Guard House
report is the package's: ``coord.guard_report()``, :mod:`tokengate.guard_report`).

Pure: numbers in, lines of text out. The seed's "concurrency ratio" (sum of task durations /
wall) counts overlap, so it reads 5-7x for threads that share one GIL; true speedup (serial
time of the same calls / wall) is the figure that measures parallelism. Both are printed.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

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
