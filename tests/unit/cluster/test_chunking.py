"""Chunked placement (short tasks travel to an agent in chunks) and the run times behind it."""

from __future__ import annotations

import math

import pytest
from tokengate.gateway import placement, runtimes
from tokengate.gateway.runtimes import RunTimes
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight

LIGHT = Weight.LIGHT
BUDGET = 0.005


def book(*names: str, free: int = 120, **weights: int) -> placement.Book:
    out = {}
    for name in names:
        credit = placement.AgentCredit()
        credit.report({LIGHT: free, **{Weight(w): n for w, n in weights.items()}}, 0)
        out[name] = credit
    return out


@pytest.mark.parametrize("cost, expected", [
    (1e-4, ["a"] * 10),                                  # short: one chunk
    (math.inf, ["a", "b"] * 5),                          # unknown: spread, as before
    (0.01, ["a", "b"] * 5),                              # longer than the budget: spread
    (0.0015, ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"]),  # chunks as long as the budget
])
def test_a_batch_goes_in_chunks_as_long_as_their_predicted_run_time(cost, expected):
    credits = book("a", "b")
    assert placement.assign([LIGHT] * 10, credits, ["a", "b"], [cost] * 10, BUDGET) == expected
    assert credits["a"].in_transit() == expected.count("a")


def test_a_chunk_ends_where_the_agent_has_no_more_credit():
    credits = book("a", "b", free=3)
    assert placement.assign([LIGHT] * 5, credits, ["a", "b"], [1e-5] * 5, BUDGET) \
        == ["a", "a", "a", "b", "b"]
    assert credits["a"].available(LIGHT) == 0


def test_a_chunk_ends_at_a_token_of_a_weight_the_agent_cannot_take():
    credits = {"a": placement.AgentCredit(), "b": placement.AgentCredit()}
    credits["a"].report({LIGHT: 10, Weight.HEAVY: 0}, 0)
    credits["b"].report({LIGHT: 5, Weight.HEAVY: 5}, 0)
    weights = [LIGHT, LIGHT, Weight.HEAVY, LIGHT]
    assert placement.assign(weights, credits, ["a", "b"], [1e-5] * 4, BUDGET) \
        == ["a", "a", "b", "b"]


def test_unknown_tokens_in_a_batch_are_never_chunked():
    credits = book("a", "b", "c")
    costs = [1e-5, math.inf, 1e-5, 1e-5]
    assert placement.assign([LIGHT] * 4, credits, ["a", "b", "c"], costs, BUDGET) \
        == ["a", "b", "c", "c"]


def test_ties_in_credit_go_to_the_agent_given_a_chunk_least_recently():
    """Agents that finish at once report full credit again: without turns the first agent
    listed would win every batch, and the others would never get work."""
    credits = book("a", "b", "c")
    chosen = []
    for _ in range(6):
        chosen += placement.assign([LIGHT] * 2, credits, ["a", "b", "c"], [1e-5] * 2, BUDGET)
        for credit in credits.values():  # every agent ran what it got and is idle again
            credit.report({LIGHT: 120}, credit.sent)
    assert chosen == ["a", "a", "b", "b", "c", "c"] * 2


def test_zero_budget_spreads_every_token():
    credits = book("a", "b")
    assert placement.assign([LIGHT] * 4, credits, ["a", "b"], [0.0] * 4, 0.0) \
        == ["a", "b", "a", "b"]


def results(kind: str, runs: list[float], started: float = 1000.0) -> list[pb.ResultItem]:
    return [pb.ResultItem(token_id=f"t{i}", operation_type=kind, started_at=started,
                          finished_at=started + run) for i, run in enumerate(runs)]


def test_run_times_are_unknown_until_a_few_runs_were_seen():
    times = RunTimes()
    assert times.cost("noop") == math.inf
    times.observe(results("noop", [1e-5] * (runtimes.MIN_RUNS - 1)))
    assert times.cost("noop") == math.inf
    times.observe(results("noop", [1e-5]))
    assert times.cost("noop") == pytest.approx(1e-5 + runtimes.AROUND_CALL)
    assert times.costs(["noop", "other"]) == [times.cost("noop"), math.inf]


def test_a_few_preempted_runs_do_not_make_a_short_kind_long():
    times = RunTimes()
    times.observe(results("noop", [1e-5] * 60 + [0.05] * 4))  # four runs preempted
    assert times.cost("noop") < 1e-4


def test_a_kind_with_many_long_runs_stays_long():
    times = RunTimes()
    times.observe(results("mixed", [1e-5] * 48 + [1.0] * 16))
    assert times.cost("mixed") > 0.1
    credits = book("a", "b")
    cost = times.cost("mixed")
    assert placement.assign([LIGHT] * 4, credits, ["a", "b"], [cost] * 4, BUDGET) \
        == ["a", "b", "a", "b"]


def test_the_window_follows_a_kind_that_became_slow():
    times = RunTimes()
    times.observe(results("k", [1e-5] * runtimes.WINDOW))
    times.observe(results("k", [0.2] * runtimes.WINDOW))
    assert times.cost("k") == pytest.approx(0.2 + runtimes.AROUND_CALL)


def test_outcomes_that_never_ran_teach_nothing_and_kinds_are_bounded(monkeypatch):
    times = RunTimes()
    times.observe([pb.ResultItem(token_id="k", operation_type="noop", started_at=0.0,
                                 finished_at=5.0)] * 20)
    times.observe(results("noop", [-1.0] * 20))  # a clock step backwards
    assert times.cost("noop") == math.inf
    monkeypatch.setattr(runtimes, "MAX_KINDS", 2)
    for kind in ("a", "b", "c"):
        times.observe(results(kind, [1e-5] * runtimes.MIN_RUNS))
    assert times.cost("b") < 1 and times.cost("c") == math.inf
