"""``LocalScheduler.enqueue``: the agent link's admission that never blocks, with real worker
threads held by a gate the tests open."""

import time

import limit_tasks as tasks
import pytest
from tokengate.node_agent.config import SchedulerConfig
from tokengate.node_agent.scheduler import LocalScheduler
from tokengate.shared.errors import (
    AdmissionTimeout,
    InvalidTransition,
    MethodBlockedException,
    SchedulerStopped,
    TokenKilled,
)
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.registry import spec_of
from tokengate.shared.tags import Weight
from tokengate.shared.token import TaskToken

pytestmark = pytest.mark.integration

CALL_BUDGET = 0.05  # seconds one enqueue may take, however full the scheduler is


@pytest.fixture(autouse=True)
def _fresh_tasks():
    tasks.reset()
    yield
    tasks.gate.set()


@pytest.fixture
def scheduler():
    """One core, one worker, two mailbox slots: the 1st token runs, 2 queue, the rest wait."""
    sched = LocalScheduler(SchedulerConfig(cores=1, workers_per_core=1, mailbox_capacity=2,
                                           backlog_capacity=20, hold_capacity=3,
                                           submit_timeout=5.0, node_name="enqueue-test"))
    sched.start()
    yield sched
    tasks.gate.set()
    sched.stop(timeout=5)


def token_of(function, *args):
    spec = spec_of(function)
    return TaskToken(spec.func, args, {}, operation_type=spec.operation_type, tags=spec.tags)


def timed_enqueue(sched, token):
    began = time.perf_counter()
    sched.enqueue(token)
    spent = time.perf_counter() - began
    assert spent < CALL_BUDGET, f"enqueue blocked for {spent:.3f}s"
    return token


def fill(sched, count):
    """Enqueue ``count`` gated tokens, the first one running (held by the gate)."""
    first = timed_enqueue(sched, token_of(tasks.gated, "g0"))
    assert tasks.entered.wait(5)
    return [first] + [timed_enqueue(sched, token_of(tasks.gated, f"g{i}"))
                      for i in range(1, count)]


def test_enqueue_never_blocks_and_the_backlog_runs_in_order(scheduler):
    tokens = fill(scheduler, 1)
    assert scheduler.free_capacity() == dict.fromkeys(Weight, 2)
    previous = 2
    for i in range(1, 10):
        tokens.append(timed_enqueue(scheduler, token_of(tasks.gated, f"g{i}")))
        free = scheduler.free_capacity()
        assert all(n >= 0 for n in free.values())
        assert free[Weight.HEAVY] <= previous
        previous = free[Weight.HEAVY]
    assert scheduler.free_capacity() == dict.fromkeys(Weight, 0)
    counts = scheduler.counts()
    assert counts["backlog"] == 7 and counts["waiting"] == 9 and counts["executing"] == 1
    assert [t.state for t in tokens[3:]] == [TokenState.WAITING] * 7
    assert scheduler.in_flight() == 3  # backlogged tokens are not admitted work yet

    victim = tokens[5]
    assert scheduler.kill(victim.token_id)
    assert victim.state is TokenState.KILLED
    assert scheduler.counts()["backlog"] == 6

    tasks.gate.set()
    assert [t.get(timeout=10) for t in tokens if t is not victim] == [
        f"g{i}" for i in range(10) if i != 5]
    assert tasks.ran == [f"g{i}" for i in range(10) if i != 5]  # FIFO, the killed one never ran
    with pytest.raises(TokenKilled):
        victim.get(timeout=1)
    assert scheduler.wait_idle(5)
    counts = scheduler.counts()
    assert (counts["backlog"], counts["waiting"], counts["completed"], counts["killed"]) == (
        0, 0, 9, 1)
    assert scheduler.free_capacity() == dict.fromkeys(Weight, 2)


def test_free_capacity_subtracts_the_backlog_from_every_weight():
    sched = LocalScheduler(SchedulerConfig(cores=2, workers_per_core=1, mailbox_capacity=3,
                                           node_name="capacity-test")).start()
    try:
        # 2 cores: heavy may use both mailboxes (6 slots), medium and light only core 2's (3).
        assert sched.free_capacity() == {Weight.HEAVY: 6, Weight.MEDIUM: 3, Weight.LIGHT: 3}
        tokens = [timed_enqueue(sched, token_of(tasks.gated_light, "l0"))]
        assert tasks.entered.wait(5)
        tokens += [timed_enqueue(sched, token_of(tasks.gated_light, f"l{i}"))
                   for i in range(1, 6)]  # 1 runs, 3 fill core 2's mailbox, 2 wait
        assert sched.counts()["backlog"] == 2
        # Core 1's 3 free slots less the whole backlog; core 2's 0 less it, floored at 0.
        assert sched.free_capacity() == {Weight.HEAVY: 1, Weight.MEDIUM: 0, Weight.LIGHT: 0}
    finally:
        tasks.gate.set()
        sched.stop(timeout=5)
    assert all(t.state is TokenState.COMPLETED for t in tokens)
    assert all(t.core_id == 2 for t in tokens)


def test_drain_holds_enqueued_tokens_until_resume(scheduler):
    running = fill(scheduler, 1)
    scheduler.drain("maintenance")
    held = [timed_enqueue(scheduler, token_of(tasks.quick, f"h{i}")) for i in range(3)]
    assert [t.state for t in held] == [TokenState.WAITING] * 3
    counts = scheduler.counts()
    assert counts["held"] == 3 and counts["backlog"] == 0
    over = timed_enqueue(scheduler, token_of(tasks.quick, "over"))  # the hold holds 3
    with pytest.raises(AdmissionTimeout, match="draining and its hold of 3 tokens is full"):
        over.get(timeout=1)
    tasks.gate.set()
    assert running[0].get(timeout=5) == "g0"
    assert scheduler.wait_idle(5)
    assert scheduler.state_name() == "drained"
    assert "h0" not in tasks.ran
    scheduler.resume()
    assert [t.get(timeout=5) for t in held] == ["h0", "h1", "h2"]


def test_a_drain_holds_the_backlog_too(scheduler):
    tokens = fill(scheduler, 6)  # 1 running, 2 queued, 3 in the backlog
    assert scheduler.counts()["backlog"] == 3
    scheduler.drain()
    tasks.gate.set()
    assert [t.get(timeout=5) for t in tokens[:3]] == ["g0", "g1", "g2"]
    assert scheduler.wait_idle(5) and scheduler.state_name() == "drained"
    assert [t.state for t in tokens[3:]] == [TokenState.WAITING] * 3
    scheduler.resume()
    assert [t.get(timeout=5) for t in tokens[3:]] == ["g3", "g4", "g5"]


def test_stop_fails_the_backlog_with_scheduler_stopped():
    sched = LocalScheduler(SchedulerConfig(cores=1, workers_per_core=1, mailbox_capacity=2,
                                           backlog_capacity=20, node_name="stop-test")).start()
    tokens = [timed_enqueue(sched, token_of(tasks.gated, "g0"))]
    assert tasks.entered.wait(5)
    tokens += [timed_enqueue(sched, token_of(tasks.gated, f"g{i}")) for i in range(1, 6)]
    sched.stop(timeout=0.2)
    for token in tokens[1:]:
        with pytest.raises(SchedulerStopped):
            token.get(timeout=5)
    late = timed_enqueue(sched, token_of(tasks.quick, "late"))  # returns; the token fails
    with pytest.raises(SchedulerStopped):
        late.get(timeout=1)
    tasks.gate.set()
    assert tokens[0].get(timeout=5) == "g0"  # the running one was left to finish
    assert tasks.ran == ["g0"]


def test_the_backlog_cap_refuses_with_admission_timeout():
    sched = LocalScheduler(SchedulerConfig(cores=1, workers_per_core=1, mailbox_capacity=2,
                                           backlog_capacity=2, node_name="cap-test")).start()
    try:
        tokens = [timed_enqueue(sched, token_of(tasks.gated, "g0"))]
        assert tasks.entered.wait(5)
        tokens += [timed_enqueue(sched, token_of(tasks.gated, f"g{i}")) for i in range(1, 5)]
        assert sched.counts()["backlog"] == 2
        refused = timed_enqueue(sched, token_of(tasks.gated, "refused"))
        with pytest.raises(AdmissionTimeout, match="agent over capacity"):
            refused.get(timeout=1)
        assert sched.counts()["backlog"] == 2 and sched.counts()["failed"] == 1
        tasks.gate.set()
        assert [t.get(timeout=5) for t in tokens] == [f"g{i}" for i in range(5)]
    finally:
        tasks.gate.set()
        sched.stop(timeout=5)
    assert "refused" not in tasks.ran


class Refuser:
    def on_admit(self, token):
        raise MethodBlockedException(f"{token.operation_type} is blocked")


def test_an_observer_refusal_finishes_the_token_and_enqueue_returns(scheduler):
    scheduler.add_observer(Refuser())
    token = timed_enqueue(scheduler, token_of(tasks.quick, "no"))
    with pytest.raises(MethodBlockedException, match="quick is blocked"):
        token.get(timeout=1)
    assert "no" not in tasks.ran and scheduler.token(token.token_id) is None


def test_enqueue_refuses_a_token_that_was_admitted_before(scheduler):
    token = timed_enqueue(scheduler, token_of(tasks.quick, "once"))
    assert token.get(timeout=5) == "once"
    with pytest.raises(InvalidTransition):
        scheduler.enqueue(token)


def test_new_submissions_do_not_overtake_the_backlog(scheduler):
    tokens = fill(scheduler, 4)  # 1 running, 2 queued, 1 in the backlog
    assert scheduler.counts()["backlog"] == 1
    assert not scheduler.try_submit(token_of(tasks.quick, "overtaker"))
    tasks.gate.set()
    assert [t.get(timeout=5) for t in tokens] == ["g0", "g1", "g2", "g3"]
