"""How long each kind of task runs, as the agents report it: the prediction behind chunking.

Agents report every outcome with the times its call started and finished (agent clock, both
ends on the same host). :class:`RunTimes` keeps the last ``WINDOW`` run times per
``operation_type`` and predicts a token's cost for :func:`~tokengate.gateway.placement.assign`:
their mean without the slowest ``TRIM`` (on a crowded host a worker thread preempted in the
middle of a no-op shows a run 100x its usual; a kind whose long runs are more than that share
of its calls stays long), plus what an agent spends on a token around the call (taking it
from its mailbox, recording its outcome, framing it). A kind seen fewer than ``MIN_RUNS``
times is ``inf``: never chunked, spread as before.

Owned by the event loop with the dispatch book (no locks). Bounded: past ``MAX_KINDS`` kinds
new ones are not learned (they stay unknown, so they are spread, which is always safe).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence

from tokengate.shared.rpc import tokengate_pb2 as pb

WINDOW = 64             # run times kept per kind
TRIM = 8                # the slowest this many of a full window are left out of the mean
MIN_RUNS = 8            # fewer known runs: unknown
AROUND_CALL = 40e-6     # seconds an agent spends on a no-op token besides the call (measured)
MAX_KINDS = 4096
MAX_RUN = 3600.0        # a longer figure is a clock step, not a run


def trimmed_mean(runs: Iterable[float]) -> float:
    """Mean without the slowest ``TRIM / WINDOW`` of ``runs``."""
    ordered = sorted(runs)
    keep = len(ordered) - len(ordered) * TRIM // WINDOW
    return sum(ordered[:keep]) / keep


class RunTimes:
    """Recent run times per operation type, and the cost each predicts."""

    def __init__(self) -> None:
        self._runs: dict[str, deque[float]] = {}
        self._cost: dict[str, float] = {}

    def observe(self, results: Iterable[pb.ResultItem]) -> None:
        """Learn from one agent frame's outcomes."""
        changed = set()
        for item in results:
            if item.started_at <= 0 or not item.operation_type:
                continue  # it never ran (killed, refused): says nothing about run time
            run = item.finished_at - item.started_at
            if not 0 <= run <= MAX_RUN:
                continue
            runs = self._runs.get(item.operation_type)
            if runs is None:
                if len(self._runs) >= MAX_KINDS:
                    continue
                runs = self._runs[item.operation_type] = deque(maxlen=WINDOW)
            runs.append(run)
            changed.add(item.operation_type)
        for kind in changed:
            runs = self._runs[kind]
            if len(runs) >= MIN_RUNS:
                self._cost[kind] = trimmed_mean(runs) + AROUND_CALL

    def cost(self, kind: str) -> float:
        """Predicted seconds of agent time for one token of ``kind`` (``inf``: unknown)."""
        return self._cost.get(kind, math.inf)

    def costs(self, kinds: Sequence[str]) -> list[float]:
        cost = self._cost
        return [cost.get(kind, math.inf) for kind in kinds]
