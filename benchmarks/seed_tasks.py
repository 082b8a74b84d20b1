"""Decorated functions of the seed's benchmark suites (module-level: process mode imports them)."""

from __future__ import annotations

import math
import time

from tokengate import task_token_guard


def plain_work(iterations: int) -> int:
    """Fixed pure-Python CPU work; the undecorated body the serial baselines run."""
    acc = 0
    for i in range(iterations):
        acc = (acc * 31 + i) % 1_000_003
    return acc


@task_token_guard(operation_type="burst_medium", tags={"weight": "medium"})
def burst_medium(iterations: int) -> int:
    """The seed's burst task: medium weight, on a worker thread."""
    return plain_work(iterations)


@task_token_guard(operation_type="burst_parallel",
                  tags={"weight": "heavy", "execution": "process"})
def burst_parallel(iterations: int) -> int:
    """The same work in the core's worker process: parallel despite the GIL."""
    return plain_work(iterations)


@task_token_guard(operation_type="chain_start", tags={"weight": "light"})
def chain_start(chain_id: int) -> dict:
    return {"chain": chain_id, "value": chain_id * 331 + 7}


@task_token_guard(operation_type="chain_scale", tags={"weight": "medium"})
def chain_scale(state: dict) -> dict:
    return {**state, "value": state["value"] * 10}


@task_token_guard(operation_type="chain_finish", tags={"weight": "light"})
def chain_finish(state: dict) -> dict:
    value = state["value"] - state["value"] % 10
    return {f"parallel_chain_{state['chain']}": value,
            "parity": "even" if value % 2 == 0 else "odd"}


@task_token_guard(operation_type="series_long", tags={"weight": "heavy"})
def series_long(duration: float = 1.0) -> tuple[float, float]:
    """Holds a worker for ``duration`` seconds of wall time (the seed's saturation task).

    Returns its result and the CPU time this thread really got: under the GIL, eight such
    tasks "run" for a second each while sharing the process's CPU.
    """
    end = time.monotonic() + duration
    cpu_start = time.thread_time()
    acc, step = 2.0, 0
    while time.monotonic() < end:
        acc = math.sqrt(abs(math.cos(acc))) + math.log(step + 2)
        step += 1
    return round(acc, 6), time.thread_time() - cpu_start
