"""Tasks of the chaos soak (``python -m benchmarks.chaos``); agents load them with
``--include benchmarks.chaos_tasks``.

Every task first appends one line ``seq pid unix-time`` to the file its caller names (one
``O_APPEND`` write per execution, atomic across processes), then works for ``ms``
milliseconds and returns :func:`expected` of its arguments, so the soak counts runs on disk
and checks each result by value. Three weights, each in an idempotent and a never-twice
(``idempotent: False``) flavour.
"""

from __future__ import annotations

import os
import time

from tokengate.decorator import task_token_guard

SALT = {"light": 11, "medium": 23, "heavy": 37}


def expected(weight: str, seq: int, x: int) -> int:
    """The result every task of ``weight`` returns for ``(seq, x)``; the never-twice flavour
    returns the same."""
    return (seq * 7919 + x * 31 + SALT[weight]) % 1_000_003


def record_run(log: str, seq: int) -> None:
    """One line per execution: ``seq pid time``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{seq} {os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


def _work(ms: float, spin: int = 0) -> None:
    acc = 0
    for i in range(spin):  # a little CPU, as heavy work has
        acc = (acc + i * i) % 1_000_003
    time.sleep(ms / 1000.0)


def _light(log: str, seq: int, x: int, ms: float) -> int:
    record_run(log, seq)
    _work(ms)
    return expected("light", seq, x)


def _medium(log: str, seq: int, x: int, ms: float) -> int:
    record_run(log, seq)
    _work(ms, spin=2_000)
    return expected("medium", seq, x)


def _heavy(log: str, seq: int, x: int, ms: float) -> int:
    record_run(log, seq)
    _work(ms, spin=20_000)
    return expected("heavy", seq, x)


@task_token_guard(operation_type="chaos_light", tags={"weight": "light"})
def light(log: str, seq: int, x: int, ms: float) -> int:
    return _light(log, seq, x, ms)


@task_token_guard(operation_type="chaos_medium", tags={"weight": "medium"})
def medium(log: str, seq: int, x: int, ms: float) -> int:
    return _medium(log, seq, x, ms)


@task_token_guard(operation_type="chaos_heavy", tags={"weight": "heavy"})
def heavy(log: str, seq: int, x: int, ms: float) -> int:
    return _heavy(log, seq, x, ms)


@task_token_guard(operation_type="chaos_light_once",
                  tags={"weight": "light", "idempotent": False})
def light_once(log: str, seq: int, x: int, ms: float) -> int:
    return _light(log, seq, x, ms)


@task_token_guard(operation_type="chaos_medium_once",
                  tags={"weight": "medium", "idempotent": False})
def medium_once(log: str, seq: int, x: int, ms: float) -> int:
    return _medium(log, seq, x, ms)


@task_token_guard(operation_type="chaos_heavy_once",
                  tags={"weight": "heavy", "idempotent": False})
def heavy_once(log: str, seq: int, x: int, ms: float) -> int:
    return _heavy(log, seq, x, ms)


# name -> (decorated function, weight, idempotent)
TASKS = {
    "light": (light, "light", True),
    "medium": (medium, "medium", True),
    "heavy": (heavy, "heavy", True),
    "light_once": (light_once, "light", False),
    "medium_once": (medium_once, "medium", False),
    "heavy_once": (heavy_once, "heavy", False),
}
