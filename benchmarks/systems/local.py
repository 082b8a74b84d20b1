"""In-process systems: ``concurrent.futures.ThreadPoolExecutor(32)`` and TokenGate embedded.

TokenGate embedded runs the local scheduler in this process as a user gets it: its defaults
(2 cores here, 4 workers each: 8 slots). CPU-bound W3 tasks use ``execution: process`` (one
pinned worker process per core), the way a user would run pure-Python CPU work.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tokengate.shared.token import TaskToken

from benchmarks import bench_tasks, peer_tasks
from benchmarks.systems.base import Context, System
from tokengate import OperationsCoordinator
from tokengate.workloads import MIXED_OPERATIONS


class ThreadPoolSystem(System):
    name = "threadpool"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self.pool = ThreadPoolExecutor(self.slots)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def version(self) -> str:
        import platform

        return f"Python {platform.python_version()}"

    def setup(self) -> str:
        return f"`ThreadPoolExecutor({self.slots})` in the client process; `pool.submit(fn)`"

    def _submit(self, fn: Any, *args: Any) -> Future[Any]:
        assert self.pool is not None
        return self.pool.submit(fn, *args)

    def noop(self) -> Future[Any]:
        return self._submit(peer_tasks.noop)

    def spin(self, iterations: int) -> Future[Any]:
        return self._submit(peer_tasks.spin, iterations)

    def nap(self, seconds: float) -> Future[Any]:
        return self._submit(peer_tasks.nap, seconds)

    def mixed(self, index: int, argument: float) -> Future[Any]:
        return self._submit(peer_tasks.mixed, index, argument)

    def result(self, handle: Future[Any], timeout: float) -> Any:
        return handle.result(timeout)

    def abandon(self, handles: Any) -> None:
        for handle in handles:
            handle.cancel()


class TokenTasks(System):
    """Task methods shared by both TokenGate modes: decorated calls return tokens."""

    tasks: Any = bench_tasks

    def noop(self) -> TaskToken:
        return self.tasks.noop()

    def spin(self, iterations: int) -> TaskToken:
        return self.tasks.spin(iterations)

    def nap(self, seconds: float) -> TaskToken:
        return self.tasks.nap(seconds)

    def mixed(self, index: int, argument: float) -> TaskToken:
        return MIXED_OPERATIONS[index][0](argument)

    def result(self, handle: TaskToken, timeout: float) -> Any:
        return handle.get(timeout=timeout)


class EmbeddedSystem(TokenTasks):
    name = "tokengate-embedded"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.coord: OperationsCoordinator | None = None

    def start(self) -> None:
        self.coord = OperationsCoordinator(submit_timeout=None).start()
        sched = self.coord.scheduler
        self.cores, self.per_core = sched.num_cores, sched.config.workers_per_core
        self.slots = self.cores * self.per_core

    def stop(self) -> None:
        if self.coord is not None:
            self.coord.stop(timeout=10)
            self.coord = None

    def version(self) -> str:
        from importlib.metadata import version

        return f"tokengate {version('tokengate')}"

    def setup(self) -> str:
        return (f"`OperationsCoordinator(submit_timeout=None)` in the client process, its "
                f"defaults: {self.cores} cores x {self.per_core} workers; W3 tasks tagged "
                "`execution: process` (one pinned worker process per core)")

    def abandon(self, handles: Any) -> None:
        assert self.coord is not None
        for handle in handles:
            if not handle.done():
                self.coord.kill(handle)
