"""The token state machine and the TaskToken's transitions, with no scheduler."""

import threading

import pytest
from tokengate.shared.errors import InvalidTransition, TokenKilled, TokenTimeout
from tokengate.shared.lifecycle import TRANSITIONS, TokenState, can_transition, check_transition
from tokengate.shared.tags import TaskTags
from tokengate.shared.token import TaskToken

S = TokenState


def make_token():
    return TaskToken(None, (), {}, operation_type="op", tags=TaskTags())


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.CREATED, S.WAITING), (S.WAITING, S.ADMITTED), (S.ADMITTED, S.EXECUTING),
     (S.EXECUTING, S.COMPLETED), (S.EXECUTING, S.FAILED), (S.CREATED, S.KILLED),
     (S.WAITING, S.KILLED), (S.ADMITTED, S.KILLED), (S.EXECUTING, S.WAITING),
     (S.EXECUTING, S.KILLED)],
)
def test_legal_transitions(current, target):
    assert can_transition(current, target)
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.COMPLETED, S.FAILED), (S.FAILED, S.WAITING),
     (S.KILLED, S.WAITING), (S.CREATED, S.EXECUTING), (S.CREATED, S.COMPLETED),
     (S.ADMITTED, S.COMPLETED)],
)
def test_illegal_transitions_raise(current, target):
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition, match=f"from {current.value} to {target.value}"):
        check_transition(current, target)


def test_final_states_have_no_exit():
    for state in (S.COMPLETED, S.FAILED, S.KILLED):
        assert state.is_final
        assert TRANSITIONS[state] == frozenset()


def test_token_walks_the_lifecycle_with_timestamps():
    token = make_token()
    assert token.admit()
    assert token.claim(core_id=2, worker_id="w")
    token.set_result(42)
    assert token.get(timeout=0) == 42
    assert token.state is S.COMPLETED
    assert set(token.timestamps) == {S.CREATED, S.WAITING, S.ADMITTED, S.EXECUTING, S.COMPLETED}
    assert token.core_id == 2
    assert token.elapsed is not None and token.elapsed >= 0


def test_kill_only_before_executing():
    queued, running = make_token(), make_token()
    running.admit()
    running.claim()
    assert queued.kill()
    assert not running.kill()
    assert running.state is S.EXECUTING
    with pytest.raises(TokenKilled):
        queued.get(timeout=0)
    assert not queued.claim()


def test_requeue_keeps_id_and_counts_attempts():
    token = make_token()
    token.admit()
    token.claim()
    token_id = token.token_id
    token.requeue()
    assert (token.token_id, token.attempt, token.state) == (token_id, 2, S.WAITING)


def test_illegal_token_transition_raises_not_races():
    token = make_token()
    with pytest.raises(InvalidTransition):
        token.advance(S.EXECUTING)
    assert not token.advance(S.WAITING, expected=frozenset({S.ADMITTED}))
    assert token.state is S.CREATED


def test_error_is_reraised_with_traceback_note():
    token = make_token()
    token.admit()
    token.claim()
    try:
        raise KeyError("missing")
    except KeyError as exc:
        token.set_error(exc)
    with pytest.raises(KeyError) as info:
        token.get(timeout=0)
    assert "Traceback" in token.traceback_text
    assert any("KeyError" in note for note in info.value.__notes__)


def test_get_times_out_with_clear_error():
    with pytest.raises(TokenTimeout, match=r"not finished after 0\.01s"):
        make_token().get(timeout=0.01)


def test_waiter_is_woken_by_another_thread():
    token = make_token()
    token.admit()
    token.claim()
    finisher = threading.Thread(target=token.set_result, args=("done",))
    finisher.start()
    assert token.get(timeout=5) == "done"
    finisher.join()


def test_done_callbacks_run_once_final():
    token, seen = make_token(), []
    token.add_done_callback(seen.append)
    token.admit()
    token.claim()
    token.set_result(1)
    token.add_done_callback(seen.append)  # already final: runs at once
    assert seen == [token, token]
