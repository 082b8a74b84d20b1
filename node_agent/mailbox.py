"""A core-pinned, bounded FIFO mailbox: many producers, one worker.

Producers ``offer`` under the mailbox's put lock, so the bound is exact however many threads
submit at once; the single consumer (its worker thread) blocks in ``take`` without the lock.
Counters have one writer each: ``enqueued``/``routed`` under the put lock; the run counters
``busy``, ``started_at`` and ``finished`` by the scheduler's
:class:`~node_agent.accounting.Accounts` alone, from the events its worker and watchdog
report; ``blocked_call`` and ``reclaimed`` by the reclaim of
:class:`~node_agent.queues.AdmissionQueues` (under the queues' lock). Readers may read them
at any time.

A mailbox is *blocked* while its worker runs the call the scheduler judged too long
(``blocked_call`` is that call's ``started_at``): routing passes it by, its room is not free
capacity, and what was queued behind that call was reclaimed. It unblocks by itself when the
call ends (``started_at`` changes), with no write by the scheduler.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from tokengate.shared.tags import Weight

STOP = object()  # sentinel a worker stops on


class Mailbox:
    __slots__ = (
        "_put_lock", "_queue", "blocked_call", "busy", "capacity", "core_id", "depth",
        "enqueued", "finished", "index", "peak", "reclaimed", "routed", "started_at",
    )

    def __init__(self, core_id: int, index: int, capacity: int) -> None:
        self.core_id = core_id
        self.index = index
        self.capacity = capacity
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.depth = self._queue.qsize  # tokens queued now (exact; no lock needed)
        self._put_lock = threading.Lock()  # guards the capacity check + put, enqueued, routed
        self.enqueued = 0
        self.finished = 0
        self.busy = 0
        self.peak = 0
        self.routed: dict[Weight, int] = dict.fromkeys(Weight, 0)
        self.started_at = 0.0    # monotonic start of the worker's current call; 0.0: none
        self.blocked_call = 0.0  # the started_at of the call judged too long
        self.reclaimed = 0       # tokens taken back out of the queue (never started)

    @property
    def blocked(self) -> bool:
        """Its worker still runs the call judged too long."""
        return self.blocked_call != 0.0 and self.blocked_call == self.started_at

    def offer(self, token: Any, weight: Weight) -> bool:
        """Admit and append ``token`` unless the mailbox is full; never blocks on space.

        True means the token is taken care of: queued here, or found no longer admittable
        (killed, or already run inline) and dropped.
        """
        with self._put_lock:
            depth = self._queue.qsize()
            if depth >= self.capacity:
                return False
            if not token.admit():
                return True
            self._queue.put(token)
            self.enqueued += 1
            self.routed[weight] += 1
            if depth + 1 > self.peak:
                self.peak = depth + 1
        return True

    def take(self) -> Any:
        """The next token (or STOP); blocks while empty. Worker thread only."""
        return self._queue.get()

    def post_stop(self) -> None:
        self._queue.put(STOP)

    def drain_nowait(self) -> list[Any]:
        """Take everything still queued, for shutdown (a STOP already posted is dropped)."""
        items: list[Any] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not STOP:
                items.append(item)
