"""Tasks the cluster cancel tests run; agents import this module with
``--include cancel_cluster_tasks``. They tell the test what they did through files in
``dirpath`` (the agents are other processes)."""

import os
import time
from pathlib import Path

from tokengate import current_token, task_token_guard


def _mark(dirpath: str, name: str, text: str = "") -> None:
    Path(dirpath, name).write_text(text or str(os.getpid()))


@task_token_guard(operation_type="loop_until_cancelled", tags={"weight": "light"})
def loop_until_cancelled(dirpath: str, key: str) -> str:
    token = current_token()
    assert token is not None
    _mark(dirpath, f"{key}.started")
    loops = 0
    while not token.wait_cancelled(0.02):
        loops += 1
        if loops > 3000:  # a minute: the test gave up; do not hold the worker for ever
            return "never cancelled"
    _mark(dirpath, f"{key}.stopped")
    return "stopped"


@task_token_guard(operation_type="spin_in_process",
                  tags={"weight": "light", "execution": "process"})
def spin_in_process(dirpath: str, key: str) -> None:
    _mark(dirpath, f"{key}.started")
    deadline = time.monotonic() + 60  # never looks: only killing its process stops it sooner
    while time.monotonic() < deadline:
        time.sleep(0.02)


@task_token_guard(operation_type="process_pid", tags={"weight": "light", "execution": "process"})
def process_pid() -> int:
    return os.getpid()
