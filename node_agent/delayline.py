"""One thread that calls back after a delay: retries wait here, not in a thread each."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class DelayLine:
    """Run ``callback(item)`` once ``delay`` seconds have passed, in due order.

    Owns its heap; ``_due`` (a Condition) guards it and the stopped flag. The thread starts
    on the first ``schedule`` and ends on ``stop``; items still waiting then are returned.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._due = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, delay: float, callback: Callable[[Any], None], item: Any) -> bool:
        """False (nothing scheduled) once stopped."""
        with self._due:
            if self._stopped:
                return False
            when = time.monotonic() + max(0.0, delay)
            heapq.heappush(self._heap, (when, next(self._order), callback, item))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._due.notify()
        return True

    def __len__(self) -> int:
        return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._due:
                while not self._stopped and (
                        not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._due.wait(timeout)
                if self._stopped:
                    return
                _, _, callback, item = heapq.heappop(self._heap)
            try:
                callback(item)
            except Exception:
                logger.exception("%s: delayed callback failed", self._name)

    def stop(self) -> list[Any]:
        """Stop the thread; return the items that were still waiting."""
        with self._due:
            self._stopped = True
            items = [entry[3] for entry in self._heap]
            self._heap.clear()
            self._due.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        return items
