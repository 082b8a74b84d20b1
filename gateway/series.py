"""Per-second figures of the last ten minutes, for charts: throughput and latency.

Owner of one ring of buckets, guarded by ``_lock``. Results add what they stored (with each
token's time from creation to stored outcome), admission what it accepted. A second's p50 and
p95 come from at most ``SAMPLE`` latencies of that second (an even sample when more finished).
Kept in memory only: a restarted gateway starts a new series.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

KEEP_SECONDS = 600
SAMPLE = 256
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class Bucket:
    second: int
    completed: int = 0
    failed: int = 0
    submitted: int = 0
    seen: int = 0  # latencies offered (the sample keeps every k-th)
    latencies: list[float] = field(default_factory=list)

    def add_latency(self, value: float) -> None:
        self.seen += 1
        if len(self.latencies) < SAMPLE:
            self.latencies.append(value)
        elif self.seen % max(1, self.seen // SAMPLE) == 0:
            self.latencies[self.seen % SAMPLE] = value


@dataclass(frozen=True, slots=True)
class Point:
    t: float
    completed: int
    failed: int
    submitted: int
    p50: float
    p95: float


def quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Series:
    def __init__(self, keep: int = KEEP_SECONDS) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._buckets: dict[int, Bucket] = {}
        # Since start, for /metrics: a latency histogram (counts per bucket, then the sum).
        self._histogram = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._totals = {"completed": 0, "failed": 0, "submitted": 0}

    def _bucket(self, now: float) -> Bucket:
        second = int(now)
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = Bucket(second)
            for old in [s for s in self._buckets if s <= second - self._keep]:
                del self._buckets[old]
        return bucket

    def finished(self, outcomes: Iterable[tuple[bool, float]], now: float | None = None) -> None:
        """Outcomes stored: (completed?, seconds from creation; 0 if unknown)."""
        now = time.time() if now is None else now
        with self._lock:
            bucket = self._bucket(now)
            for ok, latency in outcomes:
                if ok:
                    bucket.completed += 1
                    self._totals["completed"] += 1
                else:
                    bucket.failed += 1
                    self._totals["failed"] += 1
                if latency > 0:
                    bucket.add_latency(latency)
                    self._histogram[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1
                    self._latency_sum += latency

    def submitted(self, count: int, now: float | None = None) -> None:
        with self._lock:
            self._bucket(time.time() if now is None else now).submitted += count
            self._totals["submitted"] += count

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._totals)

    def histogram(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative (upper bound, count) pairs ending with +Inf, and the sum."""
        with self._lock:
            counts, total = list(self._histogram), self._latency_sum
        pairs, running = [], 0
        for bound, n in zip([*map(str, LATENCY_BUCKETS), "+Inf"], counts, strict=True):
            running += n
            pairs.append((bound, running))
        return pairs, total

    def points(self, seconds: int = KEEP_SECONDS, since: float = 0.0,
               now: float | None = None) -> list[Point]:
        """Complete seconds only (the current one is still filling), oldest first."""
        current = int(time.time() if now is None else now)
        first = max(current - min(seconds, self._keep), int(since) + 1 if since else 0)
        with self._lock:
            buckets = [self._buckets[s] for s in sorted(self._buckets) if first <= s < current]
            return [Point(float(b.second), b.completed, b.failed, b.submitted,
                          quantile(b.latencies, 0.5), quantile(b.latencies, 0.95))
                    for b in buckets]
