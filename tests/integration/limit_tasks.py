"""Decorated functions the time-limit and enqueue tests run.

They live in an importable module so process-mode tasks resolve by name in worker processes.
Gates and records are controlled by the tests (one test at a time uses them).
"""

import os
import threading
import time

from tokengate import task_token_guard

gate = threading.Event()       # what hung and gated tasks wait for
entered = threading.Event()    # set when a hung task has started
returned = threading.Event()   # set when a hung task's call has returned (late)
ran: list[str] = []
children: list = []            # tokens parent_of_hang submitted
ran_lock = threading.Lock()


def reset() -> None:
    gate.clear()
    entered.clear()
    returned.clear()
    with ran_lock:
        ran.clear()
    children.clear()


def _note(name: str) -> None:
    with ran_lock:
        ran.append(name)


@task_token_guard(operation_type="hang", tags={"weight": "heavy", "timeout": 0.3})
def hang(name: str) -> str:
    """Runs past its 0.3 s limit until the test opens the gate."""
    _note(name)
    entered.set()
    try:
        gate.wait(30)
        return f"late {name}"
    finally:
        returned.set()


@task_token_guard(operation_type="hang_then_fail", tags={"weight": "heavy", "timeout": 0.3})
def hang_then_fail(name: str) -> None:
    """Like hang, but raises once it is let go: the late error must change nothing either."""
    entered.set()
    try:
        gate.wait(30)
        raise OSError(f"late failure of {name}")
    finally:
        returned.set()


@task_token_guard(operation_type="in_time", tags={"weight": "heavy", "timeout": 5})
def in_time(name: str) -> str:
    _note(name)
    return name


@task_token_guard(operation_type="quick", tags={"weight": "heavy"})
def quick(name: str) -> str:
    _note(name)
    return name


@task_token_guard(operation_type="gated", tags={"weight": "heavy"})
def gated(name: str) -> str:
    """Waits for the test's gate, then records its name (in run order)."""
    entered.set()
    gate.wait(30)
    _note(name)
    return name


@task_token_guard(operation_type="gated_light", tags={"weight": "light"})
def gated_light(name: str) -> str:
    """gated, for the light class (never on core 1 of two)."""
    entered.set()
    gate.wait(30)
    _note(name)
    return name


@task_token_guard(operation_type="parent_of_hang", tags={"weight": "heavy"})
def parent_of_hang(name: str) -> str:
    """Waits on a child past its time limit: the child runs inline on this worker."""
    child = hang(f"{name}-child")
    children.append(child)
    try:
        child.get(timeout=30)
    except Exception as exc:
        return f"{name} saw {type(exc).__name__}"
    return f"{name} saw no error"


@task_token_guard(operation_type="sleep_forever",
                  tags={"weight": "heavy", "execution": "process", "timeout": 0.5})
def sleep_forever() -> int:
    """A process-mode call that never returns by itself."""
    time.sleep(3600)
    return os.getpid()


@task_token_guard(operation_type="pid", tags={"weight": "heavy", "execution": "process"})
def pid() -> int:
    return os.getpid()


@task_token_guard(operation_type="pid_in_time",
                  tags={"weight": "heavy", "execution": "process", "timeout": 10})
def pid_in_time() -> int:
    return os.getpid()


@task_token_guard(operation_type="pid_tight_limit",
                  tags={"weight": "heavy", "execution": "process", "timeout": 0.1})
def pid_tight_limit() -> int:
    return os.getpid()


@task_token_guard(operation_type="slow_writer", tags={"weight": "heavy", "storage_speed": "SLOW"})
def slow_writer(name: str) -> str:
    """Holds one of the SLOW tier's 10 writer slots until the gate opens."""
    gate.wait(30)
    _note(name)
    return name


@task_token_guard(operation_type="slow_in_time",
                  tags={"weight": "heavy", "storage_speed": "SLOW", "timeout": 0.3})
def slow_in_time(name: str) -> str:
    _note(name)
    return name
