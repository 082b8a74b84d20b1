"""Dramatiq with the run's Redis as broker and results backend (database 2): one
``dramatiq`` command with 2 worker processes x 16 threads; ``actor.send()``,
``message.get_result(block=True)``.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from benchmarks.systems import workerproc
from benchmarks.systems.base import Context, System

DB = 2
PROCESSES = 2


class DramatiqSystem(System):
    name = "dramatiq"
    uses_redis = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.worker: subprocess.Popen[bytes] | None = None
        self.url = context.redis_db(DB)
        self.actors: Any = None

    def start(self) -> None:
        env = {"TOKENGATE_BENCH_DRAMATIQ_URL": self.url}
        os.environ.update(env)
        from benchmarks import dramatiq_actors

        self.actors = dramatiq_actors
        self.worker = workerproc.spawn(
            "dramatiq", ["benchmarks.dramatiq_actors", "--processes", str(PROCESSES),
                         "--threads", str(self.slots // PROCESSES), "--queues", "bench"],
            env, self.context.logdir, "dramatiq-worker")
        self.procs.add("worker", self.worker.pid)
        self.procs.add("redis", self.context.redis_pid)
        self.result(self.noop(), 60)

    def stop(self) -> None:
        workerproc.stop(self.worker)
        self.worker = None
        if self.actors is not None:
            self.actors.broker.close()

    def version(self) -> str:
        import dramatiq

        return f"dramatiq {dramatiq.__version__}"

    def setup(self) -> str:
        return (f"`dramatiq --processes {PROCESSES} --threads {self.slots // PROCESSES}` "
                "(its default prefetch), Redis broker, Results middleware on Redis; "
                "`actor.send()`, `message.get_result(block=True)`")

    def noop(self) -> Any:
        return self.actors.noop.send()

    def spin(self, iterations: int) -> Any:
        return self.actors.spin.send(iterations)

    def nap(self, seconds: float) -> Any:
        return self.actors.nap.send(seconds)

    def mixed(self, index: int, argument: float) -> Any:
        return self.actors.mixed.send(index, argument)

    def result(self, handle: Any, timeout: float) -> Any:
        return handle.get_result(block=True, timeout=int(timeout * 1000))

    def abandon(self, handles: Any) -> None:
        self.actors.broker.flush_all()
