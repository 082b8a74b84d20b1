"""The cluster's Guard House: the verdict as a table, and its owner fed real snapshots."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from tokengate.gateway import guard_policy as gp
from tokengate.gateway.guards import ClusterGuards
from tokengate.shared.errors import MethodBlockedException, SnapshotError
from tokengate.shared.snapshot import AgentSnapshot
from tokengate.shared.snapshot_guards import GuardHouseStatus

STRICT = gp.Policy(auto_block=True, failure_threshold=0.5, min_attempts=4)


@pytest.mark.parametrize(("per_node", "policy", "blocked"), [
    ([(2, 2), (2, 2)], STRICT, True),     # neither node alone has 4 attempts; the sum does
    ([(2, 2)], STRICT, False),            # too few attempts for a verdict
    ([(3, 1), (3, 2)], STRICT, True),     # 3/6 = 50 %: at the threshold blocks
    ([(4, 1), (4, 2)], STRICT, False),    # 3/8 = 37.5 %
    ([(10, 10), (90, 0)], STRICT, False),  # one node fails alone, the cluster is healthy
    ([(2, 2), (2, 2)], gp.Policy(), False),  # passive never blocks
])
def test_the_summed_record_decides(per_node: list[tuple[int, int]], policy: gp.Policy,
                                   blocked: bool) -> None:
    total = sum((gp.Counts(a, f) for a, f in per_node), gp.Counts())
    assert gp.should_block(total, policy) is blocked


@pytest.mark.parametrize(("policies", "expected"), [
    ([], gp.Policy()),
    ([gp.Policy(), gp.Policy()], gp.Policy()),
    ([gp.Policy(), STRICT], STRICT),
    ([STRICT, gp.Policy(auto_block=True, failure_threshold=0.2, min_attempts=9)],
     gp.Policy(auto_block=True, failure_threshold=0.2, min_attempts=4)),
])
def test_the_cluster_policy_is_the_strictest_auto_blocking_one(
        policies: list[gp.Policy], expected: gp.Policy) -> None:
    assert gp.cluster_policy(policies) == expected


@pytest.mark.parametrize("snapshot", [
    {"guard_house": "x"}, {"guard_house": {"auto_block": True, "min_attempts": "many"}},
    {"guard_house": {"auto_block": True, "methods": {"f": {"attempts": "1"}}}},
])
def test_a_malformed_guard_house_does_not_fit_the_schema(snapshot: dict[str, Any]) -> None:
    # the gateway keeps such an agent's previous snapshot, and never reports this one
    with pytest.raises(SnapshotError):
        AgentSnapshot.decode(msgpack.packb(snapshot))


@pytest.mark.parametrize("snapshot", [
    {}, {"guard_house": {"auto_block": True, "methods": {"f": {"attempts": 1, "failures": 5}}}},
])
def test_a_report_that_cannot_be_true_counts_as_nothing(snapshot: dict[str, Any]) -> None:
    assert gp.report_of(AgentSnapshot.decode(msgpack.packb(snapshot)).guard_house).counts == {}


def _snapshot(auto_block: bool = True, **methods: tuple[int, int]) -> GuardHouseStatus | None:
    """An agent's Guard House as the gateway reads it: packed, then decoded by the schema."""
    return AgentSnapshot.decode(msgpack.packb({"guard_house": {
        "mode": "auto-block" if auto_block else "passive", "auto_block": auto_block,
        "failure_threshold": 0.5, "min_attempts": 4,
        "methods": {name: {"attempts": a, "failures": f} for name, (a, f) in methods.items()}}},
    )).guard_house


def test_reports_are_summed_blocks_stick_and_reenable_clears_them() -> None:
    guards = ClusterGuards()
    guards.report("a1", _snapshot(f=(2, 2)))
    assert guards.blocked == set() and guards.policy == STRICT
    guards.report("a2", _snapshot(f=(1, 1)))
    guards.report("a2", _snapshot(f=(2, 2)))  # a newer report replaces the older one
    assert guards.blocked == {"f"} and guards.totals()["f"] == gp.Counts(4, 4)
    guards.report("a2", _snapshot(f=(3, 0)))  # better since: still blocked until re-enabled
    assert guards.blocked == {"f"}
    error = guards.refusal("f")
    assert isinstance(error, MethodBlockedException) and guards.refusals == 1
    assert "tokengate reenable f" in str(error)
    assert guards.forget("f") and guards.blocked == set() and "f" not in guards.totals()
    guards.report("a1", _snapshot(f=(1, 1)))  # the agents reset too: counted from zero
    assert guards.totals()["f"] == gp.Counts(1, 1) and guards.blocked == set()
    assert not guards.forget("f")
    guards.report("a2", _snapshot(f=(2, 2)))
    guards.agent_lost("a1")  # a lost agent's record leaves the sums
    assert guards.totals()["f"] == gp.Counts(2, 2) and guards.policy == STRICT
    guards.agent_lost("a2")
    assert guards.totals() == {} and guards.policy == gp.Policy()


def test_passive_agents_never_block_and_a_policy_change_rejudges() -> None:
    guards = ClusterGuards()
    guards.report("a1", _snapshot(auto_block=False, f=(9, 9)))
    assert guards.policy.mode == gp.PASSIVE and guards.blocked == set()
    guards.report("a2", _snapshot(auto_block=True))  # an auto-blocking agent joins
    assert guards.policy.mode == gp.AUTO_BLOCK and guards.blocked == {"f"}
    guards.report("a3", None)  # an agent whose snapshot has no Guard House
    assert guards.blocked == {"f"}
