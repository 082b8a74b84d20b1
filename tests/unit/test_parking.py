"""The parking lot on its own: order, capacity, timeout, withdraw and close, with a fake admit."""

import asyncio
import threading

import pytest
from tokengate.shared.errors import AdmissionTimeout, SchedulerStopped
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.parking import ParkingLot, running_loop
from tokengate.shared.tags import TaskTags
from tokengate.shared.token import TaskToken


def make_token():
    return TaskToken(None, (), {}, operation_type="op", tags=TaskTags())


class Admitter:
    """Admits calls in the order it is given them, each once ``room`` is set."""

    def __init__(self):
        self.room = threading.Event()
        self.admitted = []
        self.timeouts = []
        self.done = threading.Event()  # set after each admission

    def __call__(self, token, item, timeout):
        self.timeouts.append(timeout)
        if not self.room.wait(timeout):
            raise AdmissionTimeout("no room")
        token.advance(TokenState.WAITING)
        self.admitted.append(item)
        self.done.set()


def lot_with(admitter, *, timeout=None, capacity=100, lead=0):
    return ParkingLot("test", admitter, timeout=timeout, capacity=capacity, lead=lead,
                      closed_error=lambda: SchedulerStopped("closed"))


def test_calls_are_admitted_in_the_order_they_were_parked():
    admitter = Admitter()
    lot = lot_with(admitter)
    for i in range(50):
        lot.park(make_token(), i)
    admitter.room.set()
    lot.close(wait=10)
    assert admitter.admitted == list(range(50))
    assert len(lot) == 0 and lot.parked_total == 50


def test_a_full_lot_refuses_and_a_closed_one_fails_what_is_left():
    admitter = Admitter()
    lot = lot_with(admitter, capacity=3)
    tokens = [make_token() for _ in range(3)]
    for token in tokens:
        lot.park(token)
    with pytest.raises(AdmissionTimeout, match="submit_async"):
        lot.park(make_token())
    lot.close(wait=0.05)  # no room: nothing could be admitted in time
    for token in tokens[1:]:  # still parked: failed with the closing error
        assert token.wait(0) and isinstance(token.error, SchedulerStopped)
    admitter.room.set()  # the call being admitted ends as its admission says
    assert admitter.done.wait(10)
    assert admitter.admitted == [None] and tokens[0].state is TokenState.WAITING
    with pytest.raises(SchedulerStopped):
        lot.park(make_token())


def test_the_timeout_counts_from_the_call_and_fails_the_token():
    admitter = Admitter()
    lot = lot_with(admitter, timeout=0.05)
    token = make_token()
    lot.park(token)
    assert token.wait(10)
    assert isinstance(token.error, AdmissionTimeout)
    assert 0 <= admitter.timeouts[0] <= 0.05
    lot.close()


def test_an_awaited_submission_resumes_once_admitted_or_raises_its_refusal():
    async def main():
        admitter = Admitter()
        lot = lot_with(admitter, timeout=0.1)
        assert running_loop() is asyncio.get_running_loop()
        refused = make_token()
        with pytest.raises(AdmissionTimeout):
            await lot.submit(refused, "a")
        admitter.room.set()
        token = make_token()
        assert await lot.submit(token, "b") is token
        assert token.state is TokenState.WAITING and admitter.admitted == ["b"]
        lot.close()

    asyncio.run(main())
    assert running_loop() is None


def test_cancelling_an_awaited_submission_withdraws_a_parked_call():
    async def main():
        admitter = Admitter()
        lot = lot_with(admitter)
        first, second = make_token(), make_token()
        lot.park(first, "first")  # the admitter waits on this one
        waiting = asyncio.create_task(lot.submit(second, "second"))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        admitter.room.set()
        lot.close(wait=10)
        return first, second, admitter.admitted

    first, second, admitted = asyncio.run(main())
    assert admitted == ["first"] and second.state is TokenState.KILLED
    assert first.state is TokenState.WAITING


def test_an_awaited_submission_within_the_lead_returns_parked_and_its_refusal_fails_the_token():
    async def main():
        admitter = Admitter()
        lot = lot_with(admitter, timeout=0.2, lead=2)
        early = [make_token(), make_token()]
        for token in early:  # fewer than two wait before each: back at once, still parked
            assert await lot.submit(token) is token and not token.done()
        with pytest.raises(AdmissionTimeout):  # two wait before it: it waits, and is refused
            await lot.submit(make_token())
        return early

    for token in asyncio.run(main()):
        assert token.wait(10) and isinstance(token.error, AdmissionTimeout)
