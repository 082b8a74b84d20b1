"""The owner of the scheduler's waiting queues: one way in, one lock.

:class:`AdmissionQueues` owns the three lanes of :mod:`node_agent.placement` (priority,
backlog, held), the retry delay line, the drain and accepting flags, the count of submitters
waiting for room and the count of tokens it took in. It places tokens into the mailboxes (it
is the only caller of :meth:`Mailbox.offer`) and takes them back out (reclaim, stop).

``_lanes_lock`` guards all of it, and is held across each decision and the offer that
carries it out, so no admission overtakes another; submitters waiting for room wait on
``_room``, a Condition over that lock. What to place next and where is
:func:`node_agent.placement.next_to_place`; where an unplaced newcomer waits is
:func:`node_agent.placement.park`. Workers read the lanes without the lock only as a hint
(:meth:`on_take`: is there anything to place?) and then place under it.

Counting: a token is counted in ``entered`` once, under the lock, when the queues take it
(placed, parked, or a submission that starts to wait); ``try`` that finds no room does not
take it. Every entry point counts this same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tokengate.node_agent.delayline import DelayLine
from tokengate.node_agent.mailbox import Mailbox
from tokengate.node_agent.placement import (
    Cores,
    Decision,
    Entry,
    Head,
    Lane,
    Limits,
    Waiting,
    next_to_place,
    park,
)
from tokengate.shared.errors import AdmissionTimeout, SchedulerStopped, TokenGateError
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import ExecutionMode, Weight
from tokengate.shared.token import TaskToken, inline_runner

logger = logging.getLogger(__name__)

# A token of any result type (TaskToken is generic in its result).
Token = TaskToken[Any]

_CREATED_ONLY = frozenset({TokenState.CREATED})
# Enum members on the hot path read through module names (Python 3.11: ~90 ns a class read).
_NEW, _RETRY = Lane.NEW, Entry.RETRY
_PLACED, _WAIT, _NOT_TAKEN = Decision.PLACED, Decision.WAIT, Decision.NOT_TAKEN
_EMPTY = Waiting()
_PARKED = {Decision.HELD: Lane.HELD, Decision.BACKLOGGED: Lane.BACKLOG,
           Decision.REQUEUED: Lane.PRIORITY}


class AdmissionQueues:
    """Held, priority and backlog lanes plus the retry delay line of one scheduler."""

    def __init__(self, name: str, mailboxes: dict[int, list[Mailbox]],
                 chains: dict[Weight, tuple[int, ...]], limits: Limits,
                 processes_per_core: int) -> None:
        self.name = name
        self._mailboxes = mailboxes
        self._all_boxes = [box for boxes in mailboxes.values() for box in boxes]
        self._chains = chains
        self._limits = limits
        self._processes_per_core = processes_per_core
        self._capacity = self._all_boxes[0].capacity
        self._low_water = self._capacity // 2
        self._heads = {(weight, mode): Head(chain, mode)
                       for weight, chain in chains.items() for mode in ExecutionMode}
        self._cores = self._routing({core: list(boxes) for core, boxes in mailboxes.items()})
        self._lanes_lock = threading.Lock()
        self._room = threading.Condition(self._lanes_lock)  # waiting submitters wait on it
        self._lanes: tuple[deque[Token], deque[Token], deque[Token]] = (
            deque(), deque(), deque())
        self._delays = DelayLine(f"tokengate-retries-{name}")
        self._draining = False
        self._accepting = False
        self._closed = False
        self._space_waiters = 0
        self.entered = 0

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        with self._lanes_lock:
            self._accepting = True

    def stop_accepting(self) -> bool:
        """No new tokens from now on (retries still re-enter); False if it was not open."""
        with self._lanes_lock:
            was, self._accepting = self._accepting, False
            self._room.notify_all()
        return was

    def close(self) -> list[Token]:
        """Place nothing more; return every token still waiting (lanes and retries)."""
        with self._lanes_lock:
            self._closed = True
            leftovers = [token for lane in self._lanes for token in lane]
            for lane in self._lanes:
                lane.clear()
        return leftovers + self._delays.stop()

    # -- the way in --------------------------------------------------------------------

    def admit(self, token: Token, entry: Entry, timeout: float | None = None) -> Decision:
        """Place ``token`` or park it, as ``entry`` allows.

        A submission with no room waits up to ``timeout`` seconds (None: no limit) for it; a
        worker thread (it has an inline runner) does not wait: ``RUN_INLINE``. A token the
        decision parks moves CREATED -> WAITING first (if killed meanwhile it is left out).
        """
        with self._lanes_lock:
            if self._closed or (not self._accepting and entry is not _RETRY):
                return Decision.NOT_TAKEN if entry is Entry.TRY else Decision.STOPPED
            decision = self._place_or_park(token, entry)
            if entry is not _RETRY and decision is not _NOT_TAKEN:
                self.entered += 1
            if decision is _WAIT:
                decision = self._wait_for_room(token, timeout)
        return decision

    def retry_later(self, delay: float, resubmit: Callable[[Token], None],
                    token: Token) -> bool:
        """Call ``resubmit(token)`` after ``delay`` seconds; False once closed."""
        return self._delays.schedule(delay, resubmit, token)

    def _place_or_park(self, token: Token, entry: Entry) -> Decision:
        """One decision for a token coming in; holds the lock."""
        if entry is not _RETRY and self._place_new(token, entry):
            return _PLACED
        lanes = self._lanes
        decision = park(entry, self._draining, len(lanes[Lane.HELD]),
                        len(lanes[Lane.BACKLOG]), self._limits)
        parked_in = _PARKED.get(decision)
        if parked_in is not None:
            if entry is _RETRY or token.advance(TokenState.WAITING, expected=_CREATED_ONLY):
                lanes[parked_in].append(token)
            # A worker that took a token since our routing may have found nothing to place.
            self._pump()
        return decision

    def _place_new(self, token: Token, entry: Entry) -> bool:
        """Place what waits ahead while it has room, then ``token`` if its turn has come and
        it has room; True once it is in a mailbox (or found final and dropped)."""
        tags = token.tags
        new = self._heads[tags.weight, tags.execution]
        while True:
            pick = next_to_place(self._waiting(), self._cores, new, entry)
            if pick is None:
                return False
            lane, core, index = pick
            if lane is _NEW:
                return self._mailboxes[core][index].offer(token, tags.weight)
            if not self._place_head(lane, core, index):
                return False

    def _wait_for_room(self, token: Token, timeout: float | None) -> Decision:
        deadline = None if timeout is None else time.monotonic() + timeout
        inline = inline_runner() is not None  # a worker: never wait on ourselves
        while True:
            if inline:
                token.advance(TokenState.WAITING, expected=_CREATED_ONLY)
                return Decision.RUN_INLINE
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return Decision.TIMED_OUT
            self._space_waiters += 1
            try:
                self._room.wait(remaining)
            finally:
                self._space_waiters -= 1
            if not self._accepting:
                return Decision.STOPPED
            decision = self._place_or_park(token, Entry.SUBMIT)
            if decision is not Decision.WAIT:
                return decision

    # -- placing what waits ------------------------------------------------------------

    def _waiting(self) -> Waiting:
        priority, backlog, held = self._lanes
        if not (priority or backlog or held or self._draining or self._closed):
            return _EMPTY
        return Waiting(self._head(priority), self._head(backlog), self._head(held),
                       self._draining, self._closed)

    def _head(self, lane: deque[Token]) -> Head | None:
        if not lane:
            return None
        tags = lane[0].tags
        return self._heads[tags.weight, tags.execution]

    def _place_head(self, lane: Lane, core: int, index: int) -> bool:
        token = self._lanes[lane][0]
        if not self._mailboxes[core][index].offer(token, token.tags.weight):
            return False
        self._lanes[lane].popleft()
        return True

    def _pump(self) -> None:
        """Place waiting tokens while any has room, then wake waiting submitters; holds the
        lock."""
        while True:
            pick = next_to_place(self._waiting(), self._cores)
            if pick is None or not self._place_head(*pick):
                break
        if self._space_waiters:
            self._room.notify_all()

    def on_take(self, box: Mailbox) -> None:
        """A worker took a token from ``box``: place what waits into the room.

        Submitters waiting for room are woken once a mailbox is down to its low-water mark,
        not on every take: one wake-up then refills many slots.
        """
        priority, backlog, held = self._lanes
        if priority or ((backlog or held) and not self._draining) or (
                self._space_waiters and box.depth() <= self._low_water):
            with self._lanes_lock:
                self._pump()

    # -- control -----------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self._draining

    def drain(self) -> None:
        with self._lanes_lock:
            self._draining = True

    def resume(self) -> None:
        """Admit again: what waits is placed now, held submissions after the backlog."""
        with self._lanes_lock:
            self._draining = False
            self._pump()

    def remove(self, token: Token) -> None:
        """Drop a killed token from the backlog or the hold at once (a mailbox or the
        priority lane skips it when it comes up)."""
        backlog, held = self._lanes[Lane.BACKLOG], self._lanes[Lane.HELD]
        if backlog or held:
            with self._lanes_lock:
                for lane in (backlog, held):
                    if token in lane:
                        lane.remove(token)

    def reclaim(self, stuck_after: float) -> list[Token]:
        """Block the mailboxes whose worker has run one call for longer than ``stuck_after``
        seconds; take back what waits in blocked mailboxes, and the backlogged tokens of
        weights whose every active mailbox is blocked. Nothing when not open."""
        taken: list[Token] = []
        with self._lanes_lock:
            if not self._accepting:
                return taken
            limit = time.monotonic() - stuck_after
            for box in self._all_boxes:
                began = box.started_at
                if began and began < limit and box.blocked_call != began:
                    box.blocked_call = began
                    logger.warning("scheduler %s: worker %d/%d has run one call for over %.0fs;"
                                   " nothing more goes to its mailbox", self.name, box.core_id,
                                   box.index, stuck_after)
                if box.blocked and box.depth():
                    queued = box.drain_nowait()
                    box.reclaimed += len(queued)
                    taken.extend(queued)
            taken.extend(self._take_stuck_backlog())
        return taken

    def _take_stuck_backlog(self) -> list[Token]:
        backlog = self._lanes[Lane.BACKLOG]
        if not backlog:
            return []
        active = self._cores.boxes
        stuck = {weight for weight, chain in self._chains.items()
                 if all(box.blocked for core in chain for box in active[core])}
        if not stuck:
            return []
        taken = [t for t in backlog if t.tags.weight in stuck]
        kept = [t for t in backlog if t.tags.weight not in stuck]
        backlog.clear()
        backlog.extend(kept)
        return taken

    def set_active(self, core: int, active: int) -> None:
        """Route new tokens of ``core`` to its first ``active`` mailboxes only."""
        boxes = dict(self._cores.boxes)
        boxes[core] = self._mailboxes[core][:active]
        self._cores = self._routing(boxes)

    def _routing(self, boxes: dict[int, Any]) -> Cores:
        slots = {ExecutionMode.THREAD: {core: len(active) for core, active in boxes.items()},
                 ExecutionMode.PROCESS: dict.fromkeys(boxes, self._processes_per_core)}
        return Cores(boxes, slots, self._capacity)

    # -- observation -------------------------------------------------------------------

    @property
    def held(self) -> int:
        return len(self._lanes[Lane.HELD])

    @property
    def backlog(self) -> int:
        return len(self._lanes[Lane.BACKLOG])

    @property
    def retries(self) -> int:
        """Retries and requeues not yet placed: the priority lane and the delay line."""
        return len(self._lanes[Lane.PRIORITY]) + len(self._delays)

    def free_capacity(self) -> dict[Weight, int]:
        """Free slots of each weight's active, unblocked mailboxes, less every token waiting
        for such a slot (backlog and priority lane), never below 0."""
        capacity = self._capacity
        free = {core: sum(capacity - box.depth() for box in boxes if not box.blocked)
                for core, boxes in self._cores.boxes.items()}
        waiting = self.backlog + len(self._lanes[Lane.PRIORITY])
        return {weight: max(0, sum(free[core] for core in chain) - waiting)
                for weight, chain in self._chains.items()}

    def refusal(self, decision: Decision, token: Token,
                timeout: float | None = None) -> TokenGateError:
        """The error a refused token fails with."""
        op, weight = token.operation_type, token.tags.weight.value
        if decision is Decision.HOLD_FULL:
            return AdmissionTimeout(
                f"{op}: agent over capacity: the scheduler is draining and its hold of "
                f"{self._limits.hold} tokens is full")
        if decision is Decision.BACKLOG_FULL:
            return AdmissionTimeout(
                f"{op}: agent over capacity: every mailbox allowed for weight {weight} is "
                f"full and the backlog holds its limit of {self._limits.backlog} tokens")
        if decision is Decision.TIMED_OUT:
            why = ("the scheduler is draining and its hold is full" if self._draining
                   else f"every mailbox allowed for weight {weight} is full")
            return AdmissionTimeout(f"{op}: no room after {timeout}s because {why} "
                                    f"(capacity {self._capacity} per mailbox)")
        return SchedulerStopped(f"scheduler {self.name} is not running")
