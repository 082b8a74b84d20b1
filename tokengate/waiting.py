"""``wait`` and ``as_completed`` over task tokens, for threads, like ``concurrent.futures``.

Both listen with the tokens' done-callbacks (no polling): a callback appends the finished
token to the waiter's list and wakes the waiting thread when the waiter's condition is met.
A token's callbacks cannot be removed, so a waiter that gave up (timeout) stays attached to
the tokens still running until they finish; it only records them then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tokengate.shared.errors import TokenTimeout
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.token import TaskToken

FIRST_COMPLETED = "FIRST_COMPLETED"
FIRST_EXCEPTION = "FIRST_EXCEPTION"
ALL_COMPLETED = "ALL_COMPLETED"
_RETURN_WHEN = (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED)


def _failed(token: TaskToken[Any]) -> bool:
    """Final without a result: FAILED or KILLED (the 'exception' of FIRST_EXCEPTION)."""
    return token.state is not TokenState.COMPLETED


class _Waiter:
    """Collects finished tokens; ``event`` is set once ``return_when`` is met."""

    def __init__(self, pending: int, return_when: str) -> None:
        self.lock = threading.Lock()  # guards finished and pending
        self.finished: list[TaskToken[Any]] = []
        self.pending = pending
        self.return_when = return_when
        self.event = threading.Event()

    def __call__(self, token: TaskToken[Any]) -> None:
        with self.lock:
            self.finished.append(token)
            self.pending -= 1
            met = (self.return_when == FIRST_COMPLETED
                   or (self.return_when == FIRST_EXCEPTION and _failed(token))
                   or self.pending == 0)
        if met:
            self.event.set()

    def take(self) -> list[TaskToken[Any]]:
        with self.lock:
            finished, self.finished = self.finished, []
            self.event.clear()
        return finished


def wait(tokens: Iterable[TaskToken[Any]], timeout: float | None = None,
         return_when: str = ALL_COMPLETED) -> tuple[set[TaskToken[Any]], set[TaskToken[Any]]]:
    """Wait until ``return_when`` holds for ``tokens``, or ``timeout`` seconds pass.

    Returns ``(done, not_done)``, two sets. ``FIRST_EXCEPTION`` counts a failed or killed
    token; with none, it waits for all. Never raises on timeout: read ``not_done``.
    """
    if return_when not in _RETURN_WHEN:
        raise ValueError(f"return_when must be one of {', '.join(_RETURN_WHEN)}, "
                         f"not {return_when!r}")
    pending = set(tokens)
    done = {token for token in pending if token.done()}
    pending -= done
    if not pending or (return_when == FIRST_COMPLETED and done) or (
            return_when == FIRST_EXCEPTION and any(_failed(t) for t in done)):
        return done, pending
    waiter = _Waiter(len(pending), return_when)
    for token in pending:
        token.add_done_callback(waiter)
    waiter.event.wait(timeout)
    finished = set(waiter.take())
    return done | finished, pending - finished


def as_completed(tokens: Iterable[TaskToken[Any]],
                 timeout: float | None = None) -> Iterator[TaskToken[Any]]:
    """Yield each token as it finishes (those already final first), each once.

    Raises :class:`TokenTimeout` (a ``TimeoutError``) if ``timeout`` seconds after the call
    some tokens are still unfinished.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = set(tokens)
    done = [token for token in pending if token.done()]
    pending.difference_update(done)
    waiter = _Waiter(len(pending), FIRST_COMPLETED)
    for token in pending:
        token.add_done_callback(waiter)
    return _yield_finished(done, pending, waiter, deadline, timeout)


def _yield_finished(done: list[TaskToken[Any]], pending: set[TaskToken[Any]],
                    waiter: _Waiter, deadline: float | None,
                    timeout: float | None) -> Iterator[TaskToken[Any]]:
    yield from done
    while pending:
        remaining = None if deadline is None else deadline - time.monotonic()
        if (remaining is not None and remaining <= 0) or not waiter.event.wait(remaining):
            raise TokenTimeout(f"{len(pending)} of the tokens not finished after {timeout}s")
        for token in waiter.take():
            if token in pending:
                pending.discard(token)
                yield token
