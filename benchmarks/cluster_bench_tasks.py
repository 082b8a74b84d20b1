"""Tasks of the cluster benchmarks; agents import this module (``--include cluster_bench_tasks``
for ``cluster_bench.py``, ``--include benchmarks.cluster_bench_tasks`` for the harness)."""

from __future__ import annotations

import time

from benchmarks.bench_tasks import plain_spin as spin_plain
from tokengate.decorator import task_token_guard

__all__ = ["nap", "noop", "spin", "spin_plain"]


@task_token_guard(operation_type="bench_noop", tags={"weight": "light"})
def noop() -> None:
    return None


@task_token_guard(operation_type="bench_spin", tags={"weight": "heavy"})
def spin(n: int) -> int:
    """CPU-bound pure Python: only processes (here, the two agents) run it in parallel."""
    return spin_plain(n)


@task_token_guard(operation_type="bench_nap", tags={"weight": "light"})
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
