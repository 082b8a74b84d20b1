"""The gateway's decisions with no sockets: the connections' outboxes stand in for them (the
same flows run end to end in the other cluster tests), and the ledger is the real one, a
RedisLedger on a shard of its own of the session's redis-server (there is no in-memory twin
of the Lua scripts). Each test runs on an event loop of its own, as the gateway does; the
ledger's calls go through the store's lanes, as they do for real."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from test_ledger import _record, leased_ledger
from tokengate.gateway import control
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn, ClientConn, _Control, _Tasks
from tokengate.gateway.gateway import Gateway
from tokengate.shared.errors import AgentRejected, RedisUnavailable
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight

WEIGHTS = ("heavy", "medium", "light")


def outbox(conn) -> list:
    out = list(conn.outbox.entries)
    conn.outbox.entries.clear()
    return out


def on_loop(**config: Any) -> Callable[[Callable[[Gateway], Awaitable[None]]],
                                       Callable[[str], None]]:
    """Run an async test on a loop of its own with a gateway over a RedisLedger of its own
    (the test asks for the ``redis_url`` fixture)."""
    def wrap(test: Callable[[Gateway], Awaitable[None]]) -> Callable[[str], None]:
        def run(redis_url: str) -> None:
            async def main() -> None:
                settings = {"token": "t", "max_attempts": 2, "max_pending": 5, **config}
                ledger = leased_ledger(redis_url, "tg-gw")
                gateway = Gateway(GatewayConfig(**settings), ledger)
                try:
                    await test(gateway)
                finally:
                    gateway.store.stop()
                    ledger.close()
            asyncio.run(main())
        run.__name__, run.__doc__ = test.__name__, test.__doc__
        return run
    return wrap


def sent_tasks(agent: AgentConn) -> list[pb.TaskItem]:
    return [item for entry in outbox(agent) if isinstance(entry, _Tasks) for item in entry.items]


def controls(agent: AgentConn) -> list[_Control]:
    return [entry for entry in outbox(agent) if isinstance(entry, _Control)]


def replies(client: ClientConn) -> tuple[list[str], list[pb.Rejected], list[pb.ResultItem]]:
    accepted, rejected, results = [], [], []
    for entry in outbox(client):
        if isinstance(entry, tuple):
            accepted += entry[0] or []
            rejected += entry[1] or []
            results += entry[2] or []
    return accepted, rejected, results


async def join(gateway: Gateway, name: str, n: int = 2, incarnation: str = "i1",
         held: tuple[str, ...] = (), tasks: tuple[pb.TaskInfo, ...] = ()) -> AgentConn:
    hello = pb.Hello(name=name, incarnation=incarnation, host="h", held=list(held),
                     task_info=list(tasks))
    return await gateway.join(pb.AgentFrame(hello=hello, seq=1, credits=[
        pb.Credit(weight=w, count=n) for w in WEIGHTS]))


def frame(*ids: str, weight: str = "light", once: bool = False, task: str = "m:f",
          resubmit: bool = False) -> pb.ClientFrame:
    return pb.ClientFrame(resubmit=resubmit, submit=[pb.TaskItem(
        token_id=i, task=task, payload=b"\x92\x90\x80", weight=weight, not_idempotent=once)
        for i in ids])


def done(items: list[pb.TaskItem], state: int = pb.COMPLETED) -> list[pb.ResultItem]:
    return [pb.ResultItem(token_id=t.token_id, state=state, payload=b"\x01", attempt=t.attempt,
                          session=t.session) for t in items]


async def dispatch_all(gateway: Gateway) -> None:
    await gateway.dispatch.sync()
    while await gateway.dispatch._round():
        pass


@on_loop()
async def test_calls_go_to_agents_by_credit_and_results_reach_the_client_once_stored(gateway):
    a1, a2 = await join(gateway, "a1"), await join(gateway, "a2")
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    await gateway.on_client_frame(client, frame("t1", "t2", "t3", "t4", "t5"))
    to_a1, to_a2 = sent_tasks(a1), sent_tasks(a2)
    assert len(to_a1) == 2 and len(to_a2) == 2 and all(t.attempt == 1 for t in to_a1 + to_a2)
    assert all(t.session == client.session for t in to_a1), "a token carries its session"
    accepted, rejected, _ = replies(client)
    assert sorted(accepted) == ["t1", "t2", "t3", "t4", "t5"] and not rejected
    assert gateway.ledger.queue_lengths()["light"] == 1, "no credit left: it waits"

    await gateway.on_agent_frame(a1, pb.AgentFrame(results=done(to_a1), seq=2, received=2,
                                             credits=[pb.Credit(weight="light", count=2)]))
    assert [r.token_id for r in replies(client)[2]] == [t.token_id for t in to_a1]
    assert any(c.ack_seq == 2 for c in controls(a1))
    await dispatch_all(gateway)
    assert [t.token_id for t in sent_tasks(a1)] == ["t5"]


@on_loop()
async def test_credit_is_the_agents_absolute_figure_less_what_is_in_transit(gateway):
    agent = await join(gateway, "a1", n=3)
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    await gateway.on_client_frame(client, frame("t1", "t2", "t3", "t4"))
    assert len(sent_tasks(agent)) == 3
    # The agent took the three and measured 1 free slot after them: one more may go.
    await gateway.on_agent_frame(agent, pb.AgentFrame(seq=2, received=3, credits=[
        pb.Credit(weight=w, count=1) for w in WEIGHTS]))
    await dispatch_all(gateway)
    assert [t.token_id for t in sent_tasks(agent)] == ["t4"]
    assert set(gateway.dispatch.credit_of("a1").values()) == {0}
    # An older measurement (fewer tasks received) never replaces a newer one.
    await gateway.on_agent_frame(agent, pb.AgentFrame(seq=3, received=2, credits=[
        pb.Credit(weight=w, count=3) for w in WEIGHTS]))
    assert all(n == 0 for n in gateway.dispatch.credit_of("a1").values())
    assert (await gateway.views.status()).nodes[0].state == "SATURATED"


@on_loop()
async def test_drain_holds_and_resume_dispatches(gateway):
    agent = await join(gateway, "a1", n=10)
    client = ClientConn("peer", "c1")
    await gateway.control.drain("", "maintenance")
    await gateway.on_client_frame(client, frame("t1", "t2"))
    status = await gateway.views.status()
    assert sent_tasks(agent) == [] and status.state == "DRAINED" and status.held == 2
    assert status.nodes[0].state == "DRAINED"
    await gateway.control.resume("")
    await dispatch_all(gateway)
    assert [t.token_id for t in sent_tasks(agent)] == ["t1", "t2"]
    assert (await gateway.views.status()).state == "RUNNING"


@on_loop()
async def test_a_lost_agent_is_fenced_out_and_its_tokens_requeued_or_failed(gateway):
    a1 = await join(gateway, "a1", n=5)
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    await gateway.on_client_frame(client, frame("again"))
    await gateway.on_client_frame(client, frame("once", once=True))
    held = sent_tasks(a1)
    assert len(held) == 2
    replies(client)
    a2 = await join(gateway, "a2", n=5)
    await gateway.registry.declare_lost("a1")
    assert [(r.token_id, r.error_type) for r in replies(client)[2]] == [("once", "AgentLost")]
    await dispatch_all(gateway)
    assert [(t.token_id, t.attempt) for t in sent_tasks(a2)] == [("again", 2)]
    # a1's late outcomes (it was only stopped) change nothing and reach no client.
    await gateway.on_agent_frame(a1, pb.AgentFrame(results=done(held), seq=5))
    assert replies(client)[2] == []
    assert gateway.ledger.records(["once"])[0].error_type == "AgentLost"
    await gateway.registry.declare_lost("a2")
    assert [r.error_type for r in replies(client)[2]] == ["AgentLost"], "attempts ran out"
    assert gateway.registry.get("a1") is None and gateway.ledger.counts()["lost"] == 2


@on_loop()
async def test_joining_adopts_what_the_agent_holds_before_it_gets_anything(gateway):
    agent = await join(gateway, "a1", n=2)
    client = ClientConn("peer", "c1")
    await gateway.on_client_frame(client, frame("kept", "lost-in-transit"))
    assert len(sent_tasks(agent)) == 2
    # It reconnects holding only "kept" (the other frame never reached it), and still holds
    # "stale", a token that is not its own.
    again = await join(gateway, "a1", n=2, held=("kept", "stale"))
    welcome = controls(again)[0]
    assert welcome.revoke == ("stale",) and welcome.lease > 0
    assert gateway.ledger.inflight_ids("a1") == {"kept"}
    record = gateway.ledger.records(["lost-in-transit"])[0]
    assert record.state.value == "waiting" and record.attempt == 1, "never received: same run"
    await dispatch_all(gateway)
    assert [t.token_id for t in sent_tasks(again)] == ["lost-in-transit"]


@on_loop()
async def test_a_new_process_under_a_known_name_inherits_nothing(gateway):
    agent = await join(gateway, "a1", n=2, incarnation="old")
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    await gateway.on_client_frame(client, frame("t1"))
    assert len(sent_tasks(agent)) == 1
    gateway.registry.get("a1").last_seen -= 60  # the old process went silent
    await join(gateway, "a1", n=2, incarnation="new")
    record = gateway.ledger.records(["t1"])[0]
    assert record.state.value == "waiting" and record.attempt == 2


@on_loop()
async def test_kill_waiting_and_forwarded(gateway):
    agent = await join(gateway, "a1", n=1)
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    await gateway.on_client_frame(client, frame("t1", "t2"))
    replies(client)
    assert (await gateway.control.kill("t2", "ops"))[0] == "killed"
    assert [r.state for r in replies(client)[2]] == [pb.KILLED]
    assert gateway.ledger.queue_lengths()["light"] == 0, "a killed token leaves its queue"
    # A held token: the agent is asked to cancel it, and the reply says what the agent did.
    asking = asyncio.ensure_future(gateway.control.kill("t1"))
    command = await _command_sent(agent)
    assert (command.kind, command.target) == ("cancel", "t1")
    gateway.control.on_replies([pb.CommandReply(id=command.id, ok=True,
                                                message="cancel_requested")])
    assert (await asking)[0] == "cancel_requested"
    # An agent that does not answer in time is sent the plain kill (queued tokens only).
    control.CANCEL_TIMEOUT, before = 0.05, control.CANCEL_TIMEOUT
    try:
        assert (await gateway.control.kill("t1"))[0] == "forwarded"
    finally:
        control.CANCEL_TIMEOUT = before
    assert any(c.kill == "t1" for c in controls(agent))
    assert [e.action for e in gateway.ledger.audit_log(10)] == ["kill"] * 3


async def _command_sent(agent: AgentConn) -> pb.Command:
    for _ in range(200):
        sent = [c.command for c in controls(agent) if c.command is not None]
        if sent:
            return sent[0]
        await asyncio.sleep(0.005)
    raise AssertionError("no command was sent to the agent")


@on_loop()
async def test_repeats_bad_items_and_busy_are_answered_and_a_repeat_runs_once(gateway):
    agent = await join(gateway, "a1", n=10)
    client = ClientConn("peer", "c1")
    await gateway.on_client_frame(client, frame("a", "a", "b", "a", "c"))
    assert sorted(t.token_id for t in sent_tasks(agent)) == ["a", "b", "c"]
    accepted, _, _ = replies(client)
    assert accepted.count("a") == 3, "every copy is answered"
    await gateway.control.drain("", "fill the queue")
    await gateway.on_client_frame(client, frame("d", "e", "f", "g", "h"))
    await gateway.on_client_frame(client, frame("a", resubmit=True))
    await gateway.on_client_frame(client, frame("x", weight="huge"))
    await gateway.on_client_frame(client, frame("i"))
    accepted, rejected, _ = replies(client)
    assert "a" in accepted, "a resubmitted id is acknowledged again, not re-run"
    assert {r.token_id: r.error_type for r in rejected} == {"x": "BadRequest",
                                                             "i": "GatewayBusy"}


@on_loop(max_pending=10_000, fair_depth=0)  # no fair-share gate: nothing finishes here
async def test_a_frame_of_any_size_is_answered_whole(big):
    client = ClientConn("peer", "c1")
    ids = [f"t{i}" for i in range(2500)]
    await big.on_client_frame(client, frame(*ids))
    accepted, rejected, _ = replies(client)
    assert sorted(accepted) == sorted(ids) and not rejected
    assert big.ledger.queue_lengths()["light"] == 2500


@on_loop()
async def test_a_live_name_cannot_be_taken_but_a_reconnect_replaces_its_link(gateway):
    first = await join(gateway, "a1", incarnation="one")
    with pytest.raises(AgentRejected):
        await join(gateway, "a1", incarnation="two")
    again = await join(gateway, "a1", incarnation="one")
    assert not first.connected and again.connected and gateway.registry.get("a1") is again


@on_loop()
async def test_a_session_watches_only_its_own_tokens_unless_it_is_an_operators(gateway):
    agent = await join(gateway, "a1", n=5)
    owner, other = ClientConn("p1", "owner"), ClientConn("p2", "other")
    operator = ClientConn("p3", "ops", operator=True)
    for conn in (owner, other, operator):
        gateway.open_session(conn)
    await gateway.on_client_frame(owner, frame("mine"))
    await gateway.on_client_frame(other, pb.ClientFrame(watch=["mine"]))
    assert [r.error_type for r in replies(other)[1]] == ["PermissionDenied"]
    await gateway.on_client_frame(other, pb.ClientFrame(watch=["mine"], watch_any=True))
    assert [r.error_type for r in replies(other)[1]] == ["PermissionDenied"]
    await gateway.on_client_frame(operator, pb.ClientFrame(watch=["mine"], watch_any=True))
    await gateway.on_agent_frame(agent, pb.AgentFrame(results=done(sent_tasks(agent)), seq=2))
    assert [r.token_id for r in replies(operator)[2]] == ["mine"]
    assert [r.token_id for r in replies(owner)[2]] == ["mine"], "a watch takes nothing away"
    assert replies(other)[2] == []


@on_loop()
async def test_a_watch_redis_could_not_answer_is_refused_not_dropped(gateway):
    """A watch whose look-up fails (Redis away) is answered RedisUnavailable, which a client
    asks again: it used to be dropped, and ``tokengate result`` waited forever."""
    await join(gateway, "a1")
    owner = ClientConn("p1", "owner")
    gateway.open_session(owner)

    def away(ids):
        raise RedisUnavailable("connection refused")

    gateway.ledger.records = away
    await gateway.on_client_frame(owner, pb.ClientFrame(watch=["t1", "t2"]))
    assert [(r.token_id, r.error_type) for r in replies(owner)[1]] == [
        ("t1", "RedisUnavailable"), ("t2", "RedisUnavailable")]


@on_loop()
async def test_a_task_registered_not_idempotent_never_runs_again_whatever_the_client_says(
        gateway):
    rule = pb.TaskInfo(name="m:once", idempotent=False, weight="medium")
    agent = await join(gateway, "a1", n=5, tasks=(rule,))
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    await gateway.on_client_frame(client, frame("t1", task="m:once", weight="light", once=False))
    (item,) = sent_tasks(agent)
    assert item.not_idempotent and item.weight == "medium", "the task's own tags win"
    await gateway.registry.declare_lost("a1")
    assert [r.error_type for r in replies(client)[2]] == ["AgentLost"]


def test_a_session_that_does_not_read_is_cut_off_not_grown():
    client = ClientConn("peer", "c1", max_bytes=64 * 1024)
    big = [pb.ResultItem(token_id=f"r{i}", payload=b"x" * 2048) for i in range(100)]
    sent = [client.send(results=[r]) for r in big]
    assert sent.count(True) < 40 and client.too_slow and not client.open


def test_a_restarted_gateway_keeps_the_drain_and_the_waiting_tokens(redis_url):
    async def main() -> None:
        ledger = leased_ledger(redis_url, "tg-gw")
        first = Gateway(GatewayConfig(token="t"), ledger)
        await first.control.drain("", "upgrade")
        await first.on_client_frame(ClientConn("peer", "c1"), frame("held"))
        first.store.stop()
        ledger.lease("release", _record("holder"), 60)  # the next gateway takes the shard
        second = await Gateway(GatewayConfig(token="t"), ledger).start(lease_wait=0)
        try:
            assert second.dispatch.drain_state().cluster == "upgrade"
            assert second.dispatch.waiting()[Weight.LIGHT] == 1
            status = await second.views.status()
            assert status.state == "DRAINED" and status.held == 1
        finally:
            await second.stop()
    asyncio.run(main())
