"""Core-affinity policy and routing, as pure functions over plain data.

No locks, threads or clocks here: the scheduler reads its mailboxes, calls these, and acts.

Preference chains (seed): heavy work may use cores ``1..N`` and prefers core 1; medium uses
``2..N``; light uses ``3..N``. With 2 cores: heavy ``[1, 2]``, medium ``[2]``, light ``[2]``;
with 1 core everything runs on core 1.

Routing: a token goes to the first core of its chain that has a free execution slot (an idle
worker thread, or for process-mode work an idle worker process); when none has, to the core of
its chain with the lowest load per slot, ties to the earlier core. Inside the core, to the
least loaded active mailbox that is not full. When every allowed mailbox is full the answer is
None: the caller applies backpressure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tokengate.shared.tags import Weight


@dataclass(frozen=True, slots=True)
class CorePreference:
    allowed_cores: tuple[int, ...]

    @property
    def preferred_core(self) -> int:
        return self.allowed_cores[0]


def preference_chain(weight: Weight, num_cores: int) -> tuple[int, ...]:
    """The cores (1-based) a task of ``weight`` may run on, most preferred first."""
    if num_cores < 1:
        raise ValueError(f"num_cores must be at least 1, got {num_cores}")
    first_core = {Weight.HEAVY: 1, Weight.MEDIUM: 2, Weight.LIGHT: 3}[weight]
    if num_cores >= first_core:
        return tuple(range(first_core, num_cores + 1))
    # Fallbacks for small hosts: light falls back to medium's cores, medium to core 1.
    if weight is Weight.LIGHT:
        return preference_chain(Weight.MEDIUM, num_cores)
    return (1,)


def build_policy(num_cores: int) -> dict[Weight, CorePreference]:
    return {weight: CorePreference(preference_chain(weight, num_cores)) for weight in Weight}


class MailboxView(Protocol):
    """What routing reads of a mailbox: tokens queued now, 1 while its worker is busy, and
    whether that worker is blocked (its call judged too long: nothing is routed there).

    The scheduler passes its live mailboxes; tests pass plain values (see ``StaticLoad``).
    """

    busy: int

    @property
    def blocked(self) -> bool: ...

    def depth(self) -> int: ...


@dataclass(frozen=True, slots=True)
class StaticLoad:
    """A fixed mailbox load, for tables and tests."""

    queued: int
    busy: int = 0
    blocked: bool = False

    def depth(self) -> int:
        return self.queued


def least_loaded_mailbox(mailboxes: Sequence[MailboxView], capacity: int) -> int | None:
    """Index of the least loaded mailbox with room, the lowest index on ties; None if all full.

    A mailbox's load is its queued tokens plus one while its worker is busy.
    """
    best: int | None = None
    best_load = 0
    for index, box in enumerate(mailboxes):
        depth = box.depth()
        if depth >= capacity:
            continue
        load = depth + box.busy
        if best is None or load < best_load:
            best, best_load = index, load
    return best


def choose_route(
    chain: Sequence[int],
    cores: Mapping[int, Sequence[MailboxView]],
    slots: Mapping[int, int],
    capacity: int,
) -> tuple[int, int] | None:
    """Pick ``(core, mailbox index)`` for one token, or None when every option is full.

    ``cores`` maps each core of the chain to its *active* mailboxes; ``slots`` maps it to
    how many tasks it executes at once in this token's execution mode. A blocked mailbox
    counts as full. One pass over the mailboxes: this runs on every submission.
    """
    best: tuple[int, int] | None = None
    best_ratio = 0.0
    for core in chain:
        # Written for speed (no enumerate, no max()): this is the embedded hot path.
        pick = -1
        pick_load = total = index = 0
        for box in cores[core]:
            depth = box.depth()
            load = depth + box.busy
            total += load
            if depth < capacity and (pick < 0 or load < pick_load) and not box.blocked:
                pick = index
                pick_load = load
            index += 1
        if pick < 0:
            continue
        core_slots = slots[core]
        if core_slots < 1:
            core_slots = 1
        if total < core_slots:
            return core, pick
        ratio = total / core_slots
        if best is None or ratio < best_ratio:
            best = (core, pick)
            best_ratio = ratio
    return best
