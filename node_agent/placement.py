"""What the scheduler places next, and where: pure decisions over plain data.

The scheduler's waiting tokens sit in three lanes (see :mod:`node_agent.queues`, their owner):

- ``PRIORITY``: retries and requeues. Placed first, even while draining.
- ``BACKLOG``: tokens ``enqueue`` could not place at once (the agent's link never waits).
- ``HELD``: submissions that came during a drain (or behind such submissions after it).

A token being admitted now is the ``NEW`` lane. :func:`next_to_place` answers, for the heads
of the lanes and the mailbox loads, which lane's head goes next and to which ``(core,
mailbox)``: the first lane, in that order, whose head has a route (a lane whose head has none
waits, the others are still tried); backlog and held not while draining; a new token only
when nothing it must queue behind is waiting (a submission waits behind all three lanes,
``enqueue`` behind the priority lane and the backlog) and never while draining. Routing is
:func:`node_agent.policy.choose_route`'s alone. :func:`park` answers where a new token that
could not be placed waits, or why it is refused.

No locks, threads or clocks: the owner reads its lanes and mailboxes, asks, and acts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import NamedTuple, TypeAlias

from tokengate.node_agent.policy import MailboxView, choose_route
from tokengate.shared.tags import ExecutionMode


class Lane(IntEnum):
    """Where a token waits, in placement order."""

    PRIORITY = 0
    BACKLOG = 1
    HELD = 2
    NEW = 3


class Entry(Enum):
    """How a token comes in: which public method admits it."""

    SUBMIT = "submit"    # may wait for room; held during a drain
    TRY = "try"          # only if it can be placed now; otherwise not taken
    ENQUEUE = "enqueue"  # never waits: placed, held, backlogged or refused
    RETRY = "retry"      # a retry or requeue: the priority lane


# The lanes a new token must not overtake, per entry.
_AHEAD: dict[Entry, tuple[Lane, ...]] = {
    Entry.SUBMIT: (Lane.PRIORITY, Lane.BACKLOG, Lane.HELD),
    Entry.TRY: (Lane.PRIORITY, Lane.BACKLOG, Lane.HELD),
    Entry.ENQUEUE: (Lane.PRIORITY, Lane.BACKLOG),
    Entry.RETRY: (Lane.PRIORITY,),
}


# Enum members read through module names: on Python 3.11 ``Lane.NEW`` costs ~90 ns a read.
_PRIORITY, _BACKLOG, _HELD, _NEW = Lane
_LANES = (_PRIORITY, _BACKLOG, _HELD)
_NO_HEADS = (None, None, None)


class Decision(Enum):
    """What became of a token offered to the queues."""

    PLACED = "placed"              # in a mailbox (or found final and dropped)
    HELD = "held"                  # WAITING in the drain hold
    BACKLOGGED = "backlogged"      # WAITING in the backlog
    REQUEUED = "requeued"          # in the priority lane
    WAIT = "wait"                  # no room now: a submission waits for some
    RUN_INLINE = "run_inline"      # no room and the caller is a worker: it runs the token
    NOT_TAKEN = "not_taken"        # ``try``: no room now; the caller keeps the token
    STOPPED = "stopped"            # refused: the scheduler does not admit any more
    HOLD_FULL = "hold_full"        # refused: draining and the hold is full
    BACKLOG_FULL = "backlog_full"  # refused: no room and the backlog is full
    TIMED_OUT = "timed_out"        # refused: a submission found no room in time


class Head(NamedTuple):
    """What placement needs of a waiting token: its weight's chain and its execution mode."""

    chain: tuple[int, ...]
    mode: ExecutionMode


# What to place next: ``(lane, core, mailbox index)``. A plain tuple, not a NamedTuple: it is
# built on every submission, and a NamedTuple's constructor costs ~0.2 us more.
Placement: TypeAlias = tuple[Lane, int, int]


@dataclass(frozen=True, slots=True)
class Waiting:
    """The heads of the three lanes (None: empty) and the admission flags."""

    priority: Head | None = None
    backlog: Head | None = None
    held: Head | None = None
    draining: bool = False
    stopped: bool = False


@dataclass(frozen=True, slots=True)
class Cores:
    """Each core's active mailboxes, its execution slots per mode, and the mailbox capacity."""

    boxes: Mapping[int, Sequence[MailboxView]]
    slots: Mapping[ExecutionMode, Mapping[int, int]]
    capacity: int


@dataclass(frozen=True, slots=True)
class Limits:
    """How many tokens the drain hold and the backlog may keep."""

    hold: int
    backlog: int


def route(head: Head, cores: Cores) -> tuple[int, int] | None:
    """The policy's ``(core, mailbox)`` for ``head``, or None when its cores are full."""
    return choose_route(head.chain, cores.boxes, cores.slots[head.mode], cores.capacity)


def next_to_place(
    waiting: Waiting, cores: Cores, new: Head | None = None, entry: Entry = Entry.SUBMIT
) -> Placement | None:
    """The next token to place and where; None when nothing can be placed now."""
    if waiting.stopped:
        return None
    heads = (waiting.priority, waiting.backlog, waiting.held)
    if heads != _NO_HEADS:  # (the common case, nothing waiting, skips this loop)
        for lane, head in zip(_LANES, heads, strict=True):
            if head is None or (waiting.draining and lane is not _PRIORITY):
                continue
            where = route(head, cores)
            if where is not None:
                return lane, where[0], where[1]
        if new is not None:
            for lane in _AHEAD[entry]:
                if heads[lane] is not None:
                    return None
    if new is None or waiting.draining:
        return None
    where = choose_route(new.chain, cores.boxes, cores.slots[new.mode], cores.capacity)
    return None if where is None else (_NEW, where[0], where[1])


def park(entry: Entry, draining: bool, held: int, backlog: int, limits: Limits) -> Decision:
    """Where a new token that was not placed goes, given the lanes' lengths now."""
    if entry is Entry.RETRY:
        return Decision.REQUEUED
    if entry is Entry.TRY:
        return Decision.NOT_TAKEN
    if entry is Entry.SUBMIT:
        if (draining or held) and held < limits.hold:
            return Decision.HELD
        return Decision.WAIT
    if draining:
        return Decision.HELD if held < limits.hold else Decision.HOLD_FULL
    return Decision.BACKLOGGED if backlog < limits.backlog else Decision.BACKLOG_FULL
