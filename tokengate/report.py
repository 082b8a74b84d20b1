"""Seed-style summaries of a finished run: latency percentiles and per-operation bars.

Pure formatting: lists of numbers and counts in, lines of text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

BAR_WIDTH = 60


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[rank]


def latency_lines(latencies: Sequence[float]) -> list[str]:
    ordered = sorted(latencies)
    return [
        f"Latency p50 : {percentile(ordered, 0.50):.4f}s",
        f"Latency p95 : {percentile(ordered, 0.95):.4f}s",
        f"Latency max : {(ordered[-1] if ordered else 0.0):.4f}s",
    ]


def bar_lines(counts: Mapping[str, int], width: int = BAR_WIDTH) -> list[str]:
    if not counts:
        return []
    top = max(counts.values()) or 1
    name_width = max(len(name) for name in counts)
    return [
        f"  {name:<{name_width}} {count:>6} {'█' * max(1, round(width * count / top))}"
        for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
