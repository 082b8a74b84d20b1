"""How one claimed token is run: observers, storage slot, start gate, execution mode, outcome.

:class:`TaskRunner` is shared by every worker of one scheduler and keeps no state per call.
``run`` returns an :class:`~node_agent.outcome.Outcome`; the two endings that are not the
task's own (the start gate no longer admits the token: REVOKED; the call returned after its
time limit had failed it: DISCARDED) travel back as values, not as exceptions. Inside, the
call's steps hand back ``(None, value)`` when the task returned, or ``(outcome, None)`` for
those two endings; the task's own exception propagates to ``run``, which makes it data.

There is one copy of each decision: ``wait_for_gate`` is the start-gate check (workers call it
before they claim a token, the runner again right before the call, after any wait for a
storage slot), and ``_start`` is the execution-mode dispatch, with or without a time limit:

- process mode: the core's worker process runs the call, which ends by the deadline if
  there is one (the process is terminated past it);
- thread mode without a limit: called on the worker thread;
- thread mode with a limit: called under a watch of the scheduler's
  :class:`~node_agent.watchdog.Watchdog`, which fails the token at the deadline and abandons
  the worker (see :mod:`node_agent.accounting`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from tokengate.node_agent.outcome import Outcome
from tokengate.node_agent.procpool import CoreProcesses
from tokengate.node_agent.throttle import StorageThrottle
from tokengate.node_agent.watchdog import Watch, Watchdog
from tokengate.shared.errors import TaskTimeLimit, TokenKilled
from tokengate.shared.tags import ExecutionMode
from tokengate.shared.token import TaskToken, format_exception_text, set_current_token

if TYPE_CHECKING:
    from tokengate.node_agent.workers import Worker

logger = logging.getLogger(__name__)

_PROCESS = ExecutionMode.PROCESS  # bound once: an enum member's lookup costs ~50 ns a call

# What a call's steps hand back: (None, the task's value), or (REVOKED | DISCARDED, None).
Ended = tuple[Outcome | None, Any]


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


class StartGate(Protocol):
    """Whether tokens may start now; workers wait for it to open before claiming one, and
    ask again right before the call (after any wait for a storage slot): ``admits`` says
    whether that token may still run here."""

    def is_open(self) -> bool: ...
    def wait_open(self, timeout: float | None = None) -> bool: ...
    def admits(self, token: TaskToken[Any]) -> bool: ...


class TaskRunner:
    """Runs claimed tokens; shared by every worker of one scheduler (stateless per call)."""

    def __init__(
        self,
        throttle: StorageThrottle,
        processes: CoreProcesses,
        hooks: Hooks,
        retry: Callable[[TaskToken[Any], float], None],
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

    def wait_for_gate(self, token: TaskToken[Any] | None = None) -> bool:
        """Wait while the start gate is closed; then whether it still admits ``token``
        (True without a token or without a gate)."""
        gate = self.start_gate
        if gate is None:
            return True
        if not gate.is_open():
            gate.wait_open()
        return token is None or gate.admits(token)

    def run(self, token: TaskToken[Any], worker: Worker) -> Outcome:
        """Execute an EXECUTING token to its end (or hand it back for a retry)."""
        hooks = self._hooks
        for hook in hooks.on_start:
            _call_hook(hook, token)
        started = time.perf_counter()
        error: BaseException | None = None
        outer = set_current_token(token)
        try:
            ended, result = self._execute(token, worker)
        except BaseException as exc:  # the task's own failure (even SystemExit) becomes data
            ended, result, error = None, None, exc
        finally:
            set_current_token(outer)
        if ended is not None:
            return _ended_early(token, ended)
        seconds = time.perf_counter() - started
        delay = None
        for hook in hooks.on_finish:
            asked = _call_hook(hook, token, error, seconds)
            if asked is not None and error is not None and delay is None:
                delay = float(asked)
        return self._finalise(token, result, error, delay)

    def _finalise(self, token: TaskToken[Any], result: Any, error: BaseException | None,
                  delay: float | None) -> Outcome:
        if token.end_run():  # a cancel was asked while it ran: KILLED, outcome dropped
            return Outcome.KILLED
        if error is None:
            token.set_result(result)
            return Outcome.COMPLETED
        timed_out = isinstance(error, TaskTimeLimit)
        if delay is not None and not timed_out:
            token.requeue()
            self._retry(token, delay)
            return Outcome.RETRYING
        token.set_error(error, format_exception_text(error))
        return Outcome.TIMED_OUT if timed_out else Outcome.FAILED

    def expire(self, watch: Watch, how: str) -> bool:
        """Fail a thread-mode call whose time ran out (watchdog thread); False if it was
        final already."""
        token = watch.token
        error = TaskTimeLimit(f"{limit_text(token, watch.limit)}; {how}")
        seconds = time.monotonic() - watch.started
        for hook in self._hooks.on_finish:
            _call_hook(hook, token, error, seconds)  # a retry it asks for is not granted
        return bool(token.set_error(error, _stack_of(watch.worker)))

    def _execute(self, token: TaskToken[Any], worker: Worker) -> Ended:
        """The call, inside its storage slot if it has a tier; the time limit, if any,
        counts from here (the wait for the slot included)."""
        func = token.func
        if func is None:
            raise TypeError(f"token {token.token_id} has no function to run")
        tags = token.tags
        limit = tags.time_limit
        deadline = None if limit is None else time.monotonic() + limit
        tier = tags.storage
        if tier is None:
            return self._start(token, func, worker, deadline)
        if not self._throttle.acquire(tier, limit):
            raise TaskTimeLimit(f"{limit_text(token, limit or 0.0)}; it waited all that time "
                                f"for a {tier.value} storage slot and never ran")
        try:
            return self._start(token, func, worker, deadline)
        finally:
            self._throttle.release(tier)

    def _start(self, token: TaskToken[Any], func: Callable[..., Any], worker: Worker,
               deadline: float | None) -> Ended:
        """The gate's last word, then the call in the token's execution mode."""
        if self.start_gate is not None and not self.wait_for_gate(token):
            return Outcome.REVOKED, None
        if token.tags.execution is _PROCESS:
            return None, self._in_process(token, func, deadline)
        if deadline is None:
            return None, func(*token.args, **token.kwargs)
        return self._watched(token, func, worker, deadline)

    def _in_process(self, token: TaskToken[Any], func: Callable[..., Any],
                    deadline: float | None) -> Any:
        try:
            return self._processes.call(token.core_id or 1, func, token.args, token.kwargs,
                                        deadline=deadline, cancel=token.cancel_event)
        except TaskTimeLimit as exc:
            limit = token.tags.time_limit
            if deadline is None or limit is None:
                raise
            raise TaskTimeLimit(f"{limit_text(token, limit)}; {exc}") from None

    def _watched(self, token: TaskToken[Any], func: Callable[..., Any], worker: Worker,
                 deadline: float) -> Ended:
        """A thread-mode call under the watchdog: DISCARDED if it returns (or raises) after
        its deadline, when the watchdog has failed the token already."""
        watchdog = self._watchdog
        limit = token.tags.time_limit or 0.0
        watch = watchdog.watch(token, worker, limit, deadline,
                               outermost=not worker.inline_depth)
        try:
            result = func(*token.args, **token.kwargs)
        except BaseException:
            if not watchdog.release(watch):
                return Outcome.DISCARDED, None
            raise
        if not watchdog.release(watch):
            return Outcome.DISCARDED, None
        return None, result


def _ended_early(token: TaskToken[Any], ended: Outcome) -> Outcome:
    """A run whose call never began (REVOKED) or whose outcome is dropped (DISCARDED)."""
    if ended is Outcome.REVOKED:
        token.set_error(TokenKilled(f"token {token.token_id} was taken from this agent "
                                    "before its call began"))
    return ended


def limit_text(token: TaskToken[Any], limit: float) -> str:
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
