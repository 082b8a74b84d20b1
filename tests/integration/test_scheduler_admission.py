"""Admission through a real LocalScheduler: routing follows the pure policy, and every entry
point counts the same way. Real worker threads, held by a gate the test opens."""

import time

import limit_tasks as tasks
import pytest
from tokengate.node_agent.config import SchedulerConfig
from tokengate.node_agent.scheduler import LocalScheduler
from tokengate.shared.errors import AdmissionTimeout
from tokengate.shared.registry import spec_of
from tokengate.shared.tags import Weight
from tokengate.shared.token import TaskToken

pytestmark = pytest.mark.integration


def token_of(function, *args):
    spec = spec_of(function)
    return TaskToken(spec.func, args, {}, operation_type=spec.operation_type, tags=spec.tags)


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_a_heavy_token_goes_to_the_idle_core_not_the_idle_mailbox_of_a_loaded_one():
    tasks.reset()
    sched = LocalScheduler(SchedulerConfig(cores=2, workers_per_core=4, mailbox_capacity=8,
                                           node_name="routing-test")).start()
    gated = []
    try:
        core1 = sched.mailboxes[1]
        # Core 1: mailboxes 1..3 busy, 2 queued behind each; mailbox 0 idle and empty.
        for box in core1[1:]:
            for i in range(3):
                token = token_of(tasks.gated, f"{box.index}.{i}")
                assert box.offer(token, Weight.HEAVY)
                gated.append(token)
        wait_until(lambda: all(box.busy and box.depth() == 2 for box in core1[1:]))
        assert not core1[0].busy and core1[0].depth() == 0

        probe = token_of(tasks.quick, "probe")
        sched.submit(probe, timeout=5)
        assert probe.get(timeout=5) == "probe"
        assert probe.core_id == 2  # the policy's (2, 0), not core 1's idle mailbox
        assert core1[0].enqueued == 0
    finally:
        tasks.gate.set()
        sched.stop(timeout=5)
    assert all(t.get(timeout=5) for t in gated)


def test_every_entry_point_counts_the_same_way():
    tasks.reset()
    sched = LocalScheduler(SchedulerConfig(cores=1, workers_per_core=1, mailbox_capacity=1,
                                           backlog_capacity=1, node_name="count-test")).start()
    try:
        running = token_of(tasks.gated, "g0")
        sched.submit(running)
        assert tasks.entered.wait(5)
        queued = token_of(tasks.gated, "g1")
        assert sched.try_submit(queued)                         # taken: counted
        assert not sched.try_submit(token_of(tasks.quick, "no"))  # not taken: not counted
        late = token_of(tasks.quick, "late")
        with pytest.raises(AdmissionTimeout):
            sched.submit(late, timeout=0.05)                    # taken, then refused
        backlogged = token_of(tasks.gated, "g2")
        sched.enqueue(backlogged)
        refused = token_of(tasks.quick, "refused")
        sched.enqueue(refused)                                  # taken, then refused
        counts = sched.counts()
        assert (counts["submitted"], counts["failed"], counts["backlog"]) == (5, 2, 1)
        tasks.gate.set()
        assert [t.get(timeout=5) for t in (running, queued, backlogged)] == ["g0", "g1", "g2"]
        assert sched.wait_idle(5)
        counts = sched.counts()
        assert counts["submitted"] == counts["completed"] + counts["failed"] + counts["killed"]
        assert (counts["completed"], counts["failed"]) == (3, 2)
    finally:
        tasks.gate.set()
        sched.stop(timeout=5)
