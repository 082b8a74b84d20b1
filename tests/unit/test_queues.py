"""AdmissionQueues with real mailboxes and no worker threads: the test takes from a mailbox
and reports the take, as a worker would, and reads the order things were placed in."""

import pytest
from tokengate.node_agent.mailbox import Mailbox
from tokengate.node_agent.placement import Decision, Entry, Limits
from tokengate.node_agent.queues import AdmissionQueues
from tokengate.shared.errors import AdmissionTimeout
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import TaskTags, Weight
from tokengate.shared.token import TaskToken


def token(name):
    return TaskToken(None, (), {}, operation_type=name, tags=TaskTags(weight=Weight.HEAVY))


@pytest.fixture
def setup():
    """One core, one mailbox of two slots; a backlog of 2, a hold of 1."""
    box = Mailbox(1, 0, 2)
    queues = AdmissionQueues("queues-test", {1: [box]}, dict.fromkeys(Weight, (1,)),
                             Limits(hold=1, backlog=2), processes_per_core=1)
    queues.open()
    return queues, box


def take(queues, box):
    taken = box.take()
    queues.on_take(box)
    return taken.operation_type


def test_retries_then_backlog_then_held_and_a_try_never_overtakes(setup):
    queues, box = setup
    assert [queues.admit(token(f"q{i}"), Entry.ENQUEUE) for i in range(4)] == [
        Decision.PLACED, Decision.PLACED, Decision.BACKLOGGED, Decision.BACKLOGGED]
    assert queues.admit(token("try"), Entry.TRY) is Decision.NOT_TAKEN
    retry = token("retry")
    retry.advance(TokenState.WAITING)
    assert queues.admit(retry, Entry.RETRY) is Decision.REQUEUED
    queues.drain()
    held = token("held")
    assert queues.admit(held, Entry.SUBMIT) is Decision.HELD
    assert held.state is TokenState.WAITING
    assert [take(queues, box) for _ in range(3)] == ["q0", "q1", "retry"]  # draining
    assert (queues.backlog, queues.held, box.depth()) == (2, 1, 0)
    queues.resume()
    assert [take(queues, box) for _ in range(3)] == ["q2", "q3", "held"]
    assert queues.entered == 5  # the four enqueued and the held one; not the try, the retry


def test_refusals_are_decisions_and_counted_as_taken(setup):
    queues, _ = setup
    for i in range(4):
        queues.admit(token(f"q{i}"), Entry.ENQUEUE)
    over = token("over")
    decision = queues.admit(over, Entry.ENQUEUE)
    assert decision is Decision.BACKLOG_FULL
    assert isinstance(queues.refusal(decision, over), AdmissionTimeout)
    assert queues.admit(token("late"), Entry.SUBMIT, timeout=0) is Decision.TIMED_OUT
    assert queues.entered == 6
    queues.drain()
    assert queues.admit(token("h"), Entry.ENQUEUE) is Decision.HELD
    assert queues.admit(token("h2"), Entry.ENQUEUE) is Decision.HOLD_FULL
    queues.stop_accepting()
    assert queues.admit(token("after"), Entry.SUBMIT) is Decision.STOPPED
    assert queues.admit(token("after"), Entry.TRY) is Decision.NOT_TAKEN


def test_close_returns_what_waits_and_refuses_retries(setup):
    queues, _ = setup
    tokens = [token(f"q{i}") for i in range(4)]
    for t in tokens:
        queues.admit(t, Entry.ENQUEUE)
    queues.stop_accepting()
    assert queues.close() == tokens[2:]  # the backlog; the mailbox's two are the caller's
    retry = token("retry")
    retry.advance(TokenState.WAITING)
    assert queues.admit(retry, Entry.RETRY) is Decision.STOPPED


def test_free_capacity_subtracts_what_waits(setup):
    queues, _ = setup
    assert queues.free_capacity() == dict.fromkeys(Weight, 2)
    for i in range(3):
        queues.admit(token(f"q{i}"), Entry.ENQUEUE)
    assert queues.free_capacity() == dict.fromkeys(Weight, 0)
