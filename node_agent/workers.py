"""Worker threads and how one claimed token is run.

Each worker thread owns one mailbox and is pinned to its core's CPU. It takes tokens in FIFO
order, skips those it cannot claim (killed, or already run inline by a waiting parent), and
runs the rest through the :class:`TaskRunner`: observers, storage throttle, execution mode,
then the token's result or error.

A call with a time limit (the ``timeout`` tag) takes another path, so calls without one pay
nothing for it: a process-mode call waits for its worker process until the deadline and has
that process terminated past it; a thread-mode call is watched by the scheduler's
:class:`~node_agent.watchdog.Watchdog`, which abandons the worker when the deadline passes.
An abandoned worker (``abandoned`` turns True, written by the watchdog) drops the late call's
outcome, hands its last token to ``on_abandoned`` and exits without touching its mailbox,
which a fresh worker serves by then.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from tokengate.node_agent.mailbox import STOP, Mailbox
from tokengate.node_agent.procpool import CoreProcesses
from tokengate.node_agent.throttle import StorageThrottle
from tokengate.node_agent.watchdog import Watch, Watchdog
from tokengate.shared.errors import TaskTimeLimit, TokenKilled
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import ExecutionMode
from tokengate.shared.token import (
    TaskToken,
    format_exception_text,
    set_current_token,
    set_inline_runner,
)

logger = logging.getLogger(__name__)


class Hooks:
    """The observers' hooks, bound once and grouped by name.

    Owned by the scheduler; ``add`` replaces each tuple whole, so the workers read them
    without a lock and a call pays no attribute lookup per observer.
    """

    def __init__(self) -> None:
        self.observers: tuple[Any, ...] = ()
        self.on_admit: tuple[Callable[..., Any], ...] = ()
        self.on_start: tuple[Callable[..., Any], ...] = ()
        self.on_finish: tuple[Callable[..., Any], ...] = ()

    def add(self, observer: Any) -> None:
        for name in ("on_admit", "on_start", "on_finish"):
            hook = getattr(observer, name, None)
            if hook is not None:
                setattr(self, name, (*getattr(self, name), hook))
        self.observers = (*self.observers, observer)


class Observer(Protocol):
    """Hooks into execution (Guard House, retries, history, metrics). All are optional.

    ``on_admit(token)`` runs on the submitting thread (in ``submit``, ``try_submit`` and
    ``enqueue`` alike) and may raise a ``TokenGateError`` to refuse the call.

    ``on_start(token)`` runs exactly once per execution (per attempt), on the worker thread,
    right after the token was claimed (it is EXECUTING, with its core and worker set) and
    before the call; inline runs (a parent running its child, a worker running what it could
    not queue) call it too. A cluster agent reports EXECUTING from here.

    ``on_finish(token, error, seconds)`` runs after the call and before the token is
    finalised, on the worker; returning a number of seconds asks for a retry after that delay.
    A call past its time limit finishes with a ``TaskTimeLimit`` error and is never retried
    (a thread-mode one may still be running): for thread mode, ``on_finish`` runs on the
    scheduler's watchdog thread at the deadline, and the call's own late outcome is dropped.
    """


def pin_current_thread(cpu: int) -> bool:
    """Pin the calling thread (by its native id) to ``cpu``; False where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(threading.get_native_id(), {cpu})
    except OSError:
        logger.warning("could not pin thread to cpu %d", cpu, exc_info=True)
        return False
    return True


class _Discarded(BaseException):
    """A call returned after its time limit expired: its token is final; drop the outcome."""


class _Revoked(BaseException):
    """The gate no longer admits a claimed token (taken from this agent): do not call it."""


class StartGate(Protocol):
    """Whether tokens may start now; workers wait for it to open before claiming one, and
    ask again right before the call (after any wait for a storage slot): ``admits`` says
    whether that token may still run here."""

    def is_open(self) -> bool: ...
    def wait_open(self, timeout: float | None = None) -> bool: ...
    def admits(self, token: TaskToken) -> bool: ...


class TaskRunner:
    """Runs claimed tokens; shared by every worker of one scheduler (stateless per call)."""

    def __init__(
        self,
        throttle: StorageThrottle,
        processes: CoreProcesses,
        hooks: Hooks,
        retry: Callable[[TaskToken, float], None],
        watchdog: Watchdog,
    ) -> None:
        self._throttle = throttle
        self._processes = processes
        self._hooks = hooks  # the scheduler's; read-only here
        self._retry = retry
        self._watchdog = watchdog
        # May tokens start now? None: always (embedded). An agent sets its work lease here,
        # and workers wait for it to open before they claim a token (see StartGate).
        self.start_gate: StartGate | None = None

    def run(self, token: TaskToken, worker: Worker) -> TokenState | None:
        """Execute an EXECUTING token to its end (or hand it back for a retry).

        None means the outcome was dropped: the call outlived its time limit and the
        watchdog finished the token meanwhile.
        """
        hooks = self._hooks
        for hook in hooks.on_start:
            _call_hook(hook, token)
        started = time.perf_counter()
        error: BaseException | None = None
        result: Any = None
        outer = set_current_token(token)
        try:
            result = self._call(token, worker)
        except _Discarded:
            return None
        except _Revoked:
            token.set_error(TokenKilled(f"token {token.token_id} was taken from this agent "
                                        "before its call began"))
            return TokenState.FAILED
        except BaseException as exc:  # the task's own failure (even SystemExit) becomes data
            error = exc
        finally:
            set_current_token(outer)
        seconds = time.perf_counter() - started
        delay = None
        for hook in hooks.on_finish:
            asked = _call_hook(hook, token, error, seconds)
            if asked is not None and error is not None and delay is None:
                delay = float(asked)
        if token.end_run():  # a cancel was asked while it ran: KILLED, outcome dropped
            return TokenState.KILLED
        if error is None:
            token.set_result(result)
            return TokenState.COMPLETED
        if delay is not None and not isinstance(error, TaskTimeLimit):
            token.requeue()
            self._retry(token, delay)
            return TokenState.WAITING
        token.set_error(error, format_exception_text(error))
        return TokenState.FAILED

    def expire(self, watch: Watch, how: str) -> bool:
        """Fail a thread-mode call whose time ran out (watchdog thread); False if it was
        final already."""
        token = watch.token
        error = TaskTimeLimit(f"{limit_text(token, watch.limit)}; {how}")
        seconds = time.monotonic() - watch.started
        for hook in self._hooks.on_finish:
            _call_hook(hook, token, error, seconds)  # a retry it asks for is not granted
        return token.set_error(error, _stack_of(watch.worker))

    def _call(self, token: TaskToken, worker: Worker) -> Any:
        func = token.func
        if func is None:
            raise TypeError(f"token {token.token_id} has no function to run")
        tags = token.tags
        if tags.time_limit is not None:
            return self._call_limited(token, func, worker, tags.time_limit)
        tier = tags.storage
        if tier is None:
            return self._call_in_mode(token, func)
        with self._throttle.slot(tier):
            return self._call_in_mode(token, func)

    def _still_admitted(self, token: TaskToken) -> None:
        """Right before the call: the gate may have closed while the token waited for its
        storage slot (or its hooks); wait for it, and skip a token no longer ours."""
        gate = self.start_gate
        if gate is None:
            return
        if not gate.is_open():
            gate.wait_open()
        if not gate.admits(token):
            raise _Revoked

    def _call_in_mode(self, token: TaskToken, func: Callable[..., Any]) -> Any:
        self._still_admitted(token)
        if token.tags.execution is ExecutionMode.PROCESS:
            return self._processes.call(token.core_id or 1, func, token.args, token.kwargs,
                                        cancel=token.cancel_event)
        return func(*token.args, **token.kwargs)

    def _call_limited(self, token: TaskToken, func: Callable[..., Any], worker: Worker,
                      limit: float) -> Any:
        deadline = time.monotonic() + limit
        tier = token.tags.storage
        if tier is None:
            return self._limited_in_mode(token, func, worker, limit, deadline)
        if not self._throttle.acquire(tier, limit):
            raise TaskTimeLimit(f"{limit_text(token, limit)}; it waited all that time for a "
                                f"{tier.value} storage slot and never ran")
        try:
            return self._limited_in_mode(token, func, worker, limit, deadline)
        finally:
            self._throttle.release(tier)

    def _limited_in_mode(self, token: TaskToken, func: Callable[..., Any], worker: Worker,
                         limit: float, deadline: float) -> Any:
        self._still_admitted(token)
        if token.tags.execution is ExecutionMode.PROCESS:
            try:
                return self._processes.call(token.core_id or 1, func, token.args,
                                            token.kwargs, deadline=deadline,
                                            cancel=token.cancel_event)
            except TaskTimeLimit as exc:
                raise TaskTimeLimit(f"{limit_text(token, limit)}; {exc}") from None
        watchdog = self._watchdog
        watch = watchdog.watch(token, worker, limit, deadline,
                               outermost=not worker.inline_depth)
        try:
            result = func(*token.args, **token.kwargs)
        except BaseException:
            if not watchdog.release(watch):
                raise _Discarded from None
            raise
        if not watchdog.release(watch):
            raise _Discarded
        return result


def limit_text(token: TaskToken, limit: float) -> str:
    """How a TaskTimeLimit message starts: the task, the limit and the worker."""
    name = getattr(token.func, "__qualname__", "?")
    module = getattr(token.func, "__module__", "?")
    return (f"task {token.operation_type} ({module}:{name}), token {token.token_id}, ran past "
            f"its time limit of {limit:g}s on worker {token.worker_id} (core {token.core_id})")


def _stack_of(thread: threading.Thread) -> str:
    """Where a thread is now (the hung call's stack), for the timed-out token's traceback."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return ""
    return "Stack of the call when its time limit expired:\n" + "".join(
        traceback.format_stack(frame))


def _call_hook(hook: Callable[..., Any], *args: Any) -> Any:
    try:
        return hook(*args)
    except Exception:
        logger.exception("observer hook %r failed", hook)
        return None


class Worker(threading.Thread):
    """One pinned worker thread draining one mailbox."""

    def __init__(
        self,
        mailbox: Mailbox,
        worker_id: str,
        cpu: int,
        runner: TaskRunner,
        *,
        pin: bool,
        after_take: Callable[[Mailbox], None],
        after_finish: Callable[[TaskToken, TokenState | None], None],
        on_abandoned: Callable[[Worker, TaskToken, TokenState | None], None],
    ) -> None:
        super().__init__(name=worker_id, daemon=True)
        self.mailbox = mailbox
        self.worker_id = worker_id
        self.cpu = cpu
        self.pinned = False
        self.abandoned = False  # written by the watchdog only; see node_agent.watchdog
        self.inline_depth = 0   # tokens run inline on top of the outermost one (this thread)
        self.exited = False
        self._pin = pin
        self._runner = runner
        self._after_take = after_take
        self._after_finish = after_finish
        self._on_abandoned = on_abandoned

    def run(self) -> None:
        if self._pin:
            self.pinned = pin_current_thread(self.cpu)
        set_inline_runner(self.run_inline)
        mailbox = self.mailbox
        core_id, worker_id = mailbox.core_id, self.worker_id
        try:
            while True:
                token = mailbox.take()
                if token is STOP:
                    break
                self._after_take(mailbox)
                mailbox.busy = 1
                outcome = None
                gate = self._runner.start_gate
                if gate is not None and not gate.is_open():
                    gate.wait_open()
                # Not claimable: killed while queued, or already run inline by a waiting parent.
                if token.claim(core_id, worker_id):
                    mailbox.started_at = time.monotonic()
                    outcome = self._run_claimed(token)
                    if self.abandoned:  # a fresh worker serves the mailbox now
                        self._on_abandoned(self, token, outcome)
                        break
                    mailbox.started_at = 0.0
                mailbox.busy = 0
                mailbox.finished += 1
                self._after_finish(token, outcome)
        finally:
            set_inline_runner(None)
            self.exited = True

    def run_inline(self, token: TaskToken) -> bool:
        """Run a queued token on this thread: a parent waiting on its child, or a worker
        submitting while every mailbox is full (the caller runs it).

        Returns True when the token is final afterwards (run here, or finished meanwhile).
        """
        gate = self._runner.start_gate
        if gate is not None and not gate.is_open():
            gate.wait_open()
        if not token.claim(self.mailbox.core_id, self.worker_id):
            return token.done()
        logger.debug("worker %s runs %s inline", self.worker_id, token.token_id)
        self.inline_depth += 1
        try:
            outcome = self._run_claimed(token)
        finally:
            self.inline_depth -= 1
        self._after_finish(token, outcome)
        return token.done()

    def _run_claimed(self, token: TaskToken) -> TokenState | None:
        try:
            return self._runner.run(token, self)
        except Exception as exc:  # a bug in TokenGate itself: fail the token visibly
            logger.exception("worker %s could not run %s", self.worker_id, token.token_id)
            token.set_error(exc)
            return TokenState.FAILED


class Crew:
    """The worker threads of one scheduler: the one serving each mailbox, and those abandoned
    to a call past its time limit that are still running.

    Owned by the scheduler. ``_lock`` guards ``_serving`` (each mailbox's current worker, by
    position), ``_replaced`` (replacements per position), ``_abandoned``, ``_closing`` and
    ``late_finished`` (outermost tokens of abandoned workers that ended after a fresh worker
    took their mailbox; the scheduler's ``in_flight`` subtracts it).
    """

    def __init__(self, boxes: list[Mailbox], cpu_for_core: Callable[[int], int],
                 runner: TaskRunner, watchdog: Watchdog, *, pin: bool,
                 after_take: Callable[[Mailbox], None],
                 after_finish: Callable[[TaskToken, TokenState | None], None]) -> None:
        self._boxes = boxes
        self._cpu_for_core = cpu_for_core
        self._runner = runner
        self._watchdog = watchdog
        self._pin = pin
        self._after_take = after_take
        self._after_finish = after_finish
        self._lock = threading.Lock()
        self._serving: list[Worker] = []
        self._replaced = [0] * len(boxes)
        self._abandoned: list[Worker] = []
        self._closing = False
        self.late_finished = 0

    def start(self) -> None:
        with self._lock:
            self._serving = [self._new_worker(position, box)
                             for position, box in enumerate(self._boxes)]
            for worker in self._serving:
                worker.start()

    def _new_worker(self, position: int, box: Mailbox) -> Worker:
        again = self._replaced[position]
        worker_id = (f"worker_{position}r{again}_core_{box.core_id}" if again
                     else f"worker_{position}_core_{box.core_id}")
        return Worker(box, worker_id, self._cpu_for_core(box.core_id), self._runner,
                      pin=self._pin, after_take=self._after_take,
                      after_finish=self._after_finish, on_abandoned=self._on_abandoned)

    def workers(self) -> list[Worker]:
        """The worker serving each mailbox now."""
        with self._lock:
            return list(self._serving)

    def close(self) -> list[Worker]:
        """Start no more replacements; the workers serving the mailboxes now (to join)."""
        with self._lock:
            self._closing = True
            return list(self._serving)

    def stuck(self) -> list[Worker]:
        """Abandoned workers whose late call (or outermost token) is still running."""
        with self._lock:
            self._abandoned = [worker for worker in self._abandoned if not worker.exited]
            return list(self._abandoned)

    # -- time limits (watchdog thread) ---------------------------------------------------

    def on_time_limit(self, watch: Watch, abandon: bool, close_outer: bool) -> None:
        """A thread-mode call ran past its limit: fail it; replace its worker the first time.

        Runs on the watchdog thread. Before a replacement starts, the mailbox's counters are
        written here, the abandoned worker never writes them again, then the replacement is
        their one writer.
        """
        worker = watch.worker
        if abandon:
            box = worker.mailbox
            box.busy = 0
            box.started_at = 0.0
            if close_outer:
                box.finished += 1
            with self._lock:
                self._abandoned.append(worker)
        elif close_outer:
            with self._lock:
                self.late_finished += 1
        how = ("the call goes on running on its worker thread, which was abandoned; a fresh "
               "worker took over its mailbox" if abandon else
               "the call goes on running on an abandoned worker thread")
        finished = self._runner.expire(watch, how)
        logger.warning("time limit: %s", watch.token.error_message if finished else how)
        self._after_finish(watch.token, TokenState.FAILED if finished else None)
        if abandon:
            self._replace(worker)

    def _replace(self, worker: Worker) -> None:
        with self._lock:
            if self._closing:
                return
            position = self._serving.index(worker)
            self._replaced[position] += 1
            fresh = self._new_worker(position, worker.mailbox)
            self._serving[position] = fresh
            fresh.start()
        logger.info("worker %s abandoned to a call past its time limit; %s serves its mailbox",
                    worker.worker_id, fresh.worker_id)

    def _on_abandoned(self, worker: Worker, token: TaskToken,
                      outcome: TokenState | None) -> None:
        """The abandoned worker's last call returned (its own thread, which then exits)."""
        if self._watchdog.settle(worker):
            with self._lock:
                self.late_finished += 1
        self._after_finish(token, outcome)
        logger.info("abandoned worker %s: its call returned late; the thread ends",
                    worker.worker_id)
