"""The cancel section of TaskToken, with no scheduler: which cancel does what, and when."""

import threading

import pytest
from tokengate.shared.errors import TokenCancelled, TokenKilled
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import TaskTags
from tokengate.shared.token import TaskToken, current_token, set_current_token

S = TokenState


def running_token() -> TaskToken:
    token = TaskToken(None, (), {}, operation_type="op", tags=TaskTags())
    assert token.admit() and token.claim(1, "w")
    return token


def test_cancel_of_a_queued_token_kills_it():
    token = TaskToken(None, (), {}, operation_type="op", tags=TaskTags())
    assert token.admit()
    assert token.cancel() is True and token.cancelled
    assert token.state is S.KILLED and type(token.error) is TokenKilled
    assert token.cancel() is False


def test_cancel_of_a_running_token_asks_and_the_end_of_its_run_decides():
    token = running_token()
    heard: list[TokenState] = []
    token.add_done_callback(lambda t: heard.append(t.state))
    event = token.cancel_event
    assert not event.is_set() and not token.wait_cancelled(0)
    assert token.cancel() is True
    assert event.is_set() and token.wait_cancelled(0) and token.cancelled
    assert token.state is S.EXECUTING and heard == [], "asked, not final"
    assert token.end_run() is True
    assert token.state is S.KILLED and heard == [S.KILLED]
    with pytest.raises(TokenCancelled, match="cancelled while running"):
        token.get(0)
    assert token.cancel() is False


def test_a_cancel_after_the_run_ended_is_too_late_until_the_next_attempt():
    token = running_token()
    assert token.end_run() is False
    assert token.cancel() is False, "its outcome is being stored"
    token.requeue()  # a retry: attempt 2, queued again
    assert token.claim(1, "w")
    assert token.cancel() is True and token.end_run() is True
    assert token.state is S.KILLED and token.attempt == 2


def test_an_event_asked_for_after_the_cancel_is_set_already():
    token = running_token()
    assert token.cancel()
    assert token.cancel_event.is_set()


def test_a_remote_token_without_its_canceller_is_left_alone():
    token = TaskToken(None, (), {}, operation_type="op", tags=TaskTags())
    token.remote = True
    assert token.cancel() is False and token.state is S.CREATED
    token.canceller = lambda t: True
    assert token.cancel() is True, "the canceller decides"


def test_current_token_is_per_thread_and_restored():
    token = running_token()
    assert current_token() is None
    outer = set_current_token(token)
    seen: list[object] = []
    other = threading.Thread(target=lambda: seen.append(current_token()))
    other.start()
    other.join()
    assert current_token() is token and seen == [None]
    set_current_token(outer)
    assert current_token() is None
