"""The mailboxes' run accounting, with one owner fed by events.

:class:`Accounts` is the one writer of each mailbox's run counters (``busy``, ``started_at``,
``finished``) and of what abandoned workers still owe. The threads that used to write those
counters now report what happened to them:

- the worker serving a mailbox: ``took`` (a token left the queue), ``started`` (it claimed
  it), ``finished`` (done with it);
- the watchdog, under its own lock, at each expiry of a thread-mode call: ``expired``, which
  decides (with the pure :func:`decide_expiry`) whether the worker is abandoned now and whether
  its outermost token's accounting closes now; then, on its thread, ``close_expired`` with that
  decision, before a fresh worker takes the mailbox;
- an abandoned worker whose outermost call returned at last: ``returned_late``.

A worker's *outermost* token is the one it took from its mailbox; tokens it runs inline sit on
top of it. When an inline call expires first, the outermost one goes on running on the
abandoned thread: the worker *owes* its accounting until it returns or expires in turn, and
whichever comes first closes it, exactly once. Such late closes are counted in
``late_finished`` (the scheduler's ``in_flight`` subtracts them); ``owed()`` says how many are
still open (the scheduler counts them as executing).

Why the hot-path events take no lock: a mailbox has one serving worker at a time. The
watchdog abandons a worker only while one of its watched calls runs, and ``expired`` records
that under the watchdog's lock, before the worker's ``release`` of that watch can return; so
the worker sees ``abandoned`` before it would report again, and an abandoned worker reports
only ``returned_late``. ``_lock`` guards the owed set and ``late_finished``, which the
watchdog thread and abandoned workers both change.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol


class Box(Protocol):
    """The run counters of a mailbox that the accounts write (see node_agent.mailbox)."""

    busy: int
    started_at: float
    finished: int


class Served(Protocol):
    """What the accounts read and write on a worker: its ``abandoned`` flag."""

    abandoned: bool


@dataclass(frozen=True, slots=True)
class Expiry:
    """What one expired time limit does to its worker's accounting."""

    abandon: bool      # the worker's first expiry: a fresh worker takes its mailbox
    close_outer: bool  # the worker's outermost token's accounting closes now
    owes: bool         # afterwards the worker still owes its outermost token's accounting


def decide_expiry(*, abandoned: bool, outermost: bool, owes: bool) -> Expiry:
    """The accounting of one expiry, from the worker's state before it.

    ``abandoned``: an earlier expiry abandoned the worker; ``outermost``: the expired call is
    the worker's outermost token; ``owes``: the worker owes that token's accounting.
    """
    if not abandoned:
        return Expiry(abandon=True, close_outer=outermost, owes=not outermost)
    closes = outermost and owes
    return Expiry(abandon=False, close_outer=closes, owes=owes and not closes)


class Accounts:
    """One scheduler's run accounting: every mailbox's run counters and the owed tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _owed and late_finished
        self._owed: set[Any] = set()   # abandoned workers owing their outermost token
        self.late_finished = 0         # outermost tokens closed after their worker was replaced

    # -- the serving worker (no lock: it is its mailbox's one reporter) -----------------

    @staticmethod
    def took(box: Box) -> None:
        """The worker took a token from ``box``: busy until ``finished``."""
        box.busy = 1

    @staticmethod
    def started(box: Box) -> None:
        """The worker claimed that token: its call's clock starts."""
        box.started_at = time.monotonic()

    @staticmethod
    def finished(box: Box) -> None:
        """The worker is done with that token (run, or found not claimable)."""
        box.started_at = 0.0
        box.busy = 0
        box.finished += 1

    # -- the watchdog -----------------------------------------------------------------------

    def expired(self, worker: Served, outermost: bool) -> Expiry:
        """A watched call of ``worker`` expired (the watchdog's lock held): decide, record."""
        with self._lock:
            expiry = decide_expiry(abandoned=worker.abandoned, outermost=outermost,
                                   owes=worker in self._owed)
            if expiry.owes:
                self._owed.add(worker)
            else:
                self._owed.discard(worker)
        worker.abandoned = True
        return expiry

    def close_expired(self, box: Box, *, abandon: bool, close_outer: bool) -> None:
        """Apply an expiry (as ``expired`` decided it) to the worker's mailbox, on the
        watchdog thread: hand the counters over before the fresh worker starts, or count a
        late close."""
        if abandon:
            box.busy = 0
            box.started_at = 0.0
            if close_outer:
                box.finished += 1
        elif close_outer:
            with self._lock:
                self.late_finished += 1

    # -- an abandoned worker ----------------------------------------------------------------

    def returned_late(self, worker: Served) -> bool:
        """The abandoned ``worker``'s outermost call returned: True if its accounting was
        still owed (closed now), False if an expiry closed it already."""
        with self._lock:
            if worker not in self._owed:
                return False
            self._owed.discard(worker)
            self.late_finished += 1
        return True

    def owed(self) -> int:
        """Abandoned workers still running their (unexpired) outermost token."""
        return len(self._owed)
