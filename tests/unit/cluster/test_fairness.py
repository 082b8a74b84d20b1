"""Fair shares, pure: who goes straight through, who is held, what the round robin releases
(gateway/fairness.py). The gate on a gateway is tested in
tests/integration/cluster/test_fair_gate.py (it needs a real Redis for its ledger)."""

from __future__ import annotations

import pytest
from tokengate.gateway import fairness
from tokengate.gateway.config import GatewayConfig
from tokengate.shared.errors import ConfigurationError


def shares(depth: int = 0, quantum: int = 4, **policy) -> fairness.Shares:
    return fairness.Shares(fairness.Policy(depth=depth, quantum=quantum, **policy))


@pytest.mark.parametrize(("depth", "quota", "flying", "n", "straight"), [
    (0, 0, {}, 50, 50),                   # off: everything goes
    (10, 0, {}, 100, 80),                 # alone: up to the solo depth (8x)
    (10, 0, {"a": 10}, 8, 5),             # a newcomer: up to its share (10 * 1/2), room or not
    (10, 0, {"a": 4}, 20, 6),             # another present: the room, over the share
    (10, 3, {}, 25, 3),                   # a quota caps it below the depth
    (0, 3, {"a": 2}, 25, 3),              # a quota without a depth
    (10, 0, {"a": 5, "c": 5}, 20, 3),     # three active: a share of 10/3
])
def test_what_goes_straight_through(depth, quota, flying, n, straight):
    state = shares(depth, quota=quota)
    for party, k in flying.items():
        assert state.admit(party, k) == k
    assert state.admit("b", n) == straight
    assert state.held.get("b", 0) == n - straight
    assert state.total == sum(flying.values()) + straight


def test_held_calls_keep_their_order_behind_those_held_before():
    state = shares(depth=4)
    state.admit("z", 0)  # another client present: the depth binds
    assert state.admit("a", 10) == 4
    state.finished("a", 4)
    assert state.admit("a", 1) == 0, "room, but six of its own wait first"
    assert state.release() == {"a": 4}


@pytest.mark.parametrize(("weights", "expected"), [
    ({}, {"a": 8, "b": 8}),                   # equal weights: equal turns
    ({"a": 3}, {"a": 12, "b": 4}),            # weighted: a's turn is three quanta
])
def test_the_round_robin_shares_the_room_by_weight(weights, expected):
    state = shares(depth=16, quantum=4, weights=weights)
    state.admit("b", 0)
    state.admit("a", 16)
    state.admit("a", 100)
    state.admit("b", 100)  # a newcomer's share went straight through
    state.finished("a", 16)
    state.finished("b", 8)
    released = state.release()
    assert released == expected and state.total == 16


def test_a_client_alone_gets_the_solo_depth_until_another_is_present():
    state = shares(depth=10)
    assert state.admit("a", 200, at=0.0) == 10 * fairness.SOLO_FACTOR
    assert state.admit("b", 20, at=0.5) == 5, "a newcomer: its share, straight in"
    assert state.admit("a", 5, at=0.6) == 0, "contended now: a is far over its share"
    state.finished("b", 5, at=0.7)
    assert state.contended(), "b was seen 0.0s ago: present"
    state.dropped("b", state.held["b"])
    state.finished("a", 70, at=0.7 + fairness.LINGER + 0.1)
    assert not state.contended() and state.room() == 80 - 10, "b has left: solo again"
    assert state.release(at=3.0) == {"a": 70}, "its held calls fill the solo room"


def test_release_waits_for_a_batch_of_room_and_respects_quotas():
    state = shares(depth=16, quantum=4, quotas={"a": 2})
    state.admit("a", 10)
    state.admit("b", 30)
    assert state.in_flight == {"a": 2, "b": 14}
    state.finished("b", 3)
    assert state.release() == {}, "3 free: less than a quarter of the depth"
    state.finished("b", 1)
    assert state.release() == {"b": 4}, "a is at its quota: b takes the room"
    state.finished("a", 2)
    state.finished("b", 4)
    assert state.release() == {"a": 2, "b": 4}, "a to its quota, b its quantum"


def test_dropped_calls_leave_the_ring_and_the_active_weight():
    state = shares(depth=8)
    state.admit("a", 8)
    state.admit("b", 12)
    assert state.share("c") == 8 // 3
    state.dropped("b", state.held["b"])
    state.finished("b", state.in_flight["b"])
    assert state.share("c") == 4 and state.release() == {}


def test_tables_of_weights_and_quotas_are_checked():
    assert fairness.parse_table(["a=3", " b-c=1 "], "w", low=1) == {"a": 3, "b-c": 1}
    for bad in (["a"], ["=3"], ["a=x"], ["a=0"]):
        with pytest.raises(ConfigurationError, match="CLIENT_ID=N"):
            fairness.parse_table(bad, "client_weights", low=1)
    with pytest.raises(ConfigurationError, match="at most"):
        GatewayConfig(token="t", client_weights=("a=5000",)).validate()
