"""Calls made on an event loop's thread that cannot be admitted at once wait here, not there.

A decorated call made on a thread that runs an asyncio loop must return its token without
waiting for mailbox room (embedded) or for the client's window (cluster): waiting there would
stop every coroutine of the loop. The backend parks such a call in its :class:`ParkingLot`,
and the lot's one admitter thread hands the calls on, in the order they were parked, with
the backend's own blocking admission (``admit(token, item, timeout)``), which waits for room
on that thread instead.

Nothing parked is lost: a call is admitted, or its token fails with the reason (the
admission's error: ``AdmissionTimeout`` once ``timeout`` seconds have passed since the call,
``SchedulerStopped``, a guard's refusal; or the lot's closing error). An awaitable submission
(``await fn.submit_async(...)``) parks with its loop and resumes once its call is admitted
(or raises the refusal), or at once while fewer than ``lead`` calls wait: the coroutine
waits, its loop does not.

``_cond`` guards ``_queue``, ``_by_id``, ``_admitting``, ``_closing``, ``_thread`` and
``parked_total``; ``_yielded_at`` is the loop's (a hint: a race costs one extra yield). The
admitter thread is started on the first park and ends when the lot closes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokengate.shared.errors import AdmissionTimeout, TokenGateError
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.token import TaskToken

logger = logging.getLogger(__name__)

Admit = Callable[[TaskToken, Any, "float | None"], None]
YIELD_EVERY = 0.001  # seconds between the yields of awaitable submissions that do not wait


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread, or None (a plain thread)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(slots=True)
class _Parked:
    token: TaskToken
    item: Any
    deadline: float | None
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[None] | None = None


class ParkingLot:
    """Calls waiting, in order, for one thread to admit them with ``admit``."""

    def __init__(self, name: str, admit: Admit, *, timeout: float | None, capacity: int,
                 closed_error: Callable[[], TokenGateError], lead: int = 0) -> None:
        self._name = name
        self._lead = lead
        self._admit = admit
        self._timeout = timeout
        self._capacity = capacity
        self._closed_error = closed_error
        self._cond = threading.Condition()
        self._queue: deque[_Parked] = deque()
        self._by_id: dict[str, _Parked] = {}
        self._admitting: _Parked | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self.parked_total = 0  # calls parked since the start (observation only)
        self._yielded_at = 0.0  # when an awaitable submission last yielded without waiting

    def __len__(self) -> int:
        """Calls parked or being admitted now."""
        return len(self._by_id)

    def park(self, token: TaskToken, item: Any = None) -> None:
        """Park one call (a plain call: its token carries the outcome). Raises
        ``AdmissionTimeout`` when the lot holds ``capacity`` calls, and the closing error once
        the lot is closed."""
        self._park(token, item, None)

    async def submit(self, token: TaskToken, item: Any = None) -> TaskToken:
        """The awaitable submission: park the call and return its token once the call is
        admitted, or at once while fewer than ``lead`` calls wait before it (a lead lets one
        coroutine keep the window or the mailboxes full: each call sent alone cost the
        cluster twice the CPU per call). A refusal always fails the token; it is raised here
        too if the coroutine was still waiting for it.

        If the waiting coroutine is cancelled while the call is still parked, the call is
        withdrawn and its token killed (it never runs); once admitted, it runs whatever
        happens to the coroutine.
        """
        return await self.admitted(token, self.park_for(token, item,
                                                        asyncio.get_running_loop()))

    def park_for(self, token: TaskToken, item: Any,
                 loop: asyncio.AbstractEventLoop) -> asyncio.Future[None] | None:
        """Park a call for :meth:`admitted`: a future of ``loop`` resolved at its admission,
        or None within the lead."""
        return self._park(token, item, loop)

    async def admitted(self, token: TaskToken,
                       future: asyncio.Future[None] | None) -> TaskToken:
        """Wait for the admission :meth:`park_for` promised (see :meth:`submit`)."""
        if future is None:
            await self.pause()
            return token
        try:
            await future
        except asyncio.CancelledError:
            withdrawn = self.withdraw(token.token_id)
            if withdrawn is not None:
                withdrawn.kill()
            raise
        return token

    async def pause(self) -> None:
        """Yield to the loop if the last yield without waiting was a millisecond ago or more:
        a submitting coroutine lets its neighbours run, without a loop iteration per call
        (each lets other threads take the GIL: the client's request thread then sent one call
        a frame)."""
        now = time.monotonic()
        if now - self._yielded_at >= YIELD_EVERY:
            self._yielded_at = now
            await asyncio.sleep(0)

    def _park(self, token: TaskToken, item: Any,
              loop: asyncio.AbstractEventLoop | None) -> asyncio.Future[None] | None:
        """Queue one call; with ``loop``, past the lead, a future of it resolved at admission."""
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            if self._closing:
                raise self._closed_error()
            if len(self._by_id) >= self._capacity:
                raise AdmissionTimeout(
                    f"{token.operation_type}: {self._capacity} calls made on an event loop "
                    f"already wait for admission ({self._name}); use 'await fn.submit_async()' "
                    "to wait for room without blocking the loop")
            future = None
            if loop is not None and len(self._by_id) >= self._lead:
                future = loop.create_future()
            entry = _Parked(token, item, deadline, loop, future)
            self._queue.append(entry)
            self._by_id[token.token_id] = entry
            self.parked_total += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"tg-park-{self._name}",
                                                daemon=True)
                self._thread.start()
            else:
                self._cond.notify()
        return future

    def find(self, token_id: str) -> tuple[TaskToken, Any] | None:
        """The token and item of the call parked (or being admitted) under ``token_id``."""
        with self._cond:
            entry = self._by_id.get(token_id)
            return None if entry is None else (entry.token, entry.item)

    def withdraw(self, token_id: str) -> TaskToken | None:
        """Take back a parked call not yet being admitted; its token, or None."""
        with self._cond:
            entry = self._by_id.get(token_id)
            if entry is None or entry is self._admitting:
                return None
            self._queue.remove(entry)
            del self._by_id[token_id]
            self._cond.notify_all()
        return entry.token

    def close(self, wait: float | None = 0.0) -> None:
        """Take no more calls; let the parked ones be admitted for up to ``wait`` seconds
        (None: as long as it takes), then fail what is left with the closing error."""
        deadline = None if wait is None else time.monotonic() + wait
        with self._cond:
            self._closing = True
            while self._by_id:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            leftovers = list(self._queue)
            self._queue.clear()
            for entry in leftovers:
                del self._by_id[entry.token.token_id]
            self._cond.notify_all()
        for entry in leftovers:
            error = self._closed_error()
            entry.token.set_error(error, "")
            _wake(entry, error)

    # -- the admitter thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                entry = self._admitting = self._queue.popleft()
            error = self._admit_one(entry)
            with self._cond:
                self._admitting = None
                del self._by_id[entry.token.token_id]
                self._cond.notify_all()  # close() may wait for the lot to empty
            _wake(entry, error)

    def _admit_one(self, entry: _Parked) -> BaseException | None:
        token = entry.token
        if token.done():  # killed while parked: nothing to admit
            return None
        timeout = None if entry.deadline is None else max(0.0, entry.deadline - time.monotonic())
        try:
            self._admit(token, entry.item, timeout)
        except Exception as exc:
            if not token.set_error(exc, "") and token.state is TokenState.KILLED:
                return None  # killed while being admitted: not a refusal
            if not isinstance(exc, TokenGateError):
                logger.exception("admitting parked call %s failed", token.token_id)
            return exc
        return None


def _wake(entry: _Parked, error: BaseException | None) -> None:
    """Resolve the awaiting submission's future on its own loop (if it still runs)."""
    if entry.loop is None or entry.future is None:
        return
    try:
        entry.loop.call_soon_threadsafe(_settle, entry.future, error)
    except RuntimeError:  # that loop is closed: nobody awaits any more
        pass


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
