"""Tasks that write to a (pretend) shared storage; agents import them with
``--include storage_tasks``. Each call appends an enter and an exit mark to one file with
O_APPEND (each mark one atomic write), so the file's order is the order calls really began
and ended, across processes: the test reads the most writers that were in at once."""

from __future__ import annotations

import os
import time

from tokengate.decorator import task_token_guard


def _mark(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@task_token_guard(operation_type="slow_write", tags={"weight": "light", "storage_speed": "SLOW"})
def slow_write(path: str, seconds: float, tag: int = 0) -> int:
    _mark(path, f"+ {tag} {os.getpid()}\n")
    time.sleep(seconds)
    _mark(path, f"- {tag} {os.getpid()}\n")
    return tag


def most_at_once(path: str) -> tuple[int, int]:
    """The most calls in at once, and the most distinct agent processes in at once."""
    inside: dict[str, str] = {}
    most = most_pids = 0
    with open(path, encoding="utf-8") as marks:
        for line in marks:
            sign, tag, pid = line.split()
            if sign == "+":
                inside[tag] = pid
            else:
                inside.pop(tag, None)
            most = max(most, len(inside))
            most_pids = max(most_pids, len(set(inside.values())))
    return most, most_pids
