"""Tasks the cluster tests run; agents import this module with ``--include cluster_tasks``."""

from __future__ import annotations

import os
import threading
import time

from tokengate.decorator import task_token_guard


@task_token_guard(operation_type="add", tags={"weight": "light"})
def add(a: int, b: int) -> int:
    return a + b


@task_token_guard(operation_type="noop", tags={"weight": "light"})
def noop() -> None:
    return None


@task_token_guard(operation_type="where", tags={"weight": "medium"})
def where(tag: int = 0) -> dict:
    """Report where it ran: node pid and thread, and echo the tag."""
    return {"pid": os.getpid(), "thread": threading.current_thread().name, "tag": tag}


@task_token_guard(operation_type="heavy_where", tags={"weight": "heavy"})
def heavy_where(tag: int = 0) -> dict:
    return {"pid": os.getpid(), "tag": tag}


@task_token_guard(operation_type="sleepy", tags={"weight": "medium"})
def sleepy(seconds: float, tag: int = 0) -> int:
    time.sleep(seconds)
    return tag


@task_token_guard(operation_type="sleepy_once", tags={"weight": "medium", "idempotent": False})
def sleepy_once(seconds: float, tag: int = 0) -> int:
    time.sleep(seconds)
    return tag


@task_token_guard(operation_type="boom", tags={"weight": "light"})
def boom(message: str) -> None:
    raise ValueError(message)


class ShapeError(Exception):
    """An exception type only the agents know: clients get it as TaskFailed, name kept."""


@task_token_guard(operation_type="custom_boom", tags={"weight": "light"})
def custom_boom(message: str) -> None:
    raise ShapeError(message)


@task_token_guard(operation_type="spin", tags={"weight": "heavy"})
def spin(n: int) -> int:
    """CPU-bound pure Python."""
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


@task_token_guard(operation_type="unencodable", tags={"weight": "light"})
def unencodable() -> object:
    return object()


@task_token_guard(operation_type="mark_and_sleep", tags={"weight": "medium"})
def mark_and_sleep(path: str, seconds: float) -> str:
    """Create ``path`` when it starts (tests wait on it), then hold its worker."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(str(os.getpid()))
    time.sleep(seconds)
    return path


@task_token_guard(operation_type="mark_and_sleep_once",
                  tags={"weight": "medium", "idempotent": False})
def mark_and_sleep_once(path: str, seconds: float) -> str:
    """Like mark_and_sleep, but must never run twice."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(str(os.getpid()))
    time.sleep(seconds)
    return path


@task_token_guard(operation_type="size_of", tags={"weight": "light"})
def size_of(data: bytes) -> int:
    return len(data)


# -- side effects and gates ------------------------------------------------------------------
# A run is counted by its side effect, never by what a client saw: each run appends one line
# (its pid) to ``dirpath/key`` (O_APPEND, one write: lines never interleave). A gated task
# records its run first, then waits until the test creates the ``gate`` file, so a test holds
# work for exactly as long as it chooses (the cap only stops a forgotten gate).

GATE_POLL = 0.005
GATE_CAP = 60.0


def _record_run(dirpath: str, key: str) -> None:
    fd = os.open(os.path.join(dirpath, key), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _wait_for_gate(gate: str, cap: float) -> None:
    deadline = time.monotonic() + cap
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} stayed closed for {cap}s")
        time.sleep(GATE_POLL)


def _recorded(dirpath: str, key: str, seconds: float) -> str:
    """Record the run, then take ``seconds``; the task's result is its key."""
    _record_run(dirpath, key)
    if seconds:
        time.sleep(seconds)
    return key


def _held(dirpath: str, key: str, gate: str, cap: float) -> str:
    """Record the run, then hold the worker until ``gate`` exists; the result is the key."""
    _record_run(dirpath, key)
    _wait_for_gate(gate, cap)
    return key


@task_token_guard(operation_type="record", tags={"weight": "medium"})
def record(dirpath: str, key: str, seconds: float = 0.0) -> str:
    return _recorded(dirpath, key, seconds)


@task_token_guard(operation_type="record_once", tags={"weight": "medium", "idempotent": False})
def record_once(dirpath: str, key: str, seconds: float = 0.0) -> str:
    """Like record, but must never run twice."""
    return _recorded(dirpath, key, seconds)


@task_token_guard(operation_type="record_heavy", tags={"weight": "heavy"})
def record_heavy(dirpath: str, key: str, seconds: float = 0.0) -> str:
    return _recorded(dirpath, key, seconds)


@task_token_guard(operation_type="record_light", tags={"weight": "light"})
def record_light(dirpath: str, key: str, seconds: float = 0.0) -> str:
    return _recorded(dirpath, key, seconds)


@task_token_guard(operation_type="gated", tags={"weight": "medium"})
def gated(dirpath: str, key: str, gate: str, cap: float = GATE_CAP) -> str:
    """Record the run, then hold the worker until ``gate`` exists."""
    return _held(dirpath, key, gate, cap)


@task_token_guard(operation_type="gated_once", tags={"weight": "medium", "idempotent": False})
def gated_once(dirpath: str, key: str, gate: str, cap: float = GATE_CAP) -> str:
    """Like gated, but must never run twice."""
    return _held(dirpath, key, gate, cap)


@task_token_guard(operation_type="gated_heavy_once",
                  tags={"weight": "heavy", "idempotent": False})
def gated_heavy_once(dirpath: str, key: str, gate: str, cap: float = GATE_CAP) -> str:
    return _held(dirpath, key, gate, cap)


@task_token_guard(operation_type="gated_heavy", tags={"weight": "heavy"})
def gated_heavy(dirpath: str, key: str, gate: str, cap: float = GATE_CAP) -> str:
    return _held(dirpath, key, gate, cap)


@task_token_guard(operation_type="gated_light", tags={"weight": "light"})
def gated_light(dirpath: str, key: str, gate: str, cap: float = GATE_CAP) -> str:
    return _held(dirpath, key, gate, cap)


# SLOW storage: at most 10 of these write at once on an agent; an eleventh waits for a slot.
@task_token_guard(operation_type="slow_gated_once",
                  tags={"weight": "medium", "storage_speed": "SLOW", "idempotent": False})
def slow_gated_once(dirpath: str, key: str, gate: str, cap: float = GATE_CAP) -> str:
    return _held(dirpath, key, gate, cap)


@task_token_guard(operation_type="slow_record", tags={"weight": "medium", "storage_speed": "SLOW"})
def slow_record(dirpath: str, key: str) -> str:
    _record_run(dirpath, key)
    return key


@task_token_guard(operation_type="surrogate_boom", tags={"weight": "light"})
def surrogate_boom() -> None:
    """Fails with a message protobuf cannot carry as it is (a lone surrogate, as from
    ``os.fsdecode`` of a file name that is not UTF-8)."""
    raise ValueError("cannot open b\udcffd.txt")


@task_token_guard(operation_type="gated_boom", tags={"weight": "medium"})
def gated_boom(dirpath: str, key: str, gate: str, cap: float = GATE_CAP) -> None:
    """Record the run, hold the worker until ``gate`` exists, then fail (ValueError)."""
    _held(dirpath, key, gate, cap)
    raise ValueError(f"{key} failed on purpose")
