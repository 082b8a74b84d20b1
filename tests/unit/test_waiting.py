"""tokengate.wait / as_completed and ``await token``, on tokens finished by hand (no scheduler)."""

import asyncio
import threading

import pytest
from tokengate.shared.errors import TokenKilled, TokenTimeout
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import TaskTags
from tokengate.shared.token import TaskToken

from tokengate import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, as_completed, wait


def make_token():
    return TaskToken(None, (), {}, operation_type="op", tags=TaskTags())


def complete(token, value=None):
    token.advance(TokenState.WAITING, TokenState.ADMITTED, TokenState.EXECUTING)
    token.set_result(value)


def fail(token, error):
    token.advance(TokenState.WAITING, TokenState.ADMITTED, TokenState.EXECUTING)
    token.set_error(error)


def later(action, *args):
    """Run ``action(*args)`` on another thread once the caller waits (a timer thread: the
    waiting side is blocked when it fires, and the outcome does not depend on when)."""
    timer = threading.Timer(0.05, action, args)
    timer.start()
    return timer


def test_wait_all_completed_returns_every_token_done():
    tokens = [make_token() for _ in range(3)]
    complete(tokens[0], 0)
    timers = [later(complete, tokens[1], 1), later(fail, tokens[2], ValueError("x"))]
    done, not_done = wait(tokens, timeout=10, return_when=ALL_COMPLETED)
    assert done == set(tokens) and not_done == set()
    for timer in timers:
        timer.join()


def test_wait_first_completed_returns_as_soon_as_one_finishes():
    tokens = [make_token() for _ in range(3)]
    later(complete, tokens[1], 1).join()  # finished before the wait
    done, not_done = wait(tokens, timeout=10, return_when=FIRST_COMPLETED)
    assert done == {tokens[1]} and not_done == {tokens[0], tokens[2]}
    timer = later(complete, tokens[2], 2)
    done, not_done = wait([tokens[0], tokens[2]], timeout=10, return_when=FIRST_COMPLETED)
    assert done == {tokens[2]} and not_done == {tokens[0]}
    timer.join()


def test_wait_first_exception_stops_at_a_failure_or_a_kill_not_at_a_success():
    tokens = [make_token() for _ in range(3)]
    complete(tokens[0], 0)
    timer = later(fail, tokens[1], ValueError("boom"))
    done, not_done = wait(tokens, timeout=10, return_when=FIRST_EXCEPTION)
    assert done == {tokens[0], tokens[1]} and not_done == {tokens[2]}
    timer.join()
    other = make_token()
    timer = later(other.kill)
    done, not_done = wait([tokens[2], other], timeout=10, return_when=FIRST_EXCEPTION)
    assert done == {other} and not_done == {tokens[2]}
    timer.join()


def test_wait_first_exception_without_failures_waits_for_all():
    tokens = [make_token() for _ in range(2)]
    timers = [later(complete, token, i) for i, token in enumerate(tokens)]
    done, not_done = wait(tokens, timeout=10, return_when=FIRST_EXCEPTION)
    assert done == set(tokens) and not not_done
    for timer in timers:
        timer.join()


def test_wait_timeout_returns_what_finished():
    tokens = [make_token() for _ in range(2)]
    complete(tokens[0])
    done, not_done = wait(tokens, timeout=0.05)
    assert done == {tokens[0]} and not_done == {tokens[1]}


def test_wait_refuses_an_unknown_return_when():
    with pytest.raises(ValueError, match="FIRST_COMPLETED"):
        wait([make_token()], return_when="SOMETIMES")


def test_as_completed_yields_in_finishing_order_each_once():
    tokens = [make_token() for _ in range(3)]
    complete(tokens[2], 2)

    def finish_in_order():
        complete(tokens[1], 1)
        complete(tokens[0], 0)

    timer = later(finish_in_order)
    seen = [token.get() for token in as_completed([*tokens, tokens[2]], timeout=10)]
    assert seen == [2, 1, 0]
    timer.join()


def test_as_completed_raises_token_timeout_with_tokens_left():
    tokens = [make_token() for _ in range(2)]
    complete(tokens[0], 0)
    iterator = as_completed(tokens, timeout=0.05)
    assert next(iterator) is tokens[0]
    with pytest.raises(TokenTimeout, match="1 of the tokens"):
        next(iterator)
    with pytest.raises(TimeoutError):  # TokenTimeout is a TimeoutError too
        list(as_completed([make_token()], timeout=0.01))


def test_await_gives_the_result_or_the_exception_as_get_does():
    async def main():
        good, bad, killed = make_token(), make_token(), make_token()
        timers = [later(complete, good, 7), later(fail, bad, KeyError("k")), later(killed.kill)]
        assert await good == 7
        with pytest.raises(KeyError):
            await bad
        with pytest.raises(TokenKilled):
            await killed
        assert await good == 7  # a final token answers at once, again
        return timers

    for timer in asyncio.run(main()):
        timer.join()


def test_cancelling_the_await_leaves_the_token_alone():
    async def main():
        token = make_token()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(token, timeout=0.05)
        assert token.state is TokenState.CREATED  # not killed by the cancelled await
        timer = later(complete, token, "late")
        assert await token == "late"
        timer.join()

    asyncio.run(main())


def test_a_token_finished_after_its_loop_closed_does_not_break_the_finisher():
    token = make_token()

    async def give_up():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(token, timeout=0.01)

    asyncio.run(give_up())  # its done-callback now points at a closed loop
    complete(token, 1)  # must not raise on this (the finishing) thread
    assert token.get() == 1
