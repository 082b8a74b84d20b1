"""The write lane confirms each batch (the ledger's ``confirm_writes``: WAIT for replicas)
after its replies are read and before any of its futures is settled; a batch it cannot
confirm fails whole, each job that had succeeded with the confirmation's error (pure logic:
a loop and the lane's thread, no Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tokengate.gateway.store import Lane
from tokengate.shared.errors import RedisUnavailable


def _run_batch(confirm: Callable[[], None], log: list[str]) -> list[Any]:
    """Three jobs on the lane (each logs itself when it runs); their outcomes."""
    def job(name: str) -> str:
        log.append(name)
        if name == "boom":
            raise ValueError("its own error")
        return name

    async def main() -> list[Any]:
        lane = Lane("test-lane", asyncio.get_running_loop(), confirm=confirm)
        jobs = [lane.call(job, "a"), lane.pipelined(lambda: job("b") and (lambda: "b")),
                lane.call(job, "boom")]
        out = await asyncio.gather(*jobs, return_exceptions=True)
        lane.stop()
        return out
    return asyncio.run(main())


def test_a_batch_is_confirmed_after_its_jobs_ran_and_before_their_values_are_delivered():
    log: list[str] = []
    a, b, own = _run_batch(lambda: log.append("confirm"), log)
    assert (a, b) == ("a", "b")
    assert isinstance(own, ValueError)
    assert log[-1] == "confirm", f"the values went out before a confirmation: {log}"
    assert 1 <= log.count("confirm") <= 3  # once per batch the lane's thread took


def test_a_batch_that_cannot_be_confirmed_fails_whole_but_keeps_its_own_errors():
    def refuse() -> None:
        raise RedisUnavailable("0 of 1 Redis replicas confirmed the writes")
    out = _run_batch(refuse, [])
    assert [type(x) for x in out] == [RedisUnavailable, RedisUnavailable, ValueError]
    with pytest.raises(RedisUnavailable, match="0 of 1"):
        raise out[0]
