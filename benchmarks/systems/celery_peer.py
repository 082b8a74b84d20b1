"""Celery with the run's Redis as broker and result backend (database 1), one worker with the
threads pool and 32 threads, gossip, mingle and heartbeats off; ``task.delay()``,
``result.get()``.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from benchmarks.systems import workerproc
from benchmarks.systems.base import Context, System

DB = 1


class CelerySystem(System):
    name = "celery"
    uses_redis = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.worker: subprocess.Popen[bytes] | None = None
        self.url = context.redis_db(DB)
        self.app: Any = None

    def start(self) -> None:
        env = {"TOKENGATE_BENCH_CELERY_URL": self.url}
        os.environ.update(env)
        from benchmarks import celery_app

        self.tasks = celery_app
        self.app = celery_app.app
        self.worker = workerproc.spawn("celery", self._worker_args(), env,
                                       self.context.logdir, "celery-worker")
        self.procs.add("worker", self.worker.pid)
        self.procs.add("redis", self.context.redis_pid)
        self.result(self.noop(), 60)  # the worker is up when it answers

    def _worker_args(self) -> list[str]:
        return ["-A", "benchmarks.celery_app", "worker", "--pool", "threads",
                "--concurrency", str(self.slots), "--loglevel", "WARNING", "-Q", "bench",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-n", "bench@localhost"]

    def stop(self) -> None:
        workerproc.stop(self.worker)
        self.worker = None
        if self.app is not None:
            self.app.close()

    def version(self) -> str:
        import celery

        return f"celery {celery.__version__}"

    def setup(self) -> str:
        return ("one worker `celery worker --pool threads --concurrency "
                f"{self.slots} --without-gossip --without-mingle --without-heartbeat` (its "
                "default prefetch), Redis broker and result backend; `task.delay()`, "
                "`result.get()`")

    def noop(self) -> Any:
        return self.tasks.noop.delay()

    def spin(self, iterations: int) -> Any:
        return self.tasks.spin.delay(iterations)

    def nap(self, seconds: float) -> Any:
        return self.tasks.nap.delay(seconds)

    def mixed(self, index: int, argument: float) -> Any:
        return self.tasks.mixed.delay(index, argument)

    def result(self, handle: Any, timeout: float) -> Any:
        return handle.get(timeout=timeout)

    def abandon(self, handles: Any) -> None:
        self.app.control.purge()
