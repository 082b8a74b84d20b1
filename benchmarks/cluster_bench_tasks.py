"""Tasks of the cluster benchmark; agents import this module (``--include cluster_bench_tasks``)."""

from __future__ import annotations

from tokengate.decorator import task_token_guard


@task_token_guard(operation_type="bench_noop", tags={"weight": "light"})
def noop() -> None:
    return None


def spin_plain(n: int) -> int:
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


@task_token_guard(operation_type="bench_spin", tags={"weight": "heavy"})
def spin(n: int) -> int:
    """CPU-bound pure Python: only processes run it in parallel."""
    return spin_plain(n)
