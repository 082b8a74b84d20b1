"""The task runner's outcome values: one table of how a run can end, what the runner returns,
and the state it leaves the token in; run on this thread (only a time limit starts the
watchdog's thread)."""

import threading

import pytest
from tokengate.node_agent.accounting import Accounts
from tokengate.node_agent.outcome import Outcome, final_state
from tokengate.node_agent.procpool import CoreProcesses
from tokengate.node_agent.runner import Hooks, TaskRunner
from tokengate.node_agent.throttle import StorageThrottle
from tokengate.node_agent.watchdog import Watchdog
from tokengate.shared.errors import TaskTimeLimit, TokenKilled
from tokengate.shared.lifecycle import FINAL_STATES, TokenState
from tokengate.shared.tags import StorageTier, parse_tags
from tokengate.shared.token import TaskToken, current_token


@pytest.mark.parametrize(("outcome", "state"), [
    (Outcome.COMPLETED, TokenState.COMPLETED),
    (Outcome.FAILED, TokenState.FAILED),
    (Outcome.TIMED_OUT, TokenState.FAILED),
    (Outcome.KILLED, TokenState.KILLED),
    (Outcome.REVOKED, TokenState.FAILED),
    (Outcome.RETRYING, None),
    (Outcome.DISCARDED, None),
    (Outcome.SKIPPED, None),
])
def test_final_state_of_each_outcome(outcome, state):
    assert final_state(outcome) is state
    assert state is None or state in FINAL_STATES


def test_every_outcome_has_a_final_state_entry():
    for outcome in Outcome:
        final_state(outcome)  # a KeyError here: an outcome the scheduler cannot count


class Gate:
    def __init__(self, admits: bool) -> None:
        self._admits = admits

    def is_open(self) -> bool:
        return True

    def wait_open(self, timeout=None) -> bool:
        return True

    def admits(self, token) -> bool:
        return self._admits


class FakeWorker:
    """What the runner reads on its worker: whether the call is inline, and (the watchdog's
    accounts) its abandoned flag."""

    inline_depth = 0
    abandoned = False


class AsksRetry:
    """An observer that asks for a retry of every failed call."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def on_finish(self, token, error, seconds):
        return self.delay


class Rig:
    def __init__(self, *, retry_after=None, gate=None, storage_cap=None):
        self.retries = []
        self.expired = threading.Event()
        hooks = Hooks()
        if retry_after is not None:
            hooks.add(AsksRetry(retry_after))
        caps = None if storage_cap is None else dict.fromkeys(StorageTier, storage_cap)
        self.throttle = StorageThrottle(caps)
        self.watchdog = Watchdog("test-outcomes", lambda *_: self.expired.set(), Accounts())
        self.runner = TaskRunner(self.throttle, CoreProcesses(lambda core: 0), hooks,
                                 lambda token, delay: self.retries.append(delay),
                                 self.watchdog)
        self.runner.start_gate = gate

    def run(self, func, **tags):
        token = TaskToken(func, (), {}, operation_type="t", tags=parse_tags(tags or None))
        assert token.admit() and token.claim(1, "worker_0_core_1")
        return token, self.runner.run(token, FakeWorker())


def returns():
    return 42


def raises():
    raise ValueError("boom")


def raises_time_limit():
    raise TaskTimeLimit("its own")


def cancels_itself():
    assert current_token().request_cancel()
    return "dropped"


@pytest.mark.parametrize(("func", "rig", "outcome", "state"), [
    (returns, {}, Outcome.COMPLETED, TokenState.COMPLETED),
    (raises, {}, Outcome.FAILED, TokenState.FAILED),
    (raises, {"retry_after": 0.5}, Outcome.RETRYING, TokenState.WAITING),
    (raises_time_limit, {"retry_after": 0.5}, Outcome.TIMED_OUT, TokenState.FAILED),
    (cancels_itself, {}, Outcome.KILLED, TokenState.KILLED),
    (returns, {"gate": Gate(admits=True)}, Outcome.COMPLETED, TokenState.COMPLETED),
])
def test_how_a_run_ends(func, rig, outcome, state):
    rig = Rig(**rig)
    token, got = rig.run(func)
    assert got is outcome
    assert token.state is state
    assert rig.retries == ([0.5] if outcome is Outcome.RETRYING else [])
    if outcome is Outcome.COMPLETED:
        assert token.result == 42


def test_a_token_the_gate_no_longer_admits_is_revoked_before_its_call():
    called = []
    token, outcome = Rig(gate=Gate(admits=False)).run(lambda: called.append(1))
    assert outcome is Outcome.REVOKED
    assert called == []
    assert token.state is TokenState.FAILED and isinstance(token.error, TokenKilled)


def test_a_thread_call_back_after_its_limit_is_discarded():
    rig = Rig()

    def outlives_its_limit():
        assert rig.expired.wait(5)  # the watchdog expired the call
        return "too late"

    token, outcome = rig.run(outlives_its_limit, timeout=0.05)
    assert outcome is Outcome.DISCARDED
    assert token.state is TokenState.EXECUTING  # the expiry's handler finishes it, not the run
    assert token.result is None


def test_a_wait_for_a_storage_slot_past_the_limit_times_out():
    rig = Rig(storage_cap=1)
    assert rig.throttle.acquire(StorageTier.SLOW)
    called = []
    token, outcome = rig.run(lambda: called.append(1), storage_speed="SLOW", timeout=0.05)
    assert outcome is Outcome.TIMED_OUT and called == []
    assert isinstance(token.error, TaskTimeLimit) and "storage slot" in token.error_message
