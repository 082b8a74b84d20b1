"""The task token: one call of a decorated function, from creation to its result.

A token is shared between the thread that submitted it (which waits in :meth:`TaskToken.get`)
and the worker that runs it. Its state, result and error change only through the methods
below, under the token's own lock, and only along the table in :mod:`shared.lifecycle`.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import traceback
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

from tokengate.shared.errors import TaskFailed, TokenCancelled, TokenKilled, TokenTimeout
from tokengate.shared.lifecycle import FINAL_STATES, KILLABLE_STATES, TokenState, check_transition
from tokengate.shared.tags import TaskTags

R = TypeVar("R")

_ID_PREFIX = os.urandom(5).hex()
_id_counter = itertools.count(1)

# A worker thread registers here how it can run a queued token inline; ``get`` uses it so a
# task waiting on its own child never deadlocks a pool whose every worker is waiting.
_inline = threading.local()

_CLAIMABLE = frozenset({TokenState.WAITING, TokenState.ADMITTED})

# The fields of the cancel section of TaskToken (see its ``cancel``).
_CANCEL_SLOTS = ("_cancel_asked", "_cancel_event", "_ended_attempt", "canceller")


def new_token_id(operation_type: str) -> str:
    """A process-unique, cluster-unique-in-practice id: ``<operation>_<random><counter>``."""
    return f"{operation_type}_{_ID_PREFIX}{next(_id_counter):x}"


def set_inline_runner(runner: Callable[[TaskToken], bool] | None) -> None:
    """Register (or clear) the current thread's inline runner; worker threads call this."""
    _inline.runner = runner


def inline_runner() -> Callable[[TaskToken], bool] | None:
    """The current thread's inline runner: set on worker threads, None elsewhere."""
    return getattr(_inline, "runner", None)


def format_exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class TaskToken(Generic[R]):
    """A handle to one call: its state, and later its result or its error."""

    __slots__ = (
        "_callbacks", "_lock", "_noted", "_waiter", "args", "attempt", "core_id", "error",
        "error_message", "error_type", "func", "kwargs", "node", "operation_type", "remote",
        "result", "state", "tags", "timestamps", "token_id", "traceback_text", "worker_id",
        *_CANCEL_SLOTS,
    )

    def __init__(
        self,
        func: Callable[..., R] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        operation_type: str,
        tags: TaskTags,
        token_id: str | None = None,
        attempt: int = 1,
    ) -> None:
        self.token_id = token_id or new_token_id(operation_type)
        self.operation_type = operation_type
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.tags = tags
        self.attempt = attempt
        self.state = TokenState.CREATED
        self.timestamps: dict[TokenState, float] = {TokenState.CREATED: time.time()}
        self.node: str | None = None
        self.core_id: int | None = None
        self.worker_id: str | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.error_type = ""
        self.error_message = ""
        self.traceback_text = ""
        self._lock = threading.Lock()
        self._waiter: threading.Event | None = None
        self._callbacks: list[Callable[[TaskToken[R]], None]] | None = None
        self._noted = False
        self.remote = False  # runs elsewhere (a cluster client's): never claimed or run here
        # Cancel section (see below): whether a cancel was asked, the event a task may wait
        # on (made on first use), the attempt whose run already ended (no cancel accepted for
        # it any more), and who carries out ``cancel`` (the scheduler, the cluster client).
        self._cancel_asked = False
        self._cancel_event: threading.Event | None = None
        self._ended_attempt = 0
        self.canceller: Callable[[TaskToken[R]], bool] | None = None

    def __repr__(self) -> str:
        return f"<TaskToken {self.token_id} {self.state.value} attempt={self.attempt}>"

    # -- transitions ---------------------------------------------------------------------

    def advance(self, *targets: TokenState, expected: frozenset[TokenState] | None = None) -> bool:
        """Move through ``targets`` in order, atomically.

        Returns False, changing nothing, when ``expected`` is given and the current state is
        not in it (a lost race, e.g. with kill). Raises ``InvalidTransition`` for a step the
        lifecycle table does not allow: that is a bug, never a race.
        """
        now = time.time()
        with self._lock:
            if expected is not None and self.state not in expected:
                return False
            state = self.state
            for target in targets:
                check_transition(state, target)
                state = target
                self.timestamps[target] = now
            self.state = state
        return True

    def admit(self) -> bool:
        """Into a mailbox: CREATED or WAITING -> ADMITTED; False if killed or claimed."""
        now = time.time()
        with self._lock:
            if self.state is TokenState.CREATED:
                self.timestamps[TokenState.WAITING] = now
            elif self.state is not TokenState.WAITING:
                return False
            self.state = TokenState.ADMITTED
            self.timestamps[TokenState.ADMITTED] = now
        return True

    def claim(self, core_id: int | None = None, worker_id: str | None = None) -> bool:
        """Take a queued token for execution; False if it was killed or claimed already."""
        now = time.time()
        with self._lock:
            if self.state not in _CLAIMABLE or self.remote:
                return False
            self.state = TokenState.EXECUTING
            self.timestamps[TokenState.EXECUTING] = now
            self.core_id = core_id
            self.worker_id = worker_id
        return True

    def requeue(self) -> None:
        """Back to WAITING for another attempt (retry, lost agent): same id, attempt + 1."""
        now = time.time()
        with self._lock:
            check_transition(self.state, TokenState.WAITING)
            self.state = TokenState.WAITING
            self.timestamps[TokenState.WAITING] = now
            self.attempt += 1

    def kill(self) -> bool:
        """Kill a token that has not started; a running or finished token is untouched."""
        with self._lock:
            if self.state not in KILLABLE_STATES:
                return False
            error = TokenKilled(f"token {self.token_id} was killed before it started")
            self._finish_locked(TokenState.KILLED, None, error, "")
        self._notify()
        return True

    def set_result(self, value: R) -> None:
        with self._lock:
            self._finish_locked(TokenState.COMPLETED, value, None, "")
        self._notify()

    def set_error(self, error: BaseException, traceback_text: str | None = None) -> bool:
        """Fail the token; False (nothing changed) if it had already finished."""
        text = format_exception_text(error) if traceback_text is None else traceback_text
        with self._lock:
            if self.state in FINAL_STATES:
                return False
            self._finish_locked(TokenState.FAILED, None, error, text)
        self._notify()
        return True

    def settle_remote(self, state: TokenState, *, value: Any = None,
                      error: BaseException | None = None, traceback_text: str = "",
                      attempt: int = 0, node: str | None = None, core: int | None = None,
                      worker: str | None = None, started_at: float = 0.0) -> bool:
        """Finish this token with the outcome of its run elsewhere (an agent of the cluster):
        where and when it ran, then its result or error, through the lifecycle's own steps
        (a completed run passes through EXECUTING). False if it was already final."""
        with self._lock:
            if self.state in FINAL_STATES:
                return False
            self.attempt = attempt or self.attempt
            self.node, self.core_id, self.worker_id = node, core, worker
            if state is TokenState.COMPLETED and self.state is not TokenState.EXECUTING:
                check_transition(self.state, TokenState.EXECUTING)
                self.state = TokenState.EXECUTING
                self.timestamps[TokenState.EXECUTING] = started_at or time.time()
            elif started_at:
                self.timestamps[TokenState.EXECUTING] = started_at
            if state is TokenState.KILLED and error is None:
                error = TokenKilled(f"token {self.token_id} was killed before it started")
            self._finish_locked(state, value, error, traceback_text)
        self._notify()
        return True

    def _finish_locked(
        self, target: TokenState, value: Any, error: BaseException | None, text: str
    ) -> None:
        check_transition(self.state, target)
        self.state = target
        self.timestamps[target] = time.time()
        self.result = value
        if error is not None:
            self.error = error
            self.error_type = type(error).__name__
            self.error_message = str(error)
            self.traceback_text = text

    def _notify(self) -> None:
        # Final state is set; no new waiter or callback can be added after this point.
        waiter, callbacks = self._waiter, self._callbacks
        if waiter is not None:
            waiter.set()
        if callbacks:
            for callback in callbacks:
                callback(self)

    # -- waiting -------------------------------------------------------------------------

    def done(self) -> bool:
        return self.state in FINAL_STATES

    def add_done_callback(self, callback: Callable[[TaskToken[R]], None]) -> None:
        """Call ``callback(token)`` once the token is final (at once if it already is).

        Callbacks run on the thread that finishes the token: keep them short.
        """
        with self._lock:
            if self.state not in FINAL_STATES:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the token is final; True if it is."""
        if self.state in FINAL_STATES:
            return True
        runner = None if self.remote else inline_runner()
        if runner is not None and self.state in _CLAIMABLE and runner(self):
            return True
        with self._lock:
            if self.state in FINAL_STATES:
                return True
            if self._waiter is None:
                self._waiter = threading.Event()
            waiter = self._waiter
        return waiter.wait(timeout)

    def get(self, timeout: float | None = None) -> R:
        """The task's result; or its exception re-raised, with the task's traceback as a note.

        Raises :class:`TokenTimeout` if the token is not final within ``timeout`` seconds
        and :class:`TokenKilled` if it was killed before it started.
        """
        if not self.wait(timeout):
            raise TokenTimeout(
                f"token {self.token_id} ({self.operation_type}) not finished after {timeout}s; "
                f"state {self.state.value}"
            )
        if self.state is TokenState.COMPLETED:
            return self.result
        error = self.error
        if error is None:  # pragma: no cover - a final non-completed token always has one
            raise TaskFailed(f"token {self.token_id} failed", error_type=self.error_type)
        if self.traceback_text and not self._noted and hasattr(error, "add_note"):
            self._noted = True
            error.add_note(f"TokenGate: task {self.token_id} failed; its traceback:\n"
                           f"{self.traceback_text}")
        raise error

    # -- asyncio -------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, R]:
        """``await token``: the result, or the task's exception, exactly as :meth:`get`.

        The awaiting coroutine waits, its event loop does not: the token's done-callback
        wakes the loop with ``call_soon_threadsafe``. Cancelling the awaiting coroutine stops
        the waiting only; the token runs on (kill or cancel it to stop it).
        """
        if self.state not in FINAL_STATES:
            yield from _settled(self).__await__()
        return self.get()

    @property
    def elapsed(self) -> float | None:
        """Seconds from EXECUTING to the final state, if both happened."""
        start = self.timestamps.get(TokenState.EXECUTING)
        end = self.timestamps.get(self.state) if self.state in FINAL_STATES else None
        return None if start is None or end is None else end - start

    # -- cancel --------------------------------------------------------------------------

    def cancel(self) -> bool:
        """Ask this call to stop.

        A queued token is killed, as ``kill`` does (``get`` raises :class:`TokenKilled`). A
        running one is asked to stop: the task sees it through :func:`current_token`
        (``cancelled``, ``cancel_event``, ``wait_cancelled``); once its call returns or
        raises, the token ends KILLED and ``get`` raises :class:`TokenCancelled` (the call's
        outcome is dropped). Returns True if the token was killed or asked to stop, False if
        it was final already or its run had just ended. A cluster token goes through the
        gateway (see ``docs/cancel.md``).
        """
        canceller = self.canceller
        if canceller is not None:
            return canceller(self)
        return self.request_cancel()

    def request_cancel(self) -> bool:
        """Carry out a cancel here: kill the token if it is queued, else ask its running call
        to stop. A token that runs elsewhere (``remote``) is left alone (False): its
        ``canceller`` asks the cluster."""
        with self._lock:
            if self.remote or self.state in FINAL_STATES:
                return False
            killed = self.state in KILLABLE_STATES
            if not killed and self._ended_attempt == self.attempt:
                return False  # its run has ended and its outcome is being stored: too late
            self._cancel_asked = True
            if killed:
                error = TokenKilled(f"token {self.token_id} was killed before it started")
                self._finish_locked(TokenState.KILLED, None, error, "")
            event = self._cancel_event
        if killed:
            self._notify()
        if event is not None:
            event.set()
        return True

    @property
    def cancelled(self) -> bool:
        """True once a cancel was asked for this token."""
        return self._cancel_asked

    @property
    def cancel_event(self) -> threading.Event:
        """An event set when a cancel is asked (made on first use)."""
        event = self._cancel_event
        if event is None:
            with self._lock:
                if self._cancel_event is None:
                    self._cancel_event = threading.Event()
                    if self._cancel_asked:
                        self._cancel_event.set()
                event = self._cancel_event
        return event

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block until a cancel is asked, up to ``timeout`` seconds; True if one was."""
        return self._cancel_asked or self.cancel_event.wait(timeout)

    def end_run(self) -> bool:
        """The runner, once the call returned or raised. True if a cancel was asked while it
        ran: the token is final then (KILLED, :class:`TokenCancelled`) and the call's outcome
        is dropped. False otherwise, and no cancel is accepted for this run from now on, so
        a cancel either stops the run or says it came too late, never both."""
        with self._lock:
            if not self._cancel_asked or self.state is not TokenState.EXECUTING:
                self._ended_attempt = self.attempt
                return False
            error = TokenCancelled(f"token {self.token_id} ({self.operation_type}) was "
                                   "cancelled while running, and its call has stopped")
            self._finish_locked(TokenState.KILLED, None, error, "")
        self._notify()
        return True


# The token each worker thread is running now (the cancel section's ``current_token``).
_current = threading.local()


def current_token() -> TaskToken | None:
    """The token the calling worker thread is running; None outside a task (and inside a
    process-mode call, which runs in another process)."""
    return getattr(_current, "token", None)


def set_current_token(token: TaskToken | None) -> TaskToken | None:
    """Set the calling thread's current token (workers do, around each call); returns the
    previous one, to restore after a nested inline run."""
    previous = getattr(_current, "token", None)
    _current.token = token
    return previous


# -- asyncio (see TaskToken.__await__) -----------------------------------------------------

async def _settled(token: TaskToken[Any]) -> None:
    """Return once ``token`` is final, waking this coroutine's loop from whichever thread
    finishes it."""
    import asyncio

    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def wake(_: TaskToken[Any]) -> None:
        try:
            loop.call_soon_threadsafe(_resolve, future)
        except RuntimeError:  # the loop is closed: nobody awaits any more
            pass

    token.add_done_callback(wake)
    await future


def _resolve(future: Any) -> None:
    if not future.done():  # the awaiting coroutine may have been cancelled
        future.set_result(None)
