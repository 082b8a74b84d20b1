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
