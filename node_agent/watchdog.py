"""Time limits of thread-mode calls: one thread watches every running call that has one.

Python cannot stop a thread, so a thread-mode call past its limit is not stopped: its worker is
*abandoned*. The scheduler fails the token, starts a fresh worker on the same mailbox, and the
old thread, when the call returns at last, discards what it returned and exits.

A worker registers a :class:`Watch` when a time-limited call starts and releases it when the
call returns. Exactly one of two things happens to a watch, decided under the watchdog's lock:
the worker releases it in time (``release`` returns True), or the watchdog thread expires it at
its deadline (``release`` then returns False and the worker must drop the call's outcome).

What an expiry does to the worker's accounting (abandon it now? close its outermost token's
accounting now?) is decided by :class:`node_agent.accounting.Accounts`, the one owner of that
bookkeeping, called under the watchdog's lock: so the decision is recorded (the worker's
``abandoned`` flag among it) before the worker's ``release`` can return False.

The watchdog owns, under ``_lock``, its heap of watches and every watch's state. Its thread
starts on the first watch and ends once closed with nothing left to watch; tokens with no time
limit never meet it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tokengate.node_agent.accounting import Accounts

logger = logging.getLogger(__name__)

RUNNING, RELEASED, EXPIRED = "running", "released", "expired"
_COMPACT_AT = 64  # released watches kept in the heap before it is rebuilt without them


class Watch:
    """One running time-limited call."""

    __slots__ = ("deadline", "limit", "outermost", "started", "state", "token", "worker")

    def __init__(self, token: Any, worker: Any, limit: float, deadline: float,
                 outermost: bool) -> None:
        self.token = token
        self.worker = worker
        self.limit = limit
        self.deadline = deadline  # time.monotonic() value
        self.started = deadline - limit
        self.outermost = outermost
        self.state = RUNNING


# on_expire(watch, abandon, close_outer), as the accounts decided the expiry: ``abandon`` the
# first expiry on a worker (replace it); ``close_outer``: the worker's outermost token's
# mailbox accounting closes now (see Accounts.close_expired).
ExpireCallback = Callable[[Watch, bool, bool], None]


class Watchdog:
    """Expire watches at their deadlines, on one thread, and call ``on_expire`` for each."""

    def __init__(self, name: str, on_expire: ExpireCallback, accounts: Accounts) -> None:
        self._name = name
        self._on_expire = on_expire
        self._accounts = accounts
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._released = 0  # released watches still in the heap
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, token: Any, worker: Any, limit: float, deadline: float, *,
              outermost: bool) -> Watch:
        """Watch a call that must return by ``deadline`` (a ``time.monotonic()`` value)."""
        watch = Watch(token, worker, limit, deadline, outermost)
        with self._lock:
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._lock.notify()
        return watch

    def release(self, watch: Watch) -> bool:
        """The call returned: True if in time; False if it expired (drop its outcome)."""
        with self._lock:
            if watch.state is not RUNNING:
                return False
            watch.state = RELEASED
            self._released += 1
            if self._released > _COMPACT_AT and self._released * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2].state is RUNNING]
                heapq.heapify(self._heap)
                self._released = 0
        return True

    def __len__(self) -> int:
        return len(self._heap) - self._released

    def close(self) -> None:
        """Take no more watches' time: the thread ends once what it watches has ended."""
        with self._lock:
            self._closed = True
            self._lock.notify()

    def _run(self) -> None:
        while True:
            expired = self._next_expiry()
            if expired is None:
                return
            try:
                self._on_expire(*expired)
            except Exception:
                logger.exception("%s: handling an expired time limit failed", self._name)

    def _next_expiry(self) -> tuple[Watch, bool, bool] | None:
        with self._lock:
            while True:
                heap = self._heap
                while heap and heap[0][2].state is not RUNNING:
                    heapq.heappop(heap)
                    self._released -= 1
                if not heap:
                    if self._closed:
                        self._thread = None
                        return None
                    self._lock.wait()
                    continue
                delay = heap[0][0] - time.monotonic()
                if delay > 0:
                    self._lock.wait(delay)
                    continue
                return self._expire(heapq.heappop(heap)[2])

    def _expire(self, watch: Watch) -> tuple[Watch, bool, bool]:
        """Expire one watch and have the accounts decide what it does; holds ``_lock``."""
        watch.state = EXPIRED
        expiry = self._accounts.expired(watch.worker, watch.outermost)
        return watch, expiry.abandon, expiry.close_outer
