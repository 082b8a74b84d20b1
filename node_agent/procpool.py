"""Process-mode execution: one worker process per core, pinned to that core's CPU.

A pinned worker thread hands a process-mode call to its core's process and waits for the
answer, so CPU-bound pure-Python work on different cores runs truly in parallel. Processes
are started with ``spawn`` (never ``fork`` from a threaded process), lazily, on a core's
first process-mode task, and live until the scheduler stops.

The function travels by name (module and qualified name) and is looked up in the worker
process, where the decorated wrapper is unwrapped to the plain function.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from tokengate.shared.errors import WorkerProcessError
from tokengate.shared.registry import spec_of

logger = logging.getLogger(__name__)

def function_reference(func: Callable[..., Any]) -> tuple[str, str]:
    """``(module, qualname)`` of a module-level function, or WorkerProcessError."""
    qualname = getattr(func, "__qualname__", "")
    module = getattr(func, "__module__", "")
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise WorkerProcessError(
            f"process-mode tasks must be module-level functions importable by name; "
            f"{module}.{qualname} is not"
        )
    return module, qualname


def resolve_function(module_name: str, qualname: str) -> Callable[..., Any]:
    """Import ``module_name`` and walk ``qualname``; unwrap a decorated function."""
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    spec = spec_of(target)
    return spec.func if spec is not None else target


def _pin_this_process(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _call_by_name(module_name: str, qualname: str, args: tuple, kwargs: dict) -> Any:
    return resolve_function(module_name, qualname)(*args, **kwargs)


def _report_affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


class CoreProcesses:
    """The worker processes of one scheduler, one per core, created on first use."""

    def __init__(self, cpu_for_core: Callable[[int], int], processes_per_core: int = 1) -> None:
        self._cpu_for_core = cpu_for_core
        self.processes_per_core = processes_per_core
        self._context = multiprocessing.get_context("spawn")
        self._pools_lock = threading.Lock()  # guards _pools and _closed
        self._pools: dict[int, ProcessPoolExecutor] = {}
        self._closed = False

    def _pool(self, core_id: int) -> ProcessPoolExecutor:
        pool = self._pools.get(core_id)
        if pool is not None:
            return pool
        with self._pools_lock:
            if self._closed:
                raise WorkerProcessError("the scheduler's worker processes are shut down")
            pool = self._pools.get(core_id)
            if pool is None:
                cpu = self._cpu_for_core(core_id)
                pool = ProcessPoolExecutor(
                    max_workers=self.processes_per_core,
                    mp_context=self._context,
                    initializer=_pin_this_process,
                    initargs=(cpu,),
                )
                self._pools[core_id] = pool
                logger.info("started worker process for core %d (cpu %d)", core_id, cpu)
            return pool

    def call(self, core_id: int, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """Run ``func(*args, **kwargs)`` in core ``core_id``'s process; re-raise its error."""
        module_name, qualname = function_reference(func)
        return self._submit(core_id, _call_by_name, module_name, qualname, args, kwargs)

    def affinity_of(self, core_id: int) -> list[int]:
        """The CPUs the core's worker process may run on (for checks and status)."""
        return self._submit(core_id, _report_affinity)

    def _submit(self, core_id: int, fn: Callable[..., Any], *args: Any) -> Any:
        pool = self._pool(core_id)
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool as exc:
            self._discard(core_id, pool)
            raise WorkerProcessError(
                f"the worker process of core {core_id} died while running the task"
            ) from exc

    def _discard(self, core_id: int, pool: ProcessPoolExecutor) -> None:
        with self._pools_lock:
            if self._pools.get(core_id) is pool:
                del self._pools[core_id]
        pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self._pools_lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
