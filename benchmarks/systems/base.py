"""What every system under test offers the workloads, whatever runs the tasks.

A :class:`System` is started once, runs every workload, and is stopped (always, in a
``finally``). Submitting returns a handle at once; ``result(handle, timeout)`` waits for it
and raises the task's failure. ``processes()`` names every process whose CPU and memory
count for the system: this client process first, then everything it started.

Owner: the harness's one benchmark thread calls every method; implementations own the
resources they start and release them in ``stop()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procstats import ProcessSet

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, kw_only=True)
class Context:
    """What the harness hands every system.

    - ``redis_url`` / ``redis_pid``: the one real redis-server of the run (peers that need a
      broker use it, each in a database of its own).
    - ``slots``: tasks each system should be able to run at once (32, where it has a knob).
    - ``logdir``: where started processes write their output.
    """

    redis_url: str
    redis_pid: int
    slots: int = 32
    logdir: str = ""

    def redis_db(self, db: int) -> str:
        return self.redis_url.rsplit("/", 1)[0] + f"/{db}"


class System:
    """Base of every system; subclasses fill in the task methods."""

    name = "?"
    uses_redis = False  # its Redis work counts (commands per task, redis-server CPU)

    def __init__(self, context: Context) -> None:
        self.context = context
        self.slots = context.slots
        self.procs = ProcessSet({"client": os.getpid()})

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start everything the system needs; ``stop()`` follows even if this raises."""

    def stop(self) -> None:
        """Release everything ``start()`` made (idempotent)."""

    def version(self) -> str:
        return ""

    def setup(self) -> str:
        """One line: how this system is set up, for the report."""
        return ""

    def processes(self) -> ProcessSet:
        return self.procs

    # -- tasks ---------------------------------------------------------------------------
    def noop(self) -> Any:
        raise NotImplementedError

    def spin(self, iterations: int) -> Any:
        raise NotImplementedError

    def nap(self, seconds: float) -> Any:
        raise NotImplementedError

    def mixed(self, index: int, argument: float) -> Any:
        raise NotImplementedError

    def result(self, handle: Any, timeout: float) -> Any:
        raise NotImplementedError

    def abandon(self, handles: Iterable[Any]) -> None:
        """Give up on handles not finished (the flood's overrun): cancel or purge them."""

    def warm_cpu(self) -> None:
        """Run a few short CPU tasks, so worker processes exist before W3 is timed."""
        for handle in [self.spin(1_000) for _ in range(4)]:
            self.result(handle, 120)
