"""Admission that must not wait: a thread-local flag the scheduler's ``enqueue`` sets.

Observers' ``on_admit`` hooks may wait for room (the overflow guard waits for its memory
budget). The agent's link thread must never wait: it also carries kills and revocations. So
``enqueue`` runs the hooks inside :func:`no_waiting`, and a hook that would wait asks
:func:`may_wait` first (the link's credits already bound what an agent is sent).
"""

from __future__ import annotations

import threading

_local = threading.local()


def no_waiting(on: bool = True) -> bool:
    """Set whether this thread may wait in admission hooks; returns the previous setting
    (restore it with ``no_waiting(previous)``). A plain call, not a context manager: it runs
    once per dispatched token."""
    previous = getattr(_local, "no_wait", False)
    _local.no_wait = on
    return previous


def may_wait() -> bool:
    return not getattr(_local, "no_wait", False)
