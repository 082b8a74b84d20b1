"""The task bodies every system runs, so every system runs the same function shapes.

Plain functions: the peers (Dask, Ray, Celery, Dramatiq) and ThreadPoolExecutor run them as
they are; TokenGate runs the same bodies behind ``@task_token_guard`` (``bench_tasks``,
``cluster_bench_tasks``, ``tokengate.workloads``).
"""

from __future__ import annotations

import time

from benchmarks.bench_tasks import plain_spin
from tokengate.workloads import MIXED_OPERATIONS


def noop() -> None:
    return None


def spin(iterations: int) -> int:
    """Pure-Python CPU work (the GIL keeps threads of one process from running it at once)."""
    return plain_spin(iterations)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def mixed(index: int, argument: float) -> object:
    """Operation ``index`` of the seed's mixed orchestrator (``MIXED_OPERATIONS``), plain."""
    return MIXED_OPERATIONS[index][0].__wrapped__(argument)
