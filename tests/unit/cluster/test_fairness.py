"""Fair shares, pure: who goes straight through, who is held, what the round robin releases
(gateway/fairness.py); then the gate on an in-memory gateway: held calls are neither stored
nor acknowledged, go in as tokens finish, even after their session closed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from test_gateway import done, frame, join, replies, sent_tasks
from tokengate.gateway import fairness
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn, ClientConn
from tokengate.gateway.gateway import Gateway
from tokengate.gateway.ledger import MemoryLedger
from tokengate.shared.errors import ConfigurationError
from tokengate.shared.rpc import tokengate_pb2 as pb


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


async def _until(condition, seconds: float = 10.0) -> None:
    """Poll ``condition`` on the loop (its tasks and the store's thread run meanwhile)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.002)


async def _acked(conn: ClientConn, count: int) -> list[str]:
    """The ids acked to ``conn`` once ``count`` arrived (or what did within 10 s), sorted."""
    got: list[str] = []

    def enough() -> bool:
        got.extend(replies(conn)[0])
        return len(got) >= count

    await _until(enough)
    await asyncio.sleep(0.01)
    got.extend(replies(conn)[0])  # none more may come: the next ones wait for finished work
    return sorted(got)


@contextlib.asynccontextmanager
async def _gated(**config: int) -> AsyncIterator[tuple[Gateway, AgentConn, ClientConn]]:
    """A gateway of depth 4 with one agent; client "other" has stored o1, client "flood" has
    sent f0-f9 (f0-f2 stored, the rest held). Yields (gateway, agent, flood)."""
    gateway = Gateway(GatewayConfig(token="t", fair_depth=4, max_pending=100, **config),
                      MemoryLedger())
    gateway.gate.start(gateway.admission.admit_released)
    try:
        agent = await join(gateway, "a1", n=50)
        flood, other = ClientConn("p1", "flood"), ClientConn("p2", "other")
        for conn in (flood, other):
            gateway.open_session(conn)
        await gateway.on_client_frame(other, frame("o1"))
        assert replies(other)[0] == ["o1"]
        await gateway.on_client_frame(flood, frame(*[f"f{i}" for i in range(10)]))
        assert sorted(replies(flood)[0]) == ["f0", "f1", "f2"], "the depth, 4, is full"
        yield gateway, agent, flood
    finally:
        await gateway.gate.stop()
        gateway.store.stop()


def test_held_calls_are_neither_stored_nor_acked_and_go_in_as_tokens_finish():
    async def main() -> None:
        async with _gated() as (gateway, agent, flood):
            assert gateway.ledger.records(["f3"]) == [None], "held: not stored"
            sent = sent_tasks(agent)
            await gateway.on_agent_frame(agent, pb.AgentFrame(results=done(sent), seq=2))
            # the release task runs on the loop; the store writes on its thread
            assert await _acked(flood, 4) == ["f3", "f4", "f5", "f6"]
            gateway.close_session(flood)  # what its client sent is still admitted
            await gateway.on_agent_frame(agent, pb.AgentFrame(results=done(sent_tasks(agent)),
                                                              seq=3))
            await _until(lambda: gateway.gate.held() == 0)
            assert gateway.gate.held() == 0
            assert all(r is not None for r in gateway.ledger.records(["f8", "f9"]))
    asyncio.run(main())


def test_a_client_holding_its_cap_is_not_read_until_half_went_in():
    """The per-client cap on held calls (memory: a flood, or a client that never reads, is
    held back by gRPC's flow control instead): its sessions' reader waits; another client's
    does not; a closed session is read on and its calls go in unheld."""
    async def main() -> None:
        async with _gated(max_held_per_client=4) as (gateway, agent, flood):
            assert gateway.gate.held() == 7, "f3-f9 held: the depth, 4, is full"
            reader = asyncio.create_task(gateway.gate.room_for(flood))
            other = ClientConn("p3", "other")  # a client holding nothing reads on
            await asyncio.wait_for(gateway.gate.room_for(other), 1)
            await asyncio.sleep(0.05)
            assert not reader.done(), "7 held, the cap is 4: its next frame is not read"
            await gateway.on_agent_frame(agent, pb.AgentFrame(results=done(sent_tasks(agent)),
                                                              seq=2))
            assert await _acked(flood, 4) == ["f3", "f4", "f5", "f6"]
            assert gateway.gate.held() == 3 and not reader.done(), "3 held: over half the cap"
            await gateway.on_agent_frame(agent, pb.AgentFrame(results=done(sent_tasks(agent)),
                                                              seq=3))
            await asyncio.wait_for(reader, 10)  # f7-f9 went in: it reads again
            assert gateway.gate.held() == 0

            await gateway.on_client_frame(flood, frame(*[f"g{i}" for i in range(8)]))
            held = gateway.gate.held()
            assert held >= 4
            reader = asyncio.create_task(gateway.gate.room_for(flood))
            flood.close(discard=True)  # cut off (as too slow): what it sent is read on
            await asyncio.wait_for(reader, 5)
            await gateway.on_client_frame(flood, frame("h1", "h2"))
            assert gateway.gate.held() == held, "a closed session's calls are not held"
            await _until(lambda: None not in gateway.ledger.records(["h1", "h2"]))
            assert None not in gateway.ledger.records(["h1", "h2"]), "stored at once"
    asyncio.run(main())
