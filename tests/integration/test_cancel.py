"""Cooperative cancel in embedded mode, with real worker threads and processes."""

import os
import threading
import time

import cancel_tasks as tasks
import pytest
from tokengate.shared.lifecycle import TokenState

from tokengate import (
    OperationsCoordinator,
    TokenCancelled,
    TokenKilled,
    current_token,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh():
    tasks.reset()
    yield
    tasks.release.set()  # never leave a blind task waiting


def coordinator(**options):
    options.setdefault("cores", 2)
    return OperationsCoordinator(**options)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_running_task_sees_the_cancel_and_its_owner_gets_token_cancelled():
    assert current_token() is None, "no token is current outside a task"
    with coordinator() as coord:
        token = tasks.loop_until_cancelled()
        assert tasks.started.wait(10)
        assert not token.cancelled
        results: list[bool] = []
        asker = threading.Thread(target=lambda: results.append(token.cancel()))
        asker.start()
        asker.join(10)
        assert results == [True], "cancel of a running token says it was asked"
        with pytest.raises(TokenCancelled, match="cancelled while running"):
            token.get(timeout=10)
        assert token.state is TokenState.KILLED and token.cancelled
        assert tasks.stopped == [token.token_id], "the loop saw the cancel and stopped"
        assert token.cancel() is False, "a final token cannot be cancelled again"
        assert coord.wait_idle(10)
        counts = coord.snapshot()["tokens"]
        assert counts["killed"] == 1 and counts["completed"] == 0
        # The worker is free again and the next call runs normally.
        tasks.release.set()
        assert tasks.never_looks().get(timeout=10) == "a result nobody gets"


def test_a_queued_token_is_killed_by_cancel():
    with coordinator(cores=1, workers_per_core=1) as coord:
        blocker = tasks.never_looks()
        assert tasks.started.wait(10)
        queued = tasks.loop_until_cancelled()
        assert queued.cancel() is True
        with pytest.raises(TokenKilled) as caught:
            queued.get(timeout=5)
        assert not isinstance(caught.value, TokenCancelled), "it never ran: killed, as kill()"
        tasks.release.set()
        assert blocker.get(timeout=10) == "a result nobody gets"
        assert coord.wait_idle(10)
        assert tasks.loops == [] and tasks.stopped == [], "the queued task never ran"


def test_a_task_that_never_looks_runs_to_its_end_and_its_result_is_dropped():
    with coordinator() as coord:
        token = tasks.never_looks()
        assert tasks.started.wait(10)
        finished: list[TokenState] = []
        token.add_done_callback(lambda t: finished.append(t.state))
        assert token.cancel() is True
        assert not token.wait(0.2), "a thread cannot be stopped: it runs on"
        assert finished == [], "nobody hears of an end before it ends"
        assert token.state is TokenState.EXECUTING
        tasks.release.set()
        with pytest.raises(TokenCancelled):
            token.get(timeout=10)
        assert tasks.returned == ["blind"], "it ran to its end"
        assert finished == [TokenState.KILLED]
        assert token.result is None, "its result was dropped"
        assert coord.wait_idle(10)


def test_a_process_mode_call_is_stopped_by_killing_its_process(tmp_path):
    pid_file = tmp_path / "pid"
    with coordinator() as coord:
        token = tasks.spin_in_process(str(pid_file))
        deadline = time.monotonic() + 60  # the first call starts the core's process (spawn)
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and not token.done(), "the call never began"
            time.sleep(0.02)
        pid = int(pid_file.read_text())
        began = time.monotonic()
        assert token.cancel() is True
        with pytest.raises(TokenCancelled):
            token.get(timeout=10)
        assert time.monotonic() - began < 5, "stopped after the grace, not at some timeout"
        deadline = time.monotonic() + 10
        while _pid_alive(pid):
            assert time.monotonic() < deadline, "the worker process was not killed"
            time.sleep(0.02)
        # The pool replaced the process: the core's next process-mode call runs.
        fresh = tasks.process_pid().get(timeout=60)
        assert fresh != pid and fresh != os.getpid()
        assert coord.wait_idle(10)
