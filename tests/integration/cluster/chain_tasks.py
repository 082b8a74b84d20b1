"""Tasks of the chain and nested-task tests (agents load them with ``--include chain_tasks``)."""

from __future__ import annotations

import time

from tokengate.decorator import task_token_guard


@task_token_guard(operation_type="chain_step", tags={"weight": "light"})
def step(value: int) -> int:
    """One short step of a chain: a little wait, then the value plus one."""
    time.sleep(0.002)
    return value + 1


@task_token_guard(operation_type="nested_child", tags={"weight": "light"})
def child(value: int) -> int:
    return value * 2


@task_token_guard(operation_type="nested_parent", tags={"weight": "medium"})
def parent(count: int) -> int:
    """Submit ``count`` children from inside a task (nested) and sum their results."""
    tokens = [child(i) for i in range(count)]
    return sum(token.get(timeout=20) for token in tokens)
