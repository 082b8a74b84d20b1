"""Decorated functions the benchmarks run (importable, so process mode can find them)."""

import time

from tokengate import task_token_guard


def plain_noop():
    return None


@task_token_guard(operation_type="noop", tags={"weight": "heavy"})
def noop():
    return None


def plain_spin(iterations: int) -> int:
    acc = 0
    for i in range(iterations):
        acc = (acc * 31 + i) % 1_000_003
    return acc


@task_token_guard(operation_type="spin", tags={"weight": "heavy", "execution": "process"})
def spin(iterations: int) -> int:
    return plain_spin(iterations)


@task_token_guard(operation_type="spin_thread", tags={"weight": "heavy"})
def spin_thread(iterations: int) -> int:
    return plain_spin(iterations)


@task_token_guard(operation_type="nap", tags={"weight": "heavy"})
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
