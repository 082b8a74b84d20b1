"""The gateway's long-lived loops and the dashboard's poller outlive an unexpected error:
each test makes a collaborator raise RuntimeError once and shows the loop logs it with its
traceback and goes on serving (the gateway's ledger is a RedisLedger on a shard of its own of
the session's redis-server, as in test_gateway)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from test_fair_gate import _gated
from test_gateway import done, frame, join, replies, sent_tasks
from test_ledger import _record, leased_ledger
from tokengate.dashboard.poller import Poller
from tokengate.gateway import placement
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import ClientConn
from tokengate.gateway.gateway import Gateway
from tokengate.gateway.lease import GatewayLease
from tokengate.gateway.ledger import DrainState
from tokengate.shared.backoff import Backoff
from tokengate.shared.rpc import tokengate_pb2 as pb


def once(real: Callable[..., Any], calls: list[str]) -> Callable[..., Any]:
    """``real``, except that its first call raises RuntimeError."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls.append("call")
        if len(calls) == 1:
            raise RuntimeError("a bug, once")
        return real(*args, **kwargs)
    return wrapped


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``condition`` on the loop (its tasks and the store's thread run meanwhile)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return condition()


def logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() and r.exc_info and r.exc_info[0] is RuntimeError
               for r in caplog.records)


def test_the_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(first=0.1, cap=0.5)
    assert [backoff.failed() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.succeeded()
    assert backoff.failed() == 0.1
    assert Backoff().failed() <= 0.1, "one failure costs a short pause"


def test_the_dispatcher_goes_on_after_an_unexpected_error(monkeypatch, caplog, redis_url):
    calls: list[str] = []
    monkeypatch.setattr(placement, "split", once(placement.split, calls))

    async def main() -> None:
        ledger = leased_ledger(redis_url, "tg-loops")
        gateway = Gateway(GatewayConfig(token="t", max_pending=10), ledger)
        client = ClientConn("peer", "c1")
        gateway.open_session(client)
        await gateway.on_client_frame(client, frame("t1", "t2"))  # no agent: they wait
        assert sorted(replies(client)[0]) == ["t1", "t2"]
        await gateway.dispatch.start(DrainState())
        try:
            agent = await join(gateway, "a1", n=5)  # kicks the dispatcher: its round raises
            got: list[str] = []
            assert await until(lambda: bool(got.extend(t.token_id for t in sent_tasks(agent)))
                               or len(got) == 2), "the next round dispatched them"
            assert sorted(got) == ["t1", "t2"] and len(calls) >= 2
        finally:
            await gateway.dispatch.stop()
            gateway.store.stop()
            ledger.close()

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert logged(caplog, "dispatch round failed")


def test_the_heartbeat_monitor_goes_on_after_an_unexpected_error(caplog, redis_url):
    async def main() -> None:
        ledger = leased_ledger(redis_url, "tg-loops")
        calls: list[str] = []
        ledger.touch_agents = once(ledger.touch_agents, calls)  # type: ignore[method-assign]
        gateway = Gateway(GatewayConfig(token="t", heartbeat_timeout=0.4), ledger)
        # the monitor judges only while the gateway holds its lease (it renews it each round)
        ledger.lease("release", _record("holder"), 60)
        await gateway.store.write(gateway.lease.acquire, 5)
        await join(gateway, "a1")
        gateway.registry.start()
        try:  # a1 never sends another frame: once the monitor is past its error, it is lost
            assert await until(lambda: gateway.registry.get("a1") is None), "a1 declared lost"
            assert len(calls) >= 2
        finally:
            await gateway.registry.stop()
            gateway.store.stop()
            ledger.close()

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert logged(caplog, "heartbeat check failed")


def test_the_fair_share_release_retries_after_an_unexpected_error(caplog, redis_url):
    async def main() -> None:
        async with _gated(redis_url) as (gateway, agent, flood):
            calls: list[str] = []
            shares = gateway.gate.shares
            shares.release = once(shares.release, calls)  # type: ignore[method-assign]
            # tokens finish: room for the held calls; the first release round raises, and
            # nothing else wakes the gate: the held calls go in only if it tries again
            await gateway.on_agent_frame(agent, pb.AgentFrame(results=done(sent_tasks(agent)),
                                                              seq=2))
            acked: list[str] = []
            assert await until(lambda: bool(acked.extend(replies(flood)[0])) or
                               len(acked) >= 4), "held calls released after the error"
            assert len(calls) >= 2

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert logged(caplog, "fair-share release failed")


class _LeaseLedger:
    """Answers lease calls; the renewals are counted and announced."""

    prefix = "tg-test:"

    def __init__(self) -> None:
        self.on_no_epoch: Callable[[], None] | None = None
        self.renewals = 0
        self.renewed = threading.Event()

    def lease(self, mode: str, record: bytes, ttl: float, *rest: Any) -> tuple[bool, bytes]:
        if mode.startswith("renew"):
            self.renewals += 1
            if self.renewals == 1:
                raise RuntimeError("a bug, once")
            if self.renewals >= 3:
                self.renewed.set()
        return True, record


def test_the_lease_renewal_goes_on_after_an_unexpected_error(caplog):
    ledger = _LeaseLedger()
    lease = GatewayLease(ledger, ttl=0.3)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        lease.start()
        try:
            assert ledger.renewed.wait(10), "renewed twice more after the error"
        finally:
            lease.release()
    assert logged(caplog, "renewing the gateway lease failed")


def test_the_dashboard_poller_goes_on_after_an_unexpected_error(caplog):
    ticks: list[str] = []
    polled = threading.Event()
    poller = Poller(source=None, memory=None, emit=lambda *a: None,  # type: ignore[arg-type]
                    interval=0.02, watchers=lambda: 0,
                    on_tick=once(lambda: None, ticks))
    poller.poll_once = lambda: polled.set() or {}  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR):
        poller.start()
        try:
            poller.kick()  # the first tick raises; the poll a kick asks for still comes
            deadline = time.monotonic() + 10
            while not polled.is_set() and time.monotonic() < deadline:
                poller.kick()
                polled.wait(0.05)
            assert polled.is_set() and len(ticks) >= 2
        finally:
            poller.stop()
    assert logged(caplog, "dashboard poll failed")
