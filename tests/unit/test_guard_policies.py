"""Pure guard policy: Guard House verdicts, spike arithmetic, retry backoff, convergence."""

from __future__ import annotations

import random

import pytest
from tokengate.node_agent.guards import convergence as conv
from tokengate.node_agent.guards import guard_house as gh
from tokengate.node_agent.guards import retry, spikes
from tokengate.node_agent.guards.inspector import ComplexityLevel
from tokengate.shared.errors import ConfigurationError, MethodBlockedException, TokenKilled


def _rep(failures: int, successes: int) -> gh.Reputation:
    rep = gh.Reputation("m:f")
    for _ in range(failures):
        rep = rep.recorded(False, 0.1, "ValueError: bad")
    for _ in range(successes):
        rep = rep.recorded(True, 0.3)
    return rep


@pytest.mark.parametrize(("failures", "successes", "auto", "blocked"), [
    (5, 5, True, True),      # 50 % at 10 attempts: blocks
    (4, 6, True, False),     # 40 %: under threshold
    (5, 4, True, False),     # too few attempts for a verdict
    (10, 0, False, False),   # passive: never blocks
])
def test_should_block_table(failures, successes, auto, blocked):
    policy = gh.GuardPolicy(auto_block=auto, failure_threshold=0.5, min_attempts=10)
    assert gh.should_block(_rep(failures, successes), policy) is blocked


def test_reputation_arithmetic_and_health():
    rep = _rep(1, 19)
    assert rep.total_attempts == 20 and rep.failure_rate == pytest.approx(5.0)
    assert rep.mean_time == pytest.approx((0.1 + 19 * 0.3) / 20)
    assert gh.health_of(rep) is gh.Health.GOOD
    assert gh.health_of(_rep(0, 3)) is gh.Health.EXCELLENT
    assert gh.health_of(gh.Reputation("x")) is gh.Health.UNKNOWN


def test_guard_house_blocks_and_reenables_with_seed_message():
    house = gh.GuardHouse(gh.GuardPolicy(auto_block=True, min_attempts=4))
    blocked_at = [house.record("m:f", False, 0.01, "OSError: disk") for _ in range(4)]
    assert blocked_at == [False, False, False, True]
    with pytest.raises(MethodBlockedException) as info:
        house.check_allowed("m:f")
    message = str(info.value)
    assert "100.0%" in message and "4/4 attempts" in message
    assert "reenable('m:f')" in message and "OSError: disk" in message
    assert house.reenable("m:f") is True
    house.check_allowed("m:f")  # allowed again
    assert house.snapshot()["refusals"] == 1


def test_passive_guard_house_flags_but_never_refuses():
    house = gh.GuardHouse()
    for _ in range(20):
        house.record("m:f", False, 0.01)
    house.check_allowed("m:f")
    snap = house.snapshot()
    assert snap["mode"] == "passive" and snap["blocked"] == []
    assert snap["methods"]["m:f"]["over_threshold"] is True


def test_spike_judgement_needs_warmup_and_threshold():
    policy = spikes.SpikePolicy(threshold=3.0, warmup=3)
    hist = spikes.CostHistory()
    for _ in range(3):
        assert not spikes.judge(hist, 10.0, policy).spike
        hist = hist.updated(10.0)
    assert not spikes.judge(hist, 40.0, policy).spike      # exactly 300 %: not above
    verdict = spikes.judge(hist, 41.0, policy)
    assert verdict.spike and verdict.deviation == pytest.approx(3.1)


def test_spike_detector_keeps_spikes_out_of_history():
    det = spikes.SpikeDetector(spikes.SpikePolicy(threshold=1.0, warmup=5))
    for _ in range(5):
        assert not det.assess("f", 10.0, (10,), {}).spike
    verdict = det.assess("f", 10.0, (10**12,), {})
    assert verdict.spike
    assert det.history("f").count == 5
    assert spikes.magnitude([1, "abc", b"xy"]) == 3 + 1 + 3 + 2


def test_backoff_grows_exponentially_within_jitter():
    policy = retry.RetryPolicy(max_attempts=5, base_delay=0.1, multiplier=2.0, max_delay=0.5,
                               jitter=0.5)
    rng = random.Random(7)
    for attempt, raw in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5)]:
        delay = retry.backoff(policy, attempt, rng)
        assert raw * 0.5 <= delay <= raw
    assert retry.retry_delay(policy, 5, OSError(), rng) is None       # out of attempts
    assert retry.retry_delay(policy, 1, ValueError(), rng) is None    # not transient
    assert retry.retry_delay(policy, 1, TokenKilled("x"), rng) is None
    assert retry.retry_delay(policy, 1, ConnectionError(), rng) is not None


def test_policies_cover_every_level_and_coerce():
    assert set(retry.DEFAULT_POLICIES) == set(ComplexityLevel)
    assert retry.coerce_policy(2).max_attempts == 3
    with pytest.raises(ConfigurationError, match="retries"):
        retry.coerce_policy(-1)


BOUNDS = conv.ConvergenceBounds(min_active=1, max_active=4, high_depth=2.0, idle_cycles=2)


@pytest.mark.parametrize(("pressure", "streak", "new"), [
    (conv.CorePressure(1, 2, 9), 0, 3),            # 4.5 per mailbox: grow
    (conv.CorePressure(1, 4, 40), 0, None),        # already at max
    (conv.CorePressure(1, 2, 0, 0.2), 0, 3),       # long waits: grow
    (conv.CorePressure(1, 3, 0), 1, 2),            # second idle look: shrink
    (conv.CorePressure(1, 3, 0), 0, None),         # first idle look: hold
    (conv.CorePressure(1, 1, 0), 5, None),         # already at min
    (conv.CorePressure(1, 6, 0), 0, 4),            # out of bounds: clamp
])
def test_convergence_decisions(pressure, streak, new):
    decisions, _ = conv.decide([pressure], {1: streak}, BOUNDS)
    assert [d.new for d in decisions] == ([] if new is None else [new])


def test_convergence_streak_resets_under_load():
    _, streaks = conv.decide([conv.CorePressure(2, 2, 0)], {2: 0}, BOUNDS)
    assert streaks == {2: 1}
    _, streaks = conv.decide([conv.CorePressure(2, 2, 3)], streaks, BOUNDS)
    assert streaks == {2: 0}


def test_retried_attempts_are_not_failures():
    house = gh.GuardHouse(gh.GuardPolicy(auto_block=True, min_attempts=1))
    house.record_retry("m:f", 0.2)
    house.record_retry("m:f", 0.2)
    assert house.record("m:f", True, 0.2) is False
    method = house.snapshot()["methods"]["m:f"]
    assert (method["attempts"], method["failures"], method["retries"]) == (1, 0, 2)
    assert method["mean_time"] == pytest.approx(0.2) and not house.is_blocked("m:f")
