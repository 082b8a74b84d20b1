"""The chaos soak with several gateways: their layout, each agent's and client's address list,
the merged view of every shard's agents, and the two-gateway parts of the record and table
(pure: no processes)."""

from __future__ import annotations

import dataclasses

import pytest
from test_chaos_checks import MIB, T0, _failed, _samples, _soak

from benchmarks.chaos_checks import Event, Incarnation, Sample, memory_rows, run_checks
from benchmarks.chaos_gateways import addresses_for, layout, merge_nodes, shard_prefixes
from benchmarks.chaos_report import render

A, B = "127.0.0.1:5001", "127.0.0.1:5002"


def test_one_gateway_is_the_soak_as_it_always_ran() -> None:
    (spot,) = layout(1, A)
    assert (spot.role, spot.shard, spot.address) == ("gateway", "0", A)
    assert [addresses_for((spot,), i) for i in range(3)] == [A, A, A]
    assert shard_prefixes("tg:", (spot,)) == ("tg:{0}:",)


def test_two_gateways_have_a_shard_and_a_port_each() -> None:
    spots = layout(2, A)
    assert [(s.role, s.shard) for s in spots] == [("gateway-a", "a"), ("gateway-b", "b")]
    assert spots[0].address == A
    assert spots[1].address != A and spots[1].address.startswith("127.0.0.1:")
    assert shard_prefixes("tg:", spots) == ("tg:{a}:", "tg:{b}:")


def test_agents_and_clients_list_their_own_gateway_first_in_turn() -> None:
    first, second = layout(2, A)
    spots = (first, dataclasses.replace(second, address=B))
    assert [addresses_for(spots, i) for i in range(3)] == [f"{A},{B}", f"{B},{A}", f"{A},{B}"]


@pytest.mark.parametrize("count", [0, 27])
def test_a_number_of_gateways_without_shard_names_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="gateways"):
        layout(count, A)


def test_an_agent_up_in_any_shard_is_up() -> None:
    shard_a = [("a1", "LOST", 11), ("a3", "UP", 13)]
    shard_b = [("a1", "UP", 21), ("a2", "DISCONNECTED", 12)]
    assert merge_nodes([shard_a, shard_b]) == {
        "a1": ("UP", 21), "a2": ("DISCONNECTED", 12), "a3": ("UP", 13)}
    assert merge_nodes([shard_b, shard_a])["a1"] == ("UP", 21)
    assert merge_nodes([]) == {}


def _two_gateway_soak(**changes: object):
    gateways = ("gateway-a", "gateway-b")
    soak = _soak()
    samples = [s for s in soak.samples if s.role != "gateway"]
    samples += [*_samples("gateway-a", 21, 50 * MIB, 50 * MIB),
                *_samples("gateway-b", 22, 50 * MIB, 50 * MIB)]
    incarnations = [i for i in soak.incarnations if i.role != "gateway"]
    incarnations += [Incarnation(g, 21 + n, T0 - 5, None, "") for n, g in enumerate(gateways)]
    alive = {r: up for r, up in soak.final.alive.items() if r != "gateway"}
    final = dataclasses.replace(soak.final, alive={**alive, **dict.fromkeys(gateways, True)})
    soak = dataclasses.replace(soak, gateways=gateways, samples=tuple(samples),
                               incarnations=tuple(incarnations), final=final)
    return dataclasses.replace(soak, **changes)


def test_each_gateways_memory_is_judged() -> None:
    soak = _two_gateway_soak()
    assert _failed(soak) == set()
    judged = {row.role: row.verdict for row in memory_rows(soak)}
    assert judged["gateway-a"] == judged["gateway-b"] == "ok"
    grown = [s if s.role != "gateway-b" or s.at < T0 + 75
             else dataclasses.replace(s, rss=200 * MIB) for s in soak.samples]
    assert _failed(dataclasses.replace(soak, samples=tuple(grown))) == {"memory flat"}


def test_the_table_counts_each_gateways_kills() -> None:
    kills = tuple(Event("gateway-kill", role, 21, T0 + n, T0 + n + 1)
                  for n, role in enumerate(("gateway-a", "gateway-b", "gateway-a")))
    table = render(_two_gateway_soak(events=kills), [], "two")
    assert "gateway-kill by gateway: gateway-a 2  gateway-b 1" in table
    assert "by gateway" not in render(_soak(events=kills), [], "one")


def test_a_sample_of_a_gateway_not_in_the_soak_is_not_judged() -> None:
    soak = _two_gateway_soak()
    stray = (*soak.samples, Sample(T0 + 80, "gateway", 99, 900 * MIB, 0))
    assert "gateway" not in {row.role for row in memory_rows(
        dataclasses.replace(soak, samples=stray))}


def test_agents_moved_within_two_heartbeat_timeouts_of_each_gateway_kill() -> None:
    def kill(role: str, moved: float | None) -> Event:
        return Event("gateway-kill", role, 21, T0 + 10, T0 + 18, "", moved)

    soak = _two_gateway_soak(events=(kill("gateway-a", 1.2), kill("gateway-b", 5.9)))
    assert _failed(soak) == set()
    late = _two_gateway_soak(events=(kill("gateway-a", 1.2), kill("gateway-b", 6.1)))
    assert _failed(late) == {"agents moved"}
    never = _two_gateway_soak(events=(kill("gateway-a", float("inf")),))
    assert _failed(never) == {"agents moved"}
    assert "agents moved" not in {c.name for c in run_checks(_soak(events=(
        kill("gateway", None),)))}, "one gateway: nothing to move to"
