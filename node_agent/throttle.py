"""The storage-speed throttle: at most 10 / 25 / 50 / 70 concurrent writers per tier."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tokengate.shared.tags import STORAGE_WRITER_CAPS, StorageTier


class StorageThrottle:
    """One semaphore per storage tier, shared by every worker of a scheduler.

    Also keeps, per tier, how many writers are active now and the most ever active at once,
    so the cap can be checked from outside.
    """

    def __init__(self, caps: dict[StorageTier, int] | None = None) -> None:
        self.caps = dict(caps or STORAGE_WRITER_CAPS)
        self._slots = {tier: threading.BoundedSemaphore(cap) for tier, cap in self.caps.items()}
        self._stats_lock = threading.Lock()  # guards _active, _peak
        self._active = dict.fromkeys(self.caps, 0)
        self._peak = dict.fromkeys(self.caps, 0)

    @contextmanager
    def slot(self, tier: StorageTier) -> Iterator[None]:
        self.acquire(tier)
        try:
            yield
        finally:
            self.release(tier)

    def acquire(self, tier: StorageTier, timeout: float | None = None) -> bool:
        """Take a writer slot of ``tier``; False if none freed within ``timeout`` seconds."""
        if not self._slots[tier].acquire(timeout=timeout):
            return False
        with self._stats_lock:
            self._active[tier] += 1
            self._peak[tier] = max(self._peak[tier], self._active[tier])
        return True

    def release(self, tier: StorageTier) -> None:
        with self._stats_lock:
            self._active[tier] -= 1
        self._slots[tier].release()

    def stats(self) -> dict[str, dict[str, int]]:
        with self._stats_lock:
            return {
                tier.value: {"cap": self.caps[tier], "active": self._active[tier],
                             "peak": self._peak[tier]}
                for tier in self.caps
            }
