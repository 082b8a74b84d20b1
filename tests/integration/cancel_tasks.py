"""Tasks the cancel tests run (importable by name, so the process-mode one resolves in the
worker process)."""

import os
import threading
import time
from pathlib import Path

from tokengate import current_token, task_token_guard

started = threading.Event()   # the looping task is running
release = threading.Event()   # lets the task that never looks return
loops: list[int] = []         # iterations the looping task made (one entry per iteration)
stopped: list[str] = []       # tasks that saw the cancel and left their loop
returned: list[str] = []      # tasks that returned (whether or not anyone looked)


def reset() -> None:
    started.clear()
    release.clear()
    loops.clear()
    stopped.clear()
    returned.clear()


@task_token_guard(operation_type="cancel_loop", tags={"weight": "light"})
def loop_until_cancelled() -> str:
    token = current_token()
    assert token is not None, "a task runs with its token current"
    started.set()
    while not token.wait_cancelled(0.01):
        loops.append(1)
    stopped.append(token.token_id)
    return "stopped"


@task_token_guard(operation_type="cancel_blind", tags={"weight": "light"})
def never_looks() -> str:
    started.set()
    release.wait(30)
    returned.append("blind")
    return "a result nobody gets"


@task_token_guard(operation_type="cancel_proc", tags={"weight": "light", "execution": "process"})
def spin_in_process(pid_file: str) -> int:
    Path(pid_file).write_text(str(os.getpid()))
    while True:  # never looks: only killing its process stops it
        time.sleep(0.02)


@task_token_guard(operation_type="cancel_pid", tags={"weight": "light", "execution": "process"})
def process_pid() -> int:
    return os.getpid()
