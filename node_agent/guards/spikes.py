"""Spike detector: flags a call whose predicted cost is far above its function's history.

A call's predicted cost is its function's static complexity score (see :mod:`.inspector`)
scaled by the size of its arguments (numbers by magnitude, sequences by length), on a log scale
so ordinary variation does not count:

    predicted = score * (1 + log2(1 + magnitude(args, kwargs)))

Each function keeps the running mean of the predicted costs of its accepted calls. Once a
function has ``warmup`` calls of history, a call whose deviation from that mean,
``(predicted - mean) / mean``, exceeds ``threshold`` is a spike: the guard quarantines it
instead of running it (see :mod:`.quarantine`). Spikes do not enter the history.

Policy and arithmetic are pure; :class:`SpikeDetector` owns the per-function histories.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MAX_ITEMS = 1000     # items of one container looked at when measuring arguments
MAX_DEPTH = 4        # nesting levels looked at


@dataclass(frozen=True, slots=True, kw_only=True)
class SpikePolicy:
    """How far above its history a call must be to be a spike."""

    threshold: float = 3.0   # deviation (3.0 = 300 % above the mean)
    warmup: int = 20         # calls of history needed before judging


@dataclass(frozen=True, slots=True)
class CostHistory:
    """Running mean of one function's predicted costs."""

    count: int = 0
    mean: float = 0.0

    def updated(self, cost: float) -> CostHistory:
        count = self.count + 1
        return CostHistory(count, self.mean + (cost - self.mean) / count)


@dataclass(frozen=True, slots=True)
class SpikeVerdict:
    """The detector's judgement of one call."""

    spike: bool
    predicted: float
    historical_mean: float
    deviation: float  # (predicted - mean) / mean; 0.0 with no history


MAX_VISITS = 10_000  # values looked at per call, in all


def _items(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for key, item in itertools.islice(value.items(), MAX_ITEMS):
            yield key
            yield item
        return
    yield from itertools.islice(value, MAX_ITEMS)


def _scalar(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return 1.0
    if isinstance(value, int | float):
        return abs(float(value)) if math.isfinite(value) else 1.0
    if isinstance(value, str | bytes | bytearray | memoryview):
        return float(len(value))
    return None


def magnitude(value: Any) -> float:
    """How big an argument is: |number|, length of text, length plus contents of containers.

    Looks at most :data:`MAX_ITEMS` items per container, :data:`MAX_DEPTH` levels deep and
    :data:`MAX_VISITS` values in all, so measuring a huge argument stays cheap.
    """
    total = 0.0
    stack: list[tuple[Any, int]] = [(value, 0)]
    visits = 0
    while stack and visits < MAX_VISITS:
        item, depth = stack.pop()
        visits += 1
        size = _scalar(item)
        if size is not None:
            total += size
        elif isinstance(item, list | tuple | set | frozenset | dict):
            total += float(len(item))
            if depth < MAX_DEPTH:
                stack.extend((child, depth + 1) for child in _items(item))
        else:
            total += 1.0
    return total


def predicted_cost(score: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    size = magnitude(list(args)) + magnitude(kwargs)
    return score * (1.0 + math.log2(1.0 + size))


def judge(history: CostHistory, predicted: float, policy: SpikePolicy) -> SpikeVerdict:
    """Whether a call of ``predicted`` cost is a spike against ``history``."""
    if history.count < policy.warmup or history.mean <= 0.0:
        return SpikeVerdict(False, predicted, history.mean, 0.0)
    deviation = (predicted - history.mean) / history.mean
    return SpikeVerdict(deviation > policy.threshold, predicted, history.mean, deviation)


class SpikeDetector:
    """Owns each function's cost history; :meth:`assess` judges a call and learns from it."""

    def __init__(self, policy: SpikePolicy | None = None) -> None:
        self.policy = policy or SpikePolicy()
        self._history_lock = threading.Lock()  # guards _history
        self._history: dict[str, CostHistory] = {}

    def assess(self, name: str, score: float, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> SpikeVerdict:
        """Judge one call; an accepted call joins the function's history, a spike does not."""
        predicted = predicted_cost(score, args, kwargs)
        with self._history_lock:
            history = self._history.get(name, CostHistory())
            verdict = judge(history, predicted, self.policy)
            if not verdict.spike:
                self._history[name] = history.updated(predicted)
        return verdict

    def history(self, name: str) -> CostHistory:
        return self._history.get(name, CostHistory())

    def snapshot(self) -> dict[str, Any]:
        with self._history_lock:
            items = sorted(self._history.items())
        return {
            "threshold": self.policy.threshold,
            "warmup": self.policy.warmup,
            "functions": {name: {"calls": h.count, "mean_cost": round(h.mean, 3)}
                          for name, h in items},
        }
