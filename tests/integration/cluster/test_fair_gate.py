"""The fair-share gate on a gateway over a real ledger (a RedisLedger on a shard of its own):
held calls are neither stored nor acknowledged, go in as tokens finish, even after their
session closed. The policy itself is tested pure in tests/unit/cluster/test_fairness.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from test_gateway import done, frame, join, replies, sent_tasks
from test_ledger import leased_ledger
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn, ClientConn
from tokengate.gateway.gateway import Gateway
from tokengate.shared.rpc import tokengate_pb2 as pb


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
async def _gated(redis_url: str, **config: int,
                 ) -> AsyncIterator[tuple[Gateway, AgentConn, ClientConn]]:
    """A gateway of depth 4 with one agent; client "other" has stored o1, client "flood" has
    sent f0-f9 (f0-f2 stored, the rest held). Yields (gateway, agent, flood)."""
    ledger = leased_ledger(redis_url, "tg-fair")
    gateway = Gateway(GatewayConfig(token="t", fair_depth=4, max_pending=100, **config),
                      ledger)
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
        ledger.close()


def test_held_calls_are_neither_stored_nor_acked_and_go_in_as_tokens_finish(redis_url):
    async def main() -> None:
        async with _gated(redis_url) as (gateway, agent, flood):
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


def test_a_client_holding_its_cap_is_not_read_until_half_went_in(redis_url):
    """The per-client cap on held calls (memory: a flood, or a client that never reads, is
    held back by gRPC's flow control instead): its sessions' reader waits; another client's
    does not; a closed session is read on and its calls go in unheld."""
    async def main() -> None:
        async with _gated(redis_url, max_held_per_client=4) as (gateway, agent, flood):
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
