"""Tasks of the defect 7-12 tests and reproductions; agents load them with
``--include faults2_tasks``.

Every task that matters to a count leaves a side effect: it appends one line (its tag) to a
file the caller names, once per execution, so a test counts runs on disk rather than trusting
what a client was told. Held work waits for a gate file the test creates (``gate``): no
sleep decides when it ends, and a gate that never opens fails the task (``GateTimeout``), so
no test whose gate stayed closed can pass on the task's result.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tokengate.shared.errors import InvalidTags

from tokengate.decorator import task_token_guard

GATE_LIMIT = 60.0  # a gated task fails after this long, so no test can leave one behind
GATE_POLL = 0.01


class GateTimeout(TimeoutError):
    """The test never opened the gate a task waited for."""


def record_run(log: str, tag: object) -> None:
    """Append one line to ``log``: one line per execution (O_APPEND writes are atomic)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{tag}\n".encode())
    finally:
        os.close(fd)


def wait_gate(gate: str, limit: float = GATE_LIMIT) -> None:
    """Hold the worker until the file ``gate`` exists (the test creates it); raise
    :class:`GateTimeout` if it does not within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    path = Path(gate)
    while not path.exists():
        if time.monotonic() > deadline:
            raise GateTimeout(f"gate {gate} stayed closed for {limit:g} s")
        time.sleep(GATE_POLL)


def _hold(gate: str, log: str, tag: object) -> object:
    record_run(log, tag)
    wait_gate(gate)
    return tag


@task_token_guard(operation_type="f2_gated_heavy", tags={"weight": "heavy"})
def gated_heavy(gate: str, log: str, tag: object = 0) -> object:
    return _hold(gate, log, tag)


@task_token_guard(operation_type="f2_gated_medium", tags={"weight": "medium"})
def gated_medium(gate: str, log: str, tag: object = 0) -> object:
    return _hold(gate, log, tag)


@task_token_guard(operation_type="f2_gated_light", tags={"weight": "light"})
def gated_light(gate: str, log: str, tag: object = 0) -> object:
    return _hold(gate, log, tag)


def _limited_tags(weight: str, seconds: float) -> dict[str, object]:
    """The ``timeout`` tag where this build knows it; without it where it does not yet, so
    the module still loads and the time-limit tests fail on behaviour, not on import."""
    tags: dict[str, object] = {"weight": weight, "timeout": seconds}
    try:
        from tokengate.shared.tags import parse_tags
        parse_tags(tags)
    except InvalidTags:
        tags.pop("timeout")
    return tags


TIME_LIMIT = 1.0
TIME_LIMIT_SUPPORTED = "timeout" in _limited_tags("heavy", TIME_LIMIT)


@task_token_guard(operation_type="f2_limited_heavy", tags=_limited_tags("heavy", TIME_LIMIT))
def limited_heavy(gate: str, log: str, tag: object = 0) -> object:
    """Held by a gate, with a time limit of TIME_LIMIT seconds."""
    return _hold(gate, log, tag)


@task_token_guard(operation_type="f2_limited_light", tags=_limited_tags("light", TIME_LIMIT))
def limited_light(gate: str, log: str, tag: object = 0) -> object:
    return _hold(gate, log, tag)


@task_token_guard(operation_type="f2_record", tags={"weight": "light"})
def record(log: str, tag: object = 0) -> object:
    """Runs at once; one line in ``log`` per execution."""
    record_run(log, tag)
    return tag


@task_token_guard(operation_type="f2_record_once", tags={"weight": "light", "idempotent": False})
def record_once(log: str, tag: object = 0) -> object:
    """Like record, but must never run twice."""
    record_run(log, tag)
    return tag


@task_token_guard(operation_type="f2_noop", tags={"weight": "light"})
def noop() -> None:
    return None


@task_token_guard(operation_type="f2_blob", tags={"weight": "light"})
def blob(size: int, tag: int = 0) -> bytes:
    """A result of ``size`` bytes (the slow-reader tests fill a session's outbox with them)."""
    head = f"{tag}:".encode()
    return head + b"x" * max(0, size - len(head))


@task_token_guard(operation_type="f2_padded", tags={"weight": "light"})
def padded(log: str, tag: object, padding: str) -> object:
    """Like record, with a large argument (fills a link's flow-control window)."""
    record_run(log, tag)
    return tag
