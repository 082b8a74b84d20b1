"""A core-pinned, bounded FIFO mailbox: many producers, one worker.

Producers ``offer`` under the mailbox's put lock, so the bound is exact however many threads
submit at once; the single consumer (its worker thread) blocks in ``take`` without the lock.
Counters have one writer each: ``enqueued``/``routed`` under the put lock, ``finished`` and
``busy`` by the worker alone; readers may read them at any time.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from tokengate.shared.tags import Weight

STOP = object()  # sentinel a worker stops on


class Mailbox:
    __slots__ = (
        "_put_lock", "_queue", "busy", "capacity", "core_id", "depth", "enqueued", "finished",
        "index", "peak", "routed",
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
        items = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not STOP:
                items.append(item)
