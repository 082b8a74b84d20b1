"""Decorated functions the embedded integration tests run.

They live in an importable module so process-mode tasks can be resolved by name in the
worker processes.
"""

import os
import threading
import time

from tokengate import task_token_guard

# Test-controlled gates and probes (one test at a time uses them).
gate = threading.Event()
ran: list[str] = []
probe_lock = threading.Lock()
probe = {"active": 0, "peak": 0}


def reset_probe() -> None:
    with probe_lock:
        probe.update(active=0, peak=0)
    ran.clear()
    gate.clear()


@task_token_guard(operation_type="affinity", tags={"weight": "heavy"})
def affinity_heavy():
    return sorted(os.sched_getaffinity(0))


@task_token_guard(operation_type="affinity", tags={"weight": "medium"})
def affinity_medium():
    return sorted(os.sched_getaffinity(0))


@task_token_guard(operation_type="affinity", tags={"weight": "light"})
def affinity_light():
    return sorted(os.sched_getaffinity(0))


@task_token_guard(operation_type="slow_writer", tags={"weight": "heavy", "storage_speed": "slow"})
def slow_writer(seconds: float) -> int:
    with probe_lock:
        probe["active"] += 1
        probe["peak"] = max(probe["peak"], probe["active"])
    try:
        time.sleep(seconds)
    finally:
        with probe_lock:
            probe["active"] -= 1
    return 1


@task_token_guard(operation_type="blocker", tags={"weight": "heavy"})
def blocker(name: str, timeout: float = 30.0) -> str:
    ran.append(name)
    if not gate.wait(timeout):
        raise TimeoutError("gate never opened")
    return name


@task_token_guard(operation_type="record", tags={"weight": "heavy"})
def record(name: str) -> str:
    ran.append(name)
    return name


@task_token_guard(operation_type="small_sleep", tags={"weight": "heavy"})
def small_sleep(value: int, seconds: float = 0.001) -> int:
    time.sleep(seconds)
    return value * 2


@task_token_guard(operation_type="fail", tags={"weight": "light"})
def fail(message: str) -> None:
    raise ValueError(message)


@task_token_guard(operation_type="chain_step", tags={"weight": "medium"})
def chain_step(state: dict) -> dict:
    time.sleep(0.002)
    return {**state, "steps": [*state["steps"], len(state["steps"])]}


@task_token_guard(operation_type="child", tags={"weight": "heavy"})
def child(value: int) -> int:
    return value + 1


@task_token_guard(operation_type="parent", tags={"weight": "heavy"})
def parent(value: int, fan_out: int) -> int:
    tokens = [child(value + i) for i in range(fan_out)]
    return sum(token.get(timeout=30) for token in tokens)


@task_token_guard(operation_type="grandparent", tags={"weight": "heavy"})
def grandparent(fan_out: int) -> int:
    tokens = [parent(i, fan_out) for i in range(fan_out)]
    return sum(token.get(timeout=30) for token in tokens)


@task_token_guard(operation_type="spin", tags={"weight": "heavy", "execution": "process"})
def spin(iterations: int) -> dict:
    """Pure-Python CPU work in a worker process; reports where and when it ran."""
    started = time.time()
    acc = 0
    for i in range(iterations):
        acc = (acc * 31 + i) % 1_000_003
    return {"pid": os.getpid(), "cpus": sorted(os.sched_getaffinity(0)),
            "start": started, "end": time.time(), "acc": acc}


@task_token_guard(operation_type="quitter", tags={"weight": "heavy"})
def quitter() -> None:
    raise SystemExit(3)
