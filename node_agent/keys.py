"""Idempotency keys of one process's scheduler (embedded mode, and calls made on an agent).

``fn.options(key=...)(*args)``: the first call with a key makes a token; the same key again
returns that token (its outcome, or the wait for it) instead of running the call again; the
same key with another task or other arguments raises :class:`IdempotencyConflict`. A key is
kept while its token runs and ``ttl`` seconds after it finished (the cluster's rule, kept in
Redis there: docs/cluster.md, "Submit once").

Owned by :class:`KeyTable` under ``_keys_lock``; the submission itself (which may wait for
mailbox room) happens outside the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokengate.shared.errors import IdempotencyConflict
from tokengate.shared.token import TaskToken

PURGE_EVERY = 1.0  # seconds between sweeps for expired keys


@dataclass(slots=True)
class _Keyed:
    call: tuple[str, tuple[Any, ...], dict[str, Any]]  # task name, args, kwargs
    token: TaskToken[Any]


def _same(a: object, b: object) -> bool:
    """Whether two calls are the same: equal task and arguments (``==``; arguments that
    cannot say, like arrays, count as different)."""
    try:
        return bool(a == b)
    except Exception:
        return False


class KeyTable:
    """Keys -> the token of the call that first carried them."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self._clock = clock
        self._keys_lock = threading.Lock()  # guards _keys and _purged
        self._keys: dict[str, _Keyed] = {}
        self._purged = 0.0

    def submit(self, key: str, call: tuple[str, tuple[Any, ...], dict[str, Any]],
               make: Callable[[], TaskToken[Any]],
               enqueue: Callable[[TaskToken[Any]], None]) -> TaskToken[Any]:
        """The token of ``key``: the kept one, or ``make()`` handed to ``enqueue``."""
        now = self._clock()
        with self._keys_lock:
            if now - self._purged >= PURGE_EVERY:
                self._purge(now)
            kept = self._keys.get(key)
            if kept is not None and not self._expired(kept, now):
                if not _same(kept.call, call):
                    raise IdempotencyConflict(
                        f"idempotency key {key!r} was used for another call ({kept.call[0]} "
                        "with other arguments, or another task)", key=key)
                return kept.token
            token = make()
            self._keys[key] = _Keyed(call, token)
        try:
            enqueue(token)
        except BaseException:
            with self._keys_lock:  # it was never queued: the key is free again
                if self._keys.get(key) is not None and self._keys[key].token is token:
                    del self._keys[key]
            raise
        return token

    def __len__(self) -> int:
        return len(self._keys)

    def _expired(self, kept: _Keyed, now: float) -> bool:
        token = kept.token
        if not token.done():
            return False
        return token.timestamps.get(token.state, now) + self.ttl <= now

    def _purge(self, now: float) -> None:
        """Drop the keys whose token finished more than ``ttl`` ago; holds _keys_lock."""
        self._purged = now
        gone = [key for key, kept in self._keys.items() if self._expired(kept, now)]
        for key in gone:
            del self._keys[key]
