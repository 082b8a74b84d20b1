"""Overflow guard: a memory budget for queued work, arguments included.

Each admitted token reserves an estimate of its size (the token plus a bounded deep walk of its
arguments) until a worker starts it or it ends without running (killed, stopped). Tokens of
at most :data:`SMALL_TOKEN_BYTES` reserve nothing (the caller skips them): the bounded
mailboxes already cap how many of those can be queued. When a
reservation would take the total over the budget, the submitting thread waits until enough is
released - backpressure instead of growth - or fails with
:class:`~shared.errors.AdmissionTimeout` after its timeout. One token larger than the whole
budget is admitted only when nothing else is reserved, so it cannot wait forever.

The guard owns ``_reserved`` and ``_used`` under one condition variable.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from tokengate.shared.errors import AdmissionTimeout

DEFAULT_BUDGET_BYTES = 75 * 1024 * 1024   # the seed's base budget: 75 MB
TOKEN_OVERHEAD = 1024                      # a TaskToken with its dicts and lock, roughly
MAX_WALK = 10_000                          # objects visited per estimate, at most
# Tokens no bigger than this reserve nothing: the mailboxes already bound how many are queued
# (cores x workers_per_core x mailbox_capacity), so they cannot grow memory without limit;
# skipping them keeps the guard off the hot path of small calls.
SMALL_TOKEN_BYTES = 4096


def _children(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield item
    elif isinstance(value, list | tuple | set | frozenset):
        yield from value


def estimate_bytes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Deep size of the arguments (shared objects counted once), plus a token's overhead.

    At most :data:`MAX_WALK` objects are visited; the items of a container left unvisited are
    counted at the mean shallow size of a sample of its first items.
    """
    if not args and not kwargs:
        return TOKEN_OVERHEAD
    total = TOKEN_OVERHEAD
    seen: set[int] = set()
    stack: list[Any] = [args, kwargs]
    visited = 0
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        visited += 1
        total += sys.getsizeof(value)
        if isinstance(value, dict | list | tuple | set | frozenset) and value:
            room = max(0, MAX_WALK - visited - len(stack))
            children = list(itertools.islice(_children(value), room))
            stack.extend(children)
            total += _unvisited_bytes(value, children)
    return total


def _unvisited_bytes(container: Any, visited: list[Any]) -> int:
    count = len(container) * (2 if isinstance(container, dict) else 1)
    missing = count - len(visited)
    if missing <= 0:
        return 0
    sample = visited[:64] or list(itertools.islice(_children(container), 64))
    return missing * sum(sys.getsizeof(item) for item in sample) // max(1, len(sample))


class OverflowGuard:
    """Reserve bytes for queued tokens; block while over budget."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        if budget_bytes <= 0:
            raise ValueError("budget_bytes must be positive")
        self.budget = budget_bytes
        self._budget_cond = threading.Condition()  # guards _reserved, _used, counters
        self._reserved: dict[str, int] = {}
        self._used = 0
        self._waiting = 0  # submitters inside wait()
        self.peak = 0
        self.waits = 0
        self.timeouts = 0

    def reserve(self, token_id: str, size: int, timeout: float | None = None, *,
                force: bool = False) -> float:
        """Reserve ``size`` bytes for ``token_id``, waiting while over budget.

        Returns the seconds spent waiting. Raises :class:`AdmissionTimeout` after ``timeout``.
        ``force`` reserves at once even over budget (a worker thread submitting nested work
        must not wait for a budget that only workers can free).
        """
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        with self._budget_cond:
            if not self._fits(size):
                self.waits += 1
            while not force and not self._fits(size):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self.timeouts += 1
                    raise AdmissionTimeout(
                        f"overflow guard: {size} bytes of arguments do not fit the queued-work "
                        f"budget ({self._used}/{self.budget} bytes in use) within {timeout}s"
                    )
                self._waiting += 1
                try:
                    self._budget_cond.wait(remaining)
                finally:
                    self._waiting -= 1
            self._reserved[token_id] = self._reserved.get(token_id, 0) + size
            self._used += size
            self.peak = max(self.peak, self._used)
        return time.monotonic() - start

    def _fits(self, size: int) -> bool:
        return self._used + size <= self.budget or self._used == 0

    def release(self, token_id: str) -> int:
        """Give back what ``token_id`` reserved (nothing if it holds nothing); returns bytes."""
        with self._budget_cond:
            size = self._reserved.pop(token_id, 0)
            if size:
                self._used -= size
                if self._waiting:
                    self._budget_cond.notify_all()
        return size

    def holds(self, token_id: str) -> bool:
        """Whether ``token_id`` has a reservation (a lock-free read; a hint for callers)."""
        return token_id in self._reserved

    @property
    def used(self) -> int:
        return self._used

    def snapshot(self) -> dict[str, Any]:
        with self._budget_cond:
            return {
                "budget_bytes": self.budget, "used_bytes": self._used,
                "peak_bytes": self.peak, "reserved_tokens": len(self._reserved),
                "waits": self.waits, "timeouts": self.timeouts,
            }
