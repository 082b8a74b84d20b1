"""The core-affinity policy and routing, as tables for 1, 2 and 8 cores."""

import pytest
from tokengate.node_agent.policy import (
    StaticLoad,
    choose_route,
    least_loaded_mailbox,
    preference_chain,
)
from tokengate.shared.tags import Weight

H, M, L = Weight.HEAVY, Weight.MEDIUM, Weight.LIGHT


@pytest.mark.parametrize(
    ("cores", "weight", "chain"),
    [
        (1, H, (1,)), (1, M, (1,)), (1, L, (1,)),
        (2, H, (1, 2)), (2, M, (2,)), (2, L, (2,)),
        (3, H, (1, 2, 3)), (3, M, (2, 3)), (3, L, (3,)),
        (8, H, (1, 2, 3, 4, 5, 6, 7, 8)), (8, M, (2, 3, 4, 5, 6, 7, 8)),
        (8, L, (3, 4, 5, 6, 7, 8)),
    ],
)
def test_preference_chains(cores, weight, chain):
    assert preference_chain(weight, cores) == chain


def test_medium_never_core_1_and_light_never_cores_1_2_on_8_cores():
    assert 1 not in preference_chain(M, 8)
    assert {1, 2}.isdisjoint(preference_chain(L, 8))


def test_zero_cores_refused():
    with pytest.raises(ValueError):
        preference_chain(H, 0)


@pytest.mark.parametrize(
    ("queued", "busy", "capacity", "expected"),
    [
        ([0, 0, 0, 0], [0, 0, 0, 0], 120, 0),
        ([0, 0, 0, 0], [1, 1, 0, 1], 120, 2),
        ([3, 1, 2, 1], [0, 0, 0, 0], 120, 1),
        ([5, 5], [1, 0], 120, 1),
        ([120, 119], [1, 1], 120, 1),
        ([120, 120], [0, 0], 120, None),
    ],
)
def test_least_loaded_mailbox(queued, busy, capacity, expected):
    boxes = [StaticLoad(q, b) for q, b in zip(queued, busy, strict=True)]
    assert least_loaded_mailbox(boxes, capacity) == expected


def _loads(per_core):
    return {core: [StaticLoad(q, b) for q, b in boxes] for core, boxes in per_core.items()}


def test_route_prefers_first_core_while_it_has_an_idle_worker():
    cores = _loads({1: [(0, 1), (0, 0)], 2: [(0, 0), (0, 0)]})
    assert choose_route((1, 2), cores, {1: 2, 2: 2}, 120) == (1, 1)


def test_route_spills_to_the_least_loaded_core_when_preferred_is_saturated():
    cores = _loads({1: [(1, 1), (0, 1)], 2: [(0, 1), (0, 0)]})
    assert choose_route((1, 2), cores, {1: 2, 2: 2}, 120) == (2, 1)


def test_route_ties_go_to_the_earlier_core():
    cores = _loads({1: [(2, 1)], 2: [(2, 1)]})
    assert choose_route((1, 2), cores, {1: 1, 2: 1}, 120) == (1, 0)


def test_route_passes_a_blocked_mailbox_by_even_when_it_is_empty():
    # Core 1's first mailbox is the least loaded, but blocked (its worker's call was judged
    # too long): the token goes behind core 1's other one; with that full, nowhere.
    cores = {1: [StaticLoad(0, 1, blocked=True), StaticLoad(2, 1)],
             2: [StaticLoad(3, 1), StaticLoad(3, 1)]}
    assert choose_route((1, 2), cores, {1: 2, 2: 2}, 120) == (1, 1)
    cores[1][1] = StaticLoad(120, 1)
    cores[2] = [StaticLoad(0, 1, blocked=True)]
    assert choose_route((1, 2), cores, {1: 2, 2: 1}, 120) is None


def test_process_mode_alternates_cores_with_one_process_each():
    # One execution slot per core: the second task goes to core 2, not behind the first.
    cores = _loads({1: [(1, 0), (0, 0)], 2: [(0, 0), (0, 0)]})
    assert choose_route((1, 2), cores, {1: 1, 2: 1}, 120) == (2, 0)


def test_route_none_when_every_allowed_mailbox_is_full():
    cores = _loads({2: [(4, 1), (4, 1)]})
    assert choose_route((2,), cores, {2: 2}, 4) is None


def test_route_skips_a_full_core():
    cores = _loads({1: [(4, 1)], 2: [(3, 1)]})
    assert choose_route((1, 2), cores, {1: 1, 2: 1}, 4) == (2, 0)


def test_route_leaves_a_loaded_preferred_core_for_an_idle_one():
    # Core 1: one idle and three busy mailboxes with 2 queued each (load 9 over 4 slots); core
    # 2 idle. Core 1's idle mailbox does not make it the choice: core 2 has free slots.
    cores = _loads({1: [(0, 0), (2, 1), (2, 1), (2, 1)], 2: [(0, 0)] * 4})
    assert choose_route((1, 2), cores, {1: 4, 2: 4}, 120) == (2, 0)
