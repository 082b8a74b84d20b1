"""Idempotency keys in embedded mode: one run per key, conflicts, bad keys, expiry."""

from __future__ import annotations

import threading

import pytest
from tokengate.node_agent.keys import KeyTable
from tokengate.shared.call_options import key_token_id
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import parse_tags
from tokengate.shared.token import TaskToken

from tokengate import (
    BadArguments,
    IdempotencyConflict,
    OperationsCoordinator,
    task_token_guard,
)

runs: list[int] = []
runs_lock = threading.Lock()


@task_token_guard(operation_type="keyed_order", tags={"weight": "light"})
def place_order(n: int) -> int:
    with runs_lock:
        runs.append(n)
    return n * 10


def test_same_key_is_one_run_and_the_same_token() -> None:
    runs.clear()
    with OperationsCoordinator(workers_per_core=1, cores=1):
        first = place_order.options(key="order-1")(4)
        again = place_order.options(key="order-1")(4)
        assert again is first
        assert first.token_id == key_token_id("order-1")
        assert first.get(timeout=10) == 40
        later = place_order.options(key="order-1")(4)  # after it finished: its outcome
        assert later is first and later.get(timeout=1) == 40
        other = place_order.options(key="order-2")(4)
        assert other.get(timeout=10) == 40 and other is not first
        plain = [place_order(4), place_order(4)]  # no key: every call runs
        assert [t.get(timeout=10) for t in plain] == [40, 40]
    assert sorted(runs) == [4, 4, 4, 4]


def test_same_key_other_arguments_is_a_conflict() -> None:
    with OperationsCoordinator(workers_per_core=1, cores=1):
        place_order.options(key="order-9")(1).get(timeout=10)
        with pytest.raises(IdempotencyConflict, match="order-9") as caught:
            place_order.options(key="order-9")(2)
        assert caught.value.key == "order-9"


@pytest.mark.parametrize("key", ["", "x" * 256, 42])
def test_bad_keys_are_refused_before_any_call(key: object) -> None:
    with pytest.raises(BadArguments, match="idempotency key"):
        place_order.options(key=key)  # type: ignore[arg-type]


def test_a_key_is_kept_ttl_seconds_after_its_call_finished() -> None:
    now = [1000.0]
    table = KeyTable(ttl=60, clock=lambda: now[0])
    queued: list[TaskToken] = []
    tags = parse_tags(None)

    def make() -> TaskToken:
        return TaskToken(None, (), {}, operation_type="t", tags=tags)

    first = table.submit("k", ("t", (1,), {}), make, queued.append)
    assert table.submit("k", ("t", (1,), {}), make, queued.append) is first
    first.advance(TokenState.WAITING, TokenState.ADMITTED, TokenState.EXECUTING)
    first.set_result(1)
    first.timestamps[TokenState.COMPLETED] = 1000.0
    now[0] = 1059.0
    assert table.submit("k", ("t", (1,), {}), make, queued.append) is first
    now[0] = 1061.0  # expired: a new call
    second = table.submit("k", ("t", (2,), {}), make, queued.append)
    assert second is not first and queued == [first, second]
    assert len(table) == 1
