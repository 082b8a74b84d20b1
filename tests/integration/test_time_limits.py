"""Time limits (the ``timeout`` tag) with real worker threads and real worker processes.

The tests wait on the limits themselves (0.3 s for threads, 0.5 s for processes) and assert
with margins; everything else synchronizes on events the tasks set.
"""

import os
import time

import limit_tasks as tasks
import pytest
from tokengate.shared.errors import TaskTimeLimit
from tokengate.shared.lifecycle import TokenState

from tokengate import OperationsCoordinator

pytestmark = pytest.mark.integration

LATE = 0.35  # seconds past the deadline we accept on a busy 2-core machine (goal: ~0.1)


@pytest.fixture(autouse=True)
def _fresh_tasks():
    tasks.reset()
    yield
    tasks.gate.set()  # let every abandoned call return


def coordinator(**options):
    options.setdefault("cores", 1)
    options.setdefault("workers_per_core", 1)
    options.setdefault("submit_timeout", 10.0)
    return OperationsCoordinator(**options)


def wait_until(predicate, timeout=10.0):
    """Poll what no event signals (a thread ending after its last statement)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def overrun(token) -> float:
    """Seconds from the token's start of execution to its failure."""
    return token.timestamps[TokenState.FAILED] - token.timestamps[TokenState.EXECUTING]


def test_a_thread_call_past_its_limit_fails_and_the_mailbox_keeps_flowing():
    with coordinator() as coord:
        hung = tasks.hang("hung")
        behind = tasks.quick("behind")  # queued in the same (only) mailbox
        with pytest.raises(TaskTimeLimit) as info:
            hung.get(timeout=5)
        assert 0.3 <= overrun(hung) < 0.3 + LATE
        message = str(info.value)
        for part in ("task hang", "limit_tasks:hang", hung.token_id, "0.3s",
                     "worker_0_core_1"):
            assert part in message
        assert "gate.wait" in hung.traceback_text  # where the call hung
        assert behind.get(timeout=2) == "behind"  # served by the fresh worker
        assert behind.worker_id == "worker_0r1_core_1"
        snapshot = coord.snapshot()
        assert snapshot["stuck"] == 1 and snapshot["cores"][0]["stuck"] == [1]
        counts = snapshot["tokens"]
        assert (counts["executing"], counts["failed"], counts["completed"]) == (0, 1, 1)
        assert coord.wait_idle(5)  # the abandoned call does not hold up idleness
        assert coord.snapshot()["state"] == "running"

        tasks.gate.set()
        assert tasks.returned.wait(5)
        wait_until(lambda: coord.snapshot()["stuck"] == 0)
        assert coord.snapshot()["cores"][0]["stuck"] == [0]
        # The late return changed nothing.
        assert hung.state is TokenState.FAILED and isinstance(hung.error, TaskTimeLimit)
        assert hung.result is None
        counts = coord.snapshot()["tokens"]
        assert (counts["failed"], counts["completed"], counts["executing"]) == (1, 1, 0)
        assert tasks.quick("after").get(timeout=2) == "after"
        assert [w.worker_id for w in coord.scheduler.workers()] == ["worker_0r1_core_1"]


def test_a_late_error_is_dropped_too_and_the_guards_see_one_time_limit_failure():
    with coordinator() as coord:
        token = tasks.hang_then_fail("x")
        with pytest.raises(TaskTimeLimit):
            token.get(timeout=5)
        tasks.gate.set()
        assert tasks.returned.wait(5)
        wait_until(lambda: coord.snapshot()["stuck"] == 0)
        assert isinstance(token.error, TaskTimeLimit) and token.attempt == 1
        status = coord.status()
        method = status["guard_house"]["methods"]["limit_tasks:hang_then_fail"]
        assert (method["attempts"], method["failures"], method["retries"]) == (1, 1, 0)
        records = [r for r in coord.guards.history.records() if r.token_id == token.token_id]
        assert [(r.success, r.error_type) for r in records] == [(False, "TaskTimeLimit")]
        assert status["token_pool"]["retried"] == 0


class AlwaysRetry:
    """An observer that asks for a retry of every failure; a time limit must not get one."""

    def __init__(self):
        self.errors = []

    def on_finish(self, token, error, seconds):
        if error is not None:
            self.errors.append(type(error).__name__)
            return 0.01
        return None


def test_a_timed_out_call_is_never_retried():
    with coordinator() as coord:
        retry = AlwaysRetry()
        coord.scheduler.add_observer(retry)
        token = tasks.hang("once")
        with pytest.raises(TaskTimeLimit):
            token.get(timeout=5)
        assert token.attempt == 1 and retry.errors == ["TaskTimeLimit"]
        assert tasks.quick("next").get(timeout=2) == "next"
        assert tasks.ran == ["once", "next"]  # the hung call never ran a second time
        assert coord.snapshot()["tokens"]["retried"] == 0


def test_a_call_within_its_limit_is_untouched():
    with coordinator() as coord:
        assert [tasks.in_time(f"t{i}").get(timeout=5) for i in range(20)] == [
            f"t{i}" for i in range(20)]
        snapshot = coord.snapshot()
        assert snapshot["stuck"] == 0
        assert snapshot["tokens"]["completed"] == 20
        assert [w.worker_id for w in coord.scheduler.workers()] == ["worker_0_core_1"]


def test_calls_without_a_limit_never_start_the_watchdog():
    with coordinator() as coord:
        assert [tasks.quick(str(i)).get(timeout=5) for i in range(10)]
        assert coord.scheduler._watchdog._thread is None


def test_waiting_for_a_storage_slot_counts_and_abandons_no_thread():
    with coordinator(workers_per_core=11) as coord:
        writers = [tasks.slow_writer(f"w{i}") for i in range(10)]
        wait_until(lambda: coord.scheduler.throttle.stats()["SLOW"]["active"] == 10)
        token = tasks.slow_in_time("starved")
        with pytest.raises(TaskTimeLimit, match="waited all that time for a SLOW storage slot"):
            token.get(timeout=5)
        assert 0.3 <= overrun(token) < 0.3 + LATE
        assert coord.snapshot()["stuck"] == 0  # the worker itself gave up waiting
        tasks.gate.set()
        assert [w.get(timeout=5) for w in writers] == [f"w{i}" for i in range(10)]
        assert "starved" not in tasks.ran
        assert coord.scheduler.throttle.stats()["SLOW"]["active"] == 0


def test_an_inline_child_past_its_limit_leaves_its_parent_running():
    # One worker: the parent runs the child inline while it waits on it.
    with coordinator() as coord:
        parent = tasks.parent_of_hang("p")
        assert tasks.entered.wait(5)
        [child] = tasks.children
        behind = tasks.quick("behind")
        assert behind.get(timeout=3) == "behind"  # a fresh worker took the mailbox
        assert child.state is TokenState.FAILED and isinstance(child.error, TaskTimeLimit)
        snapshot = coord.snapshot()
        assert snapshot["stuck"] == 1
        assert snapshot["tokens"]["executing"] == 1  # the parent runs on, on the old thread
        assert not coord.wait_idle(0.05)              # and is still in flight
        tasks.gate.set()
        assert parent.get(timeout=5) == "p saw TaskTimeLimit"
        assert coord.wait_idle(5)
        wait_until(lambda: coord.snapshot()["stuck"] == 0)
        counts = coord.snapshot()["tokens"]
        assert (counts["completed"], counts["failed"], counts["executing"]) == (2, 1, 0)


def test_a_process_call_past_its_limit_is_terminated_and_the_core_works_after():
    with coordinator() as coord:
        first_pid = tasks.pid().get(timeout=60)  # start the core's worker process
        token = tasks.sleep_forever()
        with pytest.raises(TaskTimeLimit, match=f"worker process {first_pid} on core 1 was "
                                                "terminated"):
            token.get(timeout=10)
        assert 0.5 <= overrun(token) < 0.5 + LATE
        assert "task sleep_forever" in token.error_message and "0.5s" in token.error_message
        with pytest.raises(ProcessLookupError):
            os.kill(first_pid, 0)  # gone, not left sleeping
        next_pid = tasks.pid().get(timeout=60)
        assert next_pid != first_pid
        assert tasks.pid_in_time().get(timeout=60) == next_pid
        snapshot = coord.snapshot()
        assert snapshot["stuck"] == 0  # no thread was abandoned: only the process
        assert snapshot["tokens"]["failed"] == 1 and snapshot["tokens"]["completed"] == 3


def test_starting_a_worker_process_does_not_count_against_the_limit():
    # A spawned interpreter importing TokenGate takes well over 0.1 s; the call itself not.
    with coordinator() as coord:
        token = tasks.pid_tight_limit()
        assert isinstance(token.get(timeout=60), int)
        assert token.elapsed > 0.1  # the start was inside EXECUTING, yet not held against it
        assert coord.snapshot()["tokens"]["failed"] == 0


def test_a_process_call_past_its_limit_is_not_retried():
    with coordinator() as coord:
        retry = AlwaysRetry()
        coord.scheduler.add_observer(retry)
        tasks.pid().get(timeout=60)
        token = tasks.sleep_forever()
        with pytest.raises(TaskTimeLimit):
            token.get(timeout=10)
        assert token.attempt == 1 and retry.errors == ["TaskTimeLimit"]
        assert coord.snapshot()["tokens"]["retried"] == 0
