"""Tasks of the async tests (agents import this module with ``--include async_tasks``)."""

from __future__ import annotations

import time

from tokengate.decorator import task_token_guard


@task_token_guard(operation_type="nap", tags={"weight": "light"})
def nap(index: int) -> int:
    """Sleep a millisecond, then echo the index."""
    time.sleep(0.001)
    return index


@task_token_guard(operation_type="refuse", tags={"weight": "light"})
def refuse(index: int) -> int:
    raise ValueError(f"refused {index}")
