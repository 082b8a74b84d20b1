"""The task of ``benchmarks/async_bench.py`` (agents import it with ``--include``)."""

from __future__ import annotations

import time

from tokengate.decorator import task_token_guard


@task_token_guard(operation_type="bench_tick", tags={"weight": "light"})
def tick(index: int) -> int:
    """Sleep a millisecond (a short I/O wait), then echo the index."""
    time.sleep(0.001)
    return index
