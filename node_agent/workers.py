"""Worker threads and how one claimed token is run.

Each worker thread owns one mailbox and is pinned to its core's CPU. It takes tokens in FIFO
order, skips those it cannot claim (killed, or already run inline by a waiting parent), and
runs the rest through the :class:`TaskRunner`: observers, storage throttle, execution mode,
then the token's result or error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from tokengate.node_agent.mailbox import STOP, Mailbox
from tokengate.node_agent.procpool import CoreProcesses
from tokengate.node_agent.throttle import StorageThrottle
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import ExecutionMode
from tokengate.shared.token import TaskToken, format_exception_text, set_inline_runner

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

    ``on_admit(token)`` runs on the submitting thread and may raise a ``TokenGateError`` to
    refuse the call. ``on_start(token)`` runs on the worker before the call.
    ``on_finish(token, error, seconds)`` runs on the worker after the call and before the
    token is finalised; returning a number of seconds asks for a retry after that delay.
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


class TaskRunner:
    """Runs claimed tokens; shared by every worker of one scheduler (stateless per call)."""

    def __init__(
        self,
        throttle: StorageThrottle,
        processes: CoreProcesses,
        hooks: Hooks,
        retry: Callable[[TaskToken, float], None],
    ) -> None:
        self._throttle = throttle
        self._processes = processes
        self._hooks = hooks  # the scheduler's; read-only here
        self._retry = retry

    def run(self, token: TaskToken) -> TokenState:
        """Execute an EXECUTING token to its end (or hand it back for a retry)."""
        hooks = self._hooks
        for hook in hooks.on_start:
            _call_hook(hook, token)
        started = time.perf_counter()
        error: BaseException | None = None
        result: Any = None
        try:
            result = self._call(token)
        except BaseException as exc:  # the task's own failure (even SystemExit) becomes data
            error = exc
        seconds = time.perf_counter() - started
        delay = None
        for hook in hooks.on_finish:
            asked = _call_hook(hook, token, error, seconds)
            if asked is not None and error is not None and delay is None:
                delay = float(asked)
        if error is None:
            token.set_result(result)
            return TokenState.COMPLETED
        if delay is not None:
            token.requeue()
            self._retry(token, delay)
            return TokenState.WAITING
        token.set_error(error, format_exception_text(error))
        return TokenState.FAILED

    def _call(self, token: TaskToken) -> Any:
        func = token.func
        if func is None:
            raise TypeError(f"token {token.token_id} has no function to run")
        tier = token.tags.storage
        if tier is None:
            return self._call_in_mode(token, func)
        with self._throttle.slot(tier):
            return self._call_in_mode(token, func)

    def _call_in_mode(self, token: TaskToken, func: Callable[..., Any]) -> Any:
        if token.tags.execution is ExecutionMode.PROCESS:
            return self._processes.call(token.core_id or 1, func, token.args, token.kwargs)
        return func(*token.args, **token.kwargs)


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
    ) -> None:
        super().__init__(name=worker_id, daemon=True)
        self.mailbox = mailbox
        self.worker_id = worker_id
        self.cpu = cpu
        self.pinned = False
        self._pin = pin
        self._runner = runner
        self._after_take = after_take
        self._after_finish = after_finish

    def run(self) -> None:
        if self._pin:
            self.pinned = pin_current_thread(self.cpu)
        set_inline_runner(self.run_inline)
        mailbox = self.mailbox
        core_id, worker_id = mailbox.core_id, self.worker_id
        while True:
            token = mailbox.take()
            if token is STOP:
                break
            self._after_take(mailbox)
            mailbox.busy = 1
            outcome = None
            # Not claimable: killed while queued, or already run inline by a waiting parent.
            if token.claim(core_id, worker_id):
                outcome = self._run_claimed(token)
            mailbox.busy = 0
            mailbox.finished += 1
            self._after_finish(token, outcome)
        set_inline_runner(None)

    def run_inline(self, token: TaskToken) -> bool:
        """Run a queued token on this thread: a parent waiting on its child, or a worker
        submitting while every mailbox is full (the caller runs it).

        Returns True when the token is final afterwards (run here, or finished meanwhile).
        """
        if not token.claim(self.mailbox.core_id, self.worker_id):
            return token.done()
        logger.debug("worker %s runs %s inline", self.worker_id, token.token_id)
        self._after_finish(token, self._run_claimed(token))
        return token.done()

    def _run_claimed(self, token: TaskToken) -> TokenState:
        try:
            return self._runner.run(token)
        except Exception as exc:  # a bug in TokenGate itself: fail the token visibly
            logger.exception("worker %s could not run %s", self.worker_id, token.token_id)
            token.set_error(exc)
            return TokenState.FAILED
