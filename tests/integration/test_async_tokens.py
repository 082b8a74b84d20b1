"""Await tokens and submit from coroutines in embedded mode: the event loop never waits."""

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tokengate.shared.errors import AdmissionTimeout, SchedulerStopped, TokenKilled
from tokengate.shared.lifecycle import TokenState

from benchmarks.loop_lag import measure, responsive
from tokengate import OperationsCoordinator, task_token_guard

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

gate = threading.Event()


@task_token_guard(operation_type="nap", tags={"weight": "light"})
def nap(index: int) -> int:
    time.sleep(0.001)
    return index


@task_token_guard(operation_type="gated", tags={"weight": "light"})
def gated(index: int) -> int:
    gate.wait(30)
    return index


@task_token_guard(operation_type="refuse", tags={"weight": "light"})
def refuse(index: int) -> int:
    raise ValueError(f"refused {index}")


@pytest.fixture
def closed_gate():
    gate.clear()
    yield gate
    gate.set()


async def until(condition, timeout=10.0):
    """Poll ``condition`` on the loop (the admitter thread changes what it reads)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def small(**options):
    """Two cores, light tasks on one of them: four mailboxes of ``mailbox_capacity``."""
    return OperationsCoordinator(cores=2, workers_per_core=4, **options)


def test_loop_keeps_ticking_while_10000_tokens_are_submitted_and_awaited():
    async def main():
        with small(mailbox_capacity=40) as coordinator:
            _, baseline, _ = await measure(nap, 10_000, "executor")
        with small(mailbox_capacity=40) as coordinator:
            results, ticker, _ = await measure(nap, 10_000, "async")
            peaks = [p for core in coordinator.snapshot()["cores"] for p in core["peak_depths"]]
        return results, ticker.summary(), baseline.summary(), peaks

    results, summary, baseline, peaks = asyncio.run(main())
    assert results == list(range(10_000))
    assert max(peaks) == 40  # the mailboxes were full: submissions met backpressure
    assert responsive(summary, baseline), (summary, baseline)


def test_plain_calls_on_a_loop_return_at_once_and_all_run(closed_gate):
    async def main():
        with small(mailbox_capacity=2) as coordinator:
            began = time.perf_counter()
            tokens = [gated(i) for i in range(200)]  # room for 8: the rest wait, parked
            returned = time.perf_counter() - began
            parked = len(coordinator.parking)
            closed_gate.set()
            return returned, parked, await asyncio.gather(*tokens)

    returned, parked, results = asyncio.run(main())
    assert returned < 1.0  # no call waited for room (the gate stays closed meanwhile)
    assert parked > 100
    assert results == list(range(200))


def test_await_of_a_failed_token_raises_the_task_exception():
    async def main():
        with small(mailbox_capacity=4):
            token = await refuse.submit_async(3)
            with pytest.raises(ValueError, match="refused 3") as caught:
                await token
            outcome = await asyncio.gather(refuse(4), nap(5), return_exceptions=True)
            return token, caught.value, outcome

    token, error, outcome = asyncio.run(main())
    assert token.state is TokenState.FAILED and error is token.error  # the same as get()
    assert isinstance(outcome[0], ValueError) and outcome[1] == 5


def test_submit_async_waits_for_room_then_fails_at_submit_timeout(closed_gate):
    async def main():
        with small(mailbox_capacity=1, submit_timeout=0.3, submit_lead=0):
            try:  # four workers run one each, four mailboxes hold one each
                held = [await gated.submit_async(i) for i in range(8)]
                began = time.perf_counter()
                with pytest.raises(AdmissionTimeout):
                    await gated.submit_async(99)
                waited = time.perf_counter() - began
            finally:
                closed_gate.set()
            return waited, await asyncio.gather(*held)

    waited, results = asyncio.run(main())
    assert 0.25 <= waited < 5
    assert results == list(range(8))


def test_stop_fails_what_is_still_parked_and_cancel_withdraws(closed_gate):
    async def main():
        coordinator = small(mailbox_capacity=1, submit_timeout=None, submit_lead=0).start()
        tokens = [gated(i) for i in range(30)]  # 8 admitted, the rest parked
        await until(lambda: len(coordinator.parking) == 22)  # the 9th waits for room
        waiting = asyncio.create_task(gated.submit_async(100))
        await until(lambda: len(coordinator.parking) == 23)
        waiting.cancel()  # still parked: withdrawn, its token killed
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert len(coordinator.parking) == 22
        await asyncio.to_thread(coordinator.stop, 0.3)  # the gate is closed: nothing frees
        closed_gate.set()
        return await asyncio.gather(*tokens, return_exceptions=True)

    outcomes = asyncio.run(main())
    stopped = [o for o in outcomes if isinstance(o, SchedulerStopped)]
    assert len(stopped) >= 20 and all(
        isinstance(o, (int, SchedulerStopped, TokenKilled)) for o in outcomes)


def test_await_from_another_loop_thread_and_wait_for():
    async def main():
        with small(mailbox_capacity=8):
            token = nap(1)
            assert await asyncio.wait_for(token, timeout=10) == 1
            other = await asyncio.to_thread(lambda: asyncio.run(nap.submit_async(2)))
            return await other

    assert asyncio.run(main()) == 2


def test_the_seeds_async_main_runs_as_written_and_awaits(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "async_tokens.py")], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert f"indexes {list(range(10, 20))}" in done.stdout
    for index in range(20):  # the seed's ten, then the ten awaited
        assert json.loads((tmp_path / f"output_{index}.json").read_text())["index"] == index


def test_keys_and_cancel_reach_calls_parked_by_a_loop(closed_gate):
    async def main():
        with small(mailbox_capacity=1, submit_lead=0) as coordinator:
            try:
                held = [gated(i) for i in range(8)]  # room for 8: what follows is parked
                first = gated.options(key="order-42")(42)
                again = await gated.options(key="order-42").submit_async(42)  # the kept key
                doomed = gated(99)
                await until(lambda: len(coordinator.parking) == 2)
                cancelled = doomed.cancel()  # parked: killed, never runs
            finally:
                closed_gate.set()
            return first, again, cancelled, doomed, await first, await asyncio.gather(*held)

    first, again, cancelled, doomed, value, results = asyncio.run(main())
    assert again is first and value == 42 and results == list(range(8))
    assert cancelled and doomed.state is TokenState.KILLED
