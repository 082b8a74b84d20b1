"""What the scheduler places next and where: tables over plain data, no threads."""

import pytest
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
from tokengate.node_agent.policy import StaticLoad
from tokengate.shared.tags import ExecutionMode

T, P = ExecutionMode.THREAD, ExecutionMode.PROCESS
HEAVY = Head((1, 2), T)    # two cores: heavy may use both, prefers core 1
LIGHT = Head((2,), T)      # light only core 2
HEAVY_PROC = Head((1, 2), P)

IDLE = (0, 0)
BUSY2 = (2, 1)             # a busy worker with 2 queued behind it
FULL = (4, 1)              # capacity 4 below


def cores(per_core, capacity=120, processes=1):
    boxes = {core: [StaticLoad(q, b) for q, b in loads] for core, loads in per_core.items()}
    slots = {T: {core: len(loads) for core, loads in boxes.items()},
             P: dict.fromkeys(boxes, processes)}
    return Cores(boxes, slots, capacity)


ALL_IDLE = cores({1: [IDLE, IDLE], 2: [IDLE, IDLE]})
CORE2_FULL = cores({1: [IDLE, IDLE], 2: [FULL, FULL]}, capacity=4)
ALL_FULL = cores({1: [FULL], 2: [FULL]}, capacity=4)
# The case: core 1 has one idle and three busy mailboxes (2 queued each), core 2 idle.
SKEWED = cores({1: [IDLE, BUSY2, BUSY2, BUSY2], 2: [IDLE, IDLE, IDLE, IDLE]})


@pytest.mark.parametrize(
    ("waiting", "loads", "new", "entry", "expected"),
    [
        # Nothing waits: the new token goes where the policy routes it.
        (Waiting(), ALL_IDLE, HEAVY, Entry.SUBMIT, (Lane.NEW, 1, 0)),
        (Waiting(), SKEWED, HEAVY, Entry.SUBMIT, (Lane.NEW, 2, 0)),
        (Waiting(), SKEWED, HEAVY, Entry.ENQUEUE, (Lane.NEW, 2, 0)),
        (Waiting(), cores({1: [(1, 0), IDLE], 2: [IDLE, IDLE]}), HEAVY_PROC, Entry.SUBMIT,
         (Lane.NEW, 2, 0)),  # one process per core: the 2nd goes to core 2
        (Waiting(), ALL_FULL, HEAVY, Entry.SUBMIT, None),
        (Waiting(), CORE2_FULL, LIGHT, Entry.TRY, None),
        # Lanes in order: priority, then backlog, then held, then the newcomer.
        (Waiting(HEAVY, HEAVY, HEAVY), ALL_IDLE, HEAVY, Entry.SUBMIT,
         (Lane.PRIORITY, 1, 0)),
        (Waiting(None, HEAVY, HEAVY), ALL_IDLE, HEAVY, Entry.SUBMIT,
         (Lane.BACKLOG, 1, 0)),
        (Waiting(None, None, HEAVY), ALL_IDLE, HEAVY, Entry.SUBMIT,
         (Lane.HELD, 1, 0)),
        # A head with no room waits; the next lane's head is still placed.
        (Waiting(LIGHT, HEAVY), CORE2_FULL, None, Entry.SUBMIT, (Lane.BACKLOG, 1, 0)),
        (Waiting(LIGHT, None, HEAVY), CORE2_FULL, None, Entry.SUBMIT,
         (Lane.HELD, 1, 0)),
        # ... but a newcomer never overtakes what it must queue behind.
        (Waiting(LIGHT), CORE2_FULL, HEAVY, Entry.SUBMIT, None),
        (Waiting(None, LIGHT), CORE2_FULL, HEAVY, Entry.TRY, None),
        (Waiting(None, LIGHT), CORE2_FULL, HEAVY, Entry.ENQUEUE, None),
        (Waiting(None, None, LIGHT), CORE2_FULL, HEAVY, Entry.SUBMIT, None),
        (Waiting(None, None, LIGHT), CORE2_FULL, HEAVY, Entry.TRY, None),
        # enqueue queues behind the priority lane and the backlog, not behind held ones.
        (Waiting(None, None, LIGHT), CORE2_FULL, HEAVY, Entry.ENQUEUE,
         (Lane.NEW, 1, 0)),
        # Draining: retries still go in; backlog, held and newcomers wait.
        (Waiting(HEAVY, HEAVY, HEAVY, draining=True), ALL_IDLE, HEAVY, Entry.SUBMIT,
         (Lane.PRIORITY, 1, 0)),
        (Waiting(None, HEAVY, HEAVY, draining=True), ALL_IDLE, HEAVY, Entry.ENQUEUE, None),
        (Waiting(draining=True), ALL_IDLE, HEAVY, Entry.SUBMIT, None),
        # Stopped: nothing is placed.
        (Waiting(HEAVY, stopped=True), ALL_IDLE, HEAVY, Entry.SUBMIT, None),
    ],
)
def test_next_to_place(waiting, loads, new, entry, expected):
    assert next_to_place(waiting, loads, new, entry) == expected


def test_routing_is_the_policys_even_when_the_preferred_core_has_an_idle_mailbox():
    # The old shortcut took core 1's idle mailbox; the policy sees core 1 loaded 9 over 4
    # slots and core 2 with free slots, and so does placement.
    assert next_to_place(Waiting(), SKEWED, HEAVY) == (Lane.NEW, 2, 0)
    assert next_to_place(Waiting(HEAVY), SKEWED) == (Lane.PRIORITY, 2, 0)


LIMITS = Limits(hold=2, backlog=3)


@pytest.mark.parametrize(
    ("entry", "draining", "held", "backlog", "expected"),
    [
        (Entry.RETRY, False, 0, 0, Decision.REQUEUED),
        (Entry.RETRY, True, 2, 3, Decision.REQUEUED),
        (Entry.TRY, False, 0, 0, Decision.NOT_TAKEN),
        (Entry.TRY, True, 0, 0, Decision.NOT_TAKEN),
        (Entry.SUBMIT, False, 0, 3, Decision.WAIT),       # no room: wait for some
        (Entry.SUBMIT, True, 0, 0, Decision.HELD),        # draining: held
        (Entry.SUBMIT, True, 2, 0, Decision.WAIT),        # hold full: wait
        (Entry.SUBMIT, False, 1, 0, Decision.HELD),       # behind held ones, after a resume
        (Entry.ENQUEUE, True, 1, 0, Decision.HELD),
        (Entry.ENQUEUE, True, 2, 0, Decision.HOLD_FULL),
        (Entry.ENQUEUE, False, 2, 2, Decision.BACKLOGGED),
        (Entry.ENQUEUE, False, 0, 3, Decision.BACKLOG_FULL),
    ],
)
def test_park(entry, draining, held, backlog, expected):
    assert park(entry, draining, held, backlog, LIMITS) is expected
