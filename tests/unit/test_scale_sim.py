"""The scale simulation's arithmetic on small hand-checked cases (pure, no network)."""

from __future__ import annotations

import math
import random

import pytest
from tokengate.gateway.ledger.schema import shard_prefix

from benchmarks import scale_sim as sim

# Every window zero: each call, result, receipt, dispatch, outcome and ack is a frame of its own.
ALONE = sim.Framing("alone", client_send_s=0.0, accept_wait_s=0.0, receipt_s=0.0,
                    dispatch_s=0.0, agent_send_s=0.0, ack_s=0.0, lane_s=0.0)
ROUND = sim.Costs(gw_token_us=10.0, gw_message_us=100.0, gw_script_us=0.0,
                  gw_lane_cycle_us=0.0, redis_token_us=5.0, redis_script_us=10.0,
                  redis_roundtrip_us=0.0, redis_agent_tick_us=0.0, session_kib=1024.0,
                  gateway_base_mib=50.0, round_trip_s=0.01)


def test_frames_carry_what_arrives_within_the_window() -> None:
    assert sim.frames(100.0, 0.01) == pytest.approx(50.0)  # two items a frame
    assert sim.frames(100.0, 0.0) == pytest.approx(100.0)
    assert sim.frames(0.0, 1.0) == 0.0
    assert sim.alone(0.0, 5.0) == 1.0
    assert sim.alone(2.0, 0.5) == pytest.approx(math.exp(-1.0))


def test_a_token_alone_costs_seven_messages_and_three_scripts() -> None:
    pt = sim.per_token(1.0, 100.0, 0.0, ALONE, ROUND)
    assert pt.client_msgs == pytest.approx(4.0)  # submit, accept, result, receipt
    assert pt.agent_msgs == pytest.approx(3.0)   # dispatch, outcome, ack
    assert pt.scripts == pytest.approx(3.0)      # submit, complete, forget
    assert pt.receipt_wait_s == 0.0


def test_coalescing_rides_the_accept_and_the_receipt() -> None:
    f = sim.Framing("c", client_send_s=0.0, accept_wait_s=1.0, receipt_s=1.0,
                    dispatch_s=0.0, agent_send_s=0.0, ack_s=0.0, lane_s=0.0)
    pt = sim.per_token(1.0, 100.0, 0.0, f, ROUND)  # instant tasks: the accept always rides
    receipt_frames = 1.0 / 2.0  # one call a second, a receipt frame per two
    assert pt.client_msgs == pytest.approx(2.0 + receipt_frames * math.exp(-1.0))
    assert pt.scripts == pytest.approx(2.0 + receipt_frames)


def test_one_gateway_by_hand() -> None:
    load = sim.Load(tokens_s=1000.0, clients=1000, agents=10, task_s=0.0)
    gw = sim.one_gateway(load, 2, ALONE, ROUND)
    assert gw.tokens_s == 500.0 and gw.sessions == 500.0 and gw.agents == 5.0
    assert gw.cpu == pytest.approx(500 * (10 + 7 * 100) * 1e-6)  # busy agents: no heartbeats
    assert gw.redis_cpu == pytest.approx(500 * (5 + 3 * 10) * 1e-6)
    assert gw.memory_mib == pytest.approx(50.0 + 505.0)
    assert gw.in_flight == pytest.approx(500 * 0.01)  # Little: rate x the round trip


def test_plan_takes_the_fewest_gateways_and_masters() -> None:
    load = sim.Load(tokens_s=1000.0, clients=1000, agents=10, task_s=0.0)
    p = sim.plan(load, ALONE, ROUND, sim.Limits(gateway_cores=0.5, redis_cores=0.03))
    assert p.gateway.gateways == 2 and p.gateways_set_by == "gateway CPU"  # 0.71 cores in all
    assert p.masters == 2 and p.masters_set_by == "Redis CPU"  # 0.0175 a shard, 1 a master
    assert p.gateway_us == pytest.approx(710.0)
    hot = sim.plan(load, ALONE, ROUND, sim.Limits(gateway_cores=10.0, redis_cores=0.01))
    assert hot.gateway.gateways == 4 and hot.gateways_set_by == "one shard's Redis CPU"
    crowd = sim.Load(tokens_s=10.0, clients=25_000, agents=10, task_s=0.0)
    p = sim.plan(crowd, ALONE, ROUND)
    assert p.gateway.gateways == 3 and p.gateways_set_by == "sessions per gateway"


def test_keyslot_is_redis_clusters() -> None:
    assert sim.crc16(b"123456789") == 0x31C3  # the CRC16/XMODEM check value
    assert sim.keyslot("somekey") == 11058  # CLUSTER KEYSLOT's documented examples
    assert sim.keyslot("foo{hash_tag}") == sim.keyslot("bar{hash_tag}") == 2515
    prefix = shard_prefix("tokengate:", "7")
    assert sim.keyslot(prefix + "t:abc") == sim.keyslot(prefix + "epoch") == sim.keyslot("7")


def test_names_by_slot_spread_shards_evenly() -> None:
    names = sim.balanced_names(10, 4)
    assert len(set(names)) == 10
    assert sorted(sim.shards_per_master(names, 4).values()) == [2, 2, 3, 3]


def test_fifo_waits_by_hand_and_against_erlang_c() -> None:
    assert sim.fifo_waits([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], 2) == [0.0, 0.0, 1.0]
    rng = random.Random(3)
    at, arrivals = 0.0, []
    for _ in range(60_000):
        at += rng.expovariate(1.0)
        arrivals.append(at)
    waits = sim.fifo_waits(arrivals, [rng.expovariate(1.0) for _ in arrivals], 2)
    # M/M/2 with offered load 1: a call waits with chance 1/3, for 1/(2 - 1) on average
    assert sum(waits) / len(waits) == pytest.approx(1 / 3, rel=0.1)


def test_even_placement_leaves_no_gateway_short() -> None:
    load = sim.Load(tokens_s=2000.0, clients=500, agents=40, task_s=0.002)
    even = sim.dispatch_balance(load, 8, 2, "even", 0.5, random.Random(1))
    assert (even.agents_min, even.agents_max, even.idle_gateways) == (5, 5, 0)
    hashed = sim.dispatch_balance(load, 8, 2, "hash", 0.5, random.Random(1))
    assert hashed.agents_max - hashed.agents_min >= even.agents_max - even.agents_min


def test_the_report_runs() -> None:
    sim.main(["--agents", "100", "--clients", "1000", "--targets", "5000"])
