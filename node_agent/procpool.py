"""Process-mode execution: worker processes per core, pinned to that core's CPU.

A pinned worker thread hands a process-mode call to one of its core's processes and waits for
the answer, so CPU-bound pure-Python work on different cores runs truly in parallel. Processes
are started with ``spawn`` (never ``fork`` from a threaded process), lazily, on a core's first
process-mode task, and live until the scheduler stops, or until a call runs past its deadline
or is cancelled (its token's cancel event is set, and no answer came within ``CANCEL_GRACE``):
then that one process is killed and a fresh one starts on the core's next call.

Each process is one :class:`_ProcessSlot` (a process and its end of a pipe). A slot serves one
call at a time: a caller takes it from its core's idle queue and puts it back when done, so a
slot is used by one thread at a time and needs no lock of its own.
``CoreProcesses._pools_lock`` guards the per-core idle queues and the closed flag.

Worker processes are daemonic: they never hold up the interpreter's exit, and a process-mode
task cannot start processes of its own (it is pinned to one CPU anyway).

The function travels by name (module and qualified name) and is looked up in the worker
process, where the decorated wrapper is unwrapped to the plain function.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from tokengate.shared.errors import TaskTimeLimit, WorkerProcessError
from tokengate.shared.registry import spec_of

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # seconds a new worker process may take to start and report ready
STOP_GRACE = 2.0      # seconds a worker process gets to exit before it is killed
CANCEL_GRACE = 0.5    # seconds a cancelled call may still answer before its process is killed
CANCEL_POLL = 0.05    # how often a caller waiting on a process looks at its cancel event


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


def _call_by_name(module_name: str, qualname: str, args: tuple, kwargs: dict) -> Any:
    return resolve_function(module_name, qualname)(*args, **kwargs)


def _report_affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


class CallCancelled(WorkerProcessError):
    """A cancelled process-mode call did not answer within the grace: its process was killed."""


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process (set as the error's cause)."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""' if self.args else ""


def _serve(conn: Any, cpu: int) -> None:
    """A worker process's loop: pin, say ready, then answer ``(fn, args)`` until told to stop."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    conn.send(os.getpid())
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        fn, args = request
        try:
            reply = (True, fn(*args), "")
        except BaseException as exc:  # the task's failure (even SystemExit) goes back as data
            reply = (False, exc, traceback.format_exc())
        try:
            conn.send(reply)
        except Exception as exc:  # pickling failed; nothing was written yet
            conn.send((False, WorkerProcessError(
                f"the task's {'result' if reply[0] else 'error'} could not be sent back from "
                f"the worker process: {type(exc).__name__}: {exc}"), ""))


class _ProcessSlot:
    """One worker process of a core, started on first use, replaced after a kill."""

    def __init__(self, context: Any, core_id: int, cpu: int) -> None:
        self._context = context
        self.core_id = core_id
        self.cpu = cpu
        self.process: Any = None
        self.conn: Any = None
        self.pid: int | None = None

    def ensure_started(self) -> float:
        """Start the process if it is not running; the seconds that took (0 if it ran)."""
        if self.process is not None and self.process.is_alive():
            return 0.0
        self.terminate()
        began = time.monotonic()
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_serve, args=(theirs, self.cpu), daemon=True,
                                        name=f"tokengate-core-{self.core_id}")
        process.start()
        theirs.close()  # only the child holds it now, so its exit reads as EOF here
        self.process, self.conn = process, ours
        if not ours.poll(START_TIMEOUT):
            self.terminate()
            raise WorkerProcessError(f"the worker process of core {self.core_id} did not start "
                                     f"within {START_TIMEOUT:.0f}s")
        try:
            self.pid = ours.recv()
        except (EOFError, OSError) as exc:
            self.terminate()
            raise WorkerProcessError(
                f"the worker process of core {self.core_id} died while starting") from exc
        logger.info("started worker process %d for core %d (cpu %d)", self.pid, self.core_id,
                    self.cpu)
        return time.monotonic() - began

    def call(self, fn: Callable[..., Any], args: tuple, deadline: float | None,
             cancel: threading.Event | None = None) -> Any:
        """Run ``fn(*args)`` in the process; by ``deadline`` (monotonic) or TaskTimeLimit;
        ``CallCancelled`` (the process killed) if ``cancel`` is set and no answer follows."""
        self.conn.send((fn, args))  # an argument that cannot be pickled raises here, unsent
        try:
            if cancel is not None:
                self._until_answer_or_cancel(deadline, cancel)
            ok, value, remote_traceback = self._answer(deadline)
        except BaseException:
            self.terminate()  # no answer may stay in the pipe for the next caller to read
            raise
        if ok:
            return value
        if remote_traceback and isinstance(value, BaseException):
            value.__cause__ = RemoteTraceback(remote_traceback)
        raise value

    def _until_answer_or_cancel(self, deadline: float | None, cancel: threading.Event) -> None:
        """Wait for the answer in short slices, looking at ``cancel`` between them; once it
        is set, the call has ``CANCEL_GRACE`` seconds to answer, then CallCancelled."""
        conn = self.conn
        while not cancel.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return  # _answer says the time limit passed
            step = CANCEL_POLL if remaining is None else min(CANCEL_POLL, remaining)
            if conn.poll(step):
                return
        if not conn.poll(CANCEL_GRACE):
            raise CallCancelled(f"the call was cancelled: its worker process {self.pid} on "
                                f"core {self.core_id} was killed after a {CANCEL_GRACE:g}s "
                                "grace; a new one starts on the core's next call")

    def _answer(self, deadline: float | None) -> tuple[bool, Any, str]:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self.conn.poll(remaining):
            raise TaskTimeLimit(f"its worker process {self.pid} on core {self.core_id} was "
                                f"terminated; a new one starts on the core's next call")
        try:
            return self.conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerProcessError(
                f"the worker process of core {self.core_id} died while running the task"
            ) from exc
        except Exception as exc:  # the answer arrived but cannot be unpickled here
            raise WorkerProcessError(
                f"the answer of the worker process of core {self.core_id} could not be read: "
                f"{type(exc).__name__}: {exc}") from exc

    def stop(self) -> None:
        """Ask the process to exit; kill it if it does not within the grace period."""
        if self.process is None:
            return
        try:
            self.conn.send(None)
        except OSError:
            pass  # already gone
        self.process.join(STOP_GRACE)
        self.terminate()

    def terminate(self) -> None:
        process, conn = self.process, self.conn
        self.process = self.conn = None
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(STOP_GRACE)
            logger.info("worker process %s of core %d ended", self.pid, self.core_id)
        if conn is not None:
            conn.close()


class CoreProcesses:
    """The worker processes of one scheduler, ``processes_per_core`` per core."""

    def __init__(self, cpu_for_core: Callable[[int], int], processes_per_core: int = 1) -> None:
        self._cpu_for_core = cpu_for_core
        self.processes_per_core = processes_per_core
        self._context = multiprocessing.get_context("spawn")
        self._pools_lock = threading.Lock()  # guards _idle, _closed
        self._idle: dict[int, queue.SimpleQueue[_ProcessSlot]] = {}
        self._closed = False

    def _idle_queue(self, core_id: int) -> queue.SimpleQueue[_ProcessSlot]:
        idle = self._idle.get(core_id)
        if idle is not None:
            return idle
        with self._pools_lock:
            if self._closed:
                raise WorkerProcessError("the scheduler's worker processes are shut down")
            idle = self._idle.get(core_id)
            if idle is None:
                idle = queue.SimpleQueue()
                cpu = self._cpu_for_core(core_id)
                for _ in range(self.processes_per_core):
                    idle.put(_ProcessSlot(self._context, core_id, cpu))
                self._idle[core_id] = idle
            return idle

    def call(self, core_id: int, func: Callable[..., Any], args: tuple, kwargs: dict, *,
             deadline: float | None = None, cancel: threading.Event | None = None) -> Any:
        """Run ``func(*args, **kwargs)`` in one of core ``core_id``'s processes.

        Re-raises the task's error. With ``deadline`` (a ``time.monotonic()`` value), raises
        ``TaskTimeLimit`` if no process of the core is free by then, or if the call is still
        running then (that process is terminated). Starting a new process does not count
        against the deadline: the deadline moves back by the time the start took. With
        ``cancel`` (the token's cancel event), raises ``CallCancelled`` once it is set and the
        call has not answered within ``CANCEL_GRACE`` (that process is killed).
        """
        module_name, qualname = function_reference(func)
        return self._submit(core_id, _call_by_name, (module_name, qualname, args, kwargs),
                            deadline, cancel)

    def affinity_of(self, core_id: int) -> list[int]:
        """The CPUs the core's worker process may run on (for checks and status)."""
        return self._submit(core_id, _report_affinity, (), None)

    def _submit(self, core_id: int, fn: Callable[..., Any], args: tuple,
                deadline: float | None, cancel: threading.Event | None = None) -> Any:
        idle = self._idle_queue(core_id)
        try:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            slot = idle.get(timeout=wait)
        except queue.Empty:
            raise TaskTimeLimit(f"no worker process of core {core_id} became free in "
                                f"time") from None
        try:
            if cancel is not None and cancel.is_set():
                raise CallCancelled("the call was cancelled before its worker process began it")
            started = slot.ensure_started()
            if deadline is not None:
                deadline += started
            return slot.call(fn, args, deadline, cancel)
        finally:
            self._give_back(core_id, slot)

    def _give_back(self, core_id: int, slot: _ProcessSlot) -> None:
        with self._pools_lock:
            closed = self._closed
            if not closed:
                self._idle[core_id].put(slot)
        if closed:
            slot.stop()

    def shutdown(self) -> None:
        """Stop the idle processes now; a busy one stops when its call returns."""
        with self._pools_lock:
            self._closed = True
            idle = [slot for q in self._idle.values() for slot in _empty(q)]
        for slot in idle:
            slot.stop()


def _empty(idle: queue.SimpleQueue[_ProcessSlot]) -> list[_ProcessSlot]:
    items = []
    while True:
        try:
            items.append(idle.get_nowait())
        except queue.Empty:
            return items
