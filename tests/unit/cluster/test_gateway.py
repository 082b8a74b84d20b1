"""The gateway's decisions with no sockets, threads or Redis: the in-memory ledger and the
connections' outboxes stand in for them (the same flows run for real in tests/integration)."""

from __future__ import annotations

import queue

import pytest
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn, ClientConn, _Control, _Tasks
from tokengate.gateway.gateway import Gateway
from tokengate.gateway.ledger import MemoryLedger
from tokengate.shared.errors import AgentRejected
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight

WEIGHTS = ("heavy", "medium", "light")


def outbox(conn) -> list:
    out = []
    while True:
        try:
            out.append(conn._outbox.get_nowait())
        except queue.Empty:
            return out


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


def join(gateway: Gateway, name: str, n: int = 2, incarnation: str = "i1",
         held: tuple[str, ...] = (), tasks: tuple[pb.TaskInfo, ...] = ()) -> AgentConn:
    hello = pb.Hello(name=name, incarnation=incarnation, host="h", held=list(held),
                     task_info=list(tasks))
    return gateway.join(pb.AgentFrame(hello=hello, seq=1, credits=[
        pb.Credit(weight=w, count=n) for w in WEIGHTS]))


def frame(*ids: str, weight: str = "light", once: bool = False, task: str = "m:f",
          resubmit: bool = False) -> pb.ClientFrame:
    return pb.ClientFrame(resubmit=resubmit, submit=[pb.TaskItem(
        token_id=i, task=task, payload=b"\x92\x90\x80", weight=weight, not_idempotent=once)
        for i in ids])


def done(items: list[pb.TaskItem], state: int = pb.COMPLETED) -> list[pb.ResultItem]:
    return [pb.ResultItem(token_id=t.token_id, state=state, payload=b"\x01", attempt=t.attempt,
                          session=t.session) for t in items]


def dispatch_all(gateway: Gateway) -> None:
    gateway.dispatch.sync()
    while gateway.dispatch._round():
        pass


@pytest.fixture
def gateway() -> Gateway:
    return Gateway(GatewayConfig(token="t", max_attempts=2, max_pending=5), MemoryLedger())


def test_calls_go_to_agents_by_credit_and_results_reach_the_client_once_stored(gateway):
    a1, a2 = join(gateway, "a1"), join(gateway, "a2")
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    gateway.on_client_frame(client, frame("t1", "t2", "t3", "t4", "t5"))
    to_a1, to_a2 = sent_tasks(a1), sent_tasks(a2)
    assert len(to_a1) == 2 and len(to_a2) == 2 and all(t.attempt == 1 for t in to_a1 + to_a2)
    assert all(t.session == client.session for t in to_a1), "a token carries its session"
    accepted, rejected, _ = replies(client)
    assert sorted(accepted) == ["t1", "t2", "t3", "t4", "t5"] and not rejected
    assert gateway.ledger.queue_lengths()["light"] == 1, "no credit left: it waits"

    gateway.on_agent_frame(a1, pb.AgentFrame(results=done(to_a1), seq=2, received=2,
                                             credits=[pb.Credit(weight="light", count=2)]))
    assert [r.token_id for r in replies(client)[2]] == [t.token_id for t in to_a1]
    assert any(c.ack_seq == 2 for c in controls(a1))
    dispatch_all(gateway)
    assert [t.token_id for t in sent_tasks(a1)] == ["t5"]


def test_credit_is_the_agents_absolute_figure_less_what_is_in_transit(gateway):
    agent = join(gateway, "a1", n=3)
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    gateway.on_client_frame(client, frame("t1", "t2", "t3", "t4"))
    assert len(sent_tasks(agent)) == 3
    # The agent took the three and measured 1 free slot after them: one more may go.
    gateway.on_agent_frame(agent, pb.AgentFrame(seq=2, received=3, credits=[
        pb.Credit(weight=w, count=1) for w in WEIGHTS]))
    dispatch_all(gateway)
    assert [t.token_id for t in sent_tasks(agent)] == ["t4"]
    assert set(gateway.dispatch.credit_of("a1").values()) == {0}
    # An older measurement (fewer tasks received) never replaces a newer one.
    gateway.on_agent_frame(agent, pb.AgentFrame(seq=3, received=2, credits=[
        pb.Credit(weight=w, count=3) for w in WEIGHTS]))
    assert all(n == 0 for n in gateway.dispatch.credit_of("a1").values())
    assert gateway.views.status().nodes[0].state == "SATURATED"


def test_drain_holds_and_resume_dispatches(gateway):
    agent = join(gateway, "a1", n=10)
    client = ClientConn("peer", "c1")
    gateway.control.drain("", "maintenance")
    gateway.on_client_frame(client, frame("t1", "t2"))
    status = gateway.views.status()
    assert sent_tasks(agent) == [] and status.state == "DRAINED" and status.held == 2
    assert status.nodes[0].state == "DRAINED"
    gateway.control.resume("")
    dispatch_all(gateway)
    assert [t.token_id for t in sent_tasks(agent)] == ["t1", "t2"]
    assert gateway.views.status().state == "RUNNING"


def test_a_lost_agent_is_fenced_out_and_its_tokens_requeued_or_failed(gateway):
    a1 = join(gateway, "a1", n=5)
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    gateway.on_client_frame(client, frame("again"))
    gateway.on_client_frame(client, frame("once", once=True))
    held = sent_tasks(a1)
    assert len(held) == 2
    replies(client)
    a2 = join(gateway, "a2", n=5)
    gateway.registry.declare_lost("a1")
    assert [(r.token_id, r.error_type) for r in replies(client)[2]] == [("once", "AgentLost")]
    dispatch_all(gateway)
    assert [(t.token_id, t.attempt) for t in sent_tasks(a2)] == [("again", 2)]
    # a1's late outcomes (it was only stopped) change nothing and reach no client.
    gateway.on_agent_frame(a1, pb.AgentFrame(results=done(held), seq=5))
    assert replies(client)[2] == []
    assert gateway.ledger.records(["once"])[0].error_type == "AgentLost"
    gateway.registry.declare_lost("a2")
    assert [r.error_type for r in replies(client)[2]] == ["AgentLost"], "attempts ran out"
    assert gateway.registry.get("a1") is None and gateway.ledger.counts()["lost"] == 2


def test_joining_adopts_what_the_agent_holds_before_it_gets_anything(gateway):
    agent = join(gateway, "a1", n=2)
    client = ClientConn("peer", "c1")
    gateway.on_client_frame(client, frame("kept", "lost-in-transit"))
    assert len(sent_tasks(agent)) == 2
    # It reconnects holding only "kept" (the other frame never reached it), and still holds
    # "stale", a token that is not its own.
    again = join(gateway, "a1", n=2, held=("kept", "stale"))
    welcome = controls(again)[0]
    assert welcome.revoke == ("stale",) and welcome.lease > 0
    assert gateway.ledger.inflight_ids("a1") == {"kept"}
    record = gateway.ledger.records(["lost-in-transit"])[0]
    assert record.state.value == "waiting" and record.attempt == 1, "never received: same run"
    dispatch_all(gateway)
    assert [t.token_id for t in sent_tasks(again)] == ["lost-in-transit"]


def test_a_new_process_under_a_known_name_inherits_nothing(gateway):
    agent = join(gateway, "a1", n=2, incarnation="old")
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    gateway.on_client_frame(client, frame("t1"))
    assert len(sent_tasks(agent)) == 1
    gateway.registry.get("a1").last_seen -= 60  # the old process went silent
    join(gateway, "a1", n=2, incarnation="new")
    record = gateway.ledger.records(["t1"])[0]
    assert record.state.value == "waiting" and record.attempt == 2


def test_kill_waiting_and_forwarded(gateway):
    agent = join(gateway, "a1", n=1)
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    gateway.on_client_frame(client, frame("t1", "t2"))
    replies(client)
    assert gateway.control.kill("t2", "ops")[0] == "killed"
    assert [r.state for r in replies(client)[2]] == [pb.KILLED]
    assert gateway.ledger.queue_lengths()["light"] == 0, "a killed token leaves its queue"
    assert gateway.control.kill("t1")[0] == "forwarded"
    assert any(c.kill == "t1" for c in controls(agent))
    assert [e.action for e in gateway.ledger.audit_log(10)] == ["kill", "kill"]


def test_repeats_bad_items_and_busy_are_answered_and_a_repeat_runs_once(gateway):
    agent = join(gateway, "a1", n=10)
    client = ClientConn("peer", "c1")
    gateway.on_client_frame(client, frame("a", "a", "b", "a", "c"))
    assert sorted(t.token_id for t in sent_tasks(agent)) == ["a", "b", "c"]
    accepted, _, _ = replies(client)
    assert accepted.count("a") == 3, "every copy is answered"
    gateway.control.drain("", "fill the queue")
    gateway.on_client_frame(client, frame("d", "e", "f", "g", "h"))
    gateway.on_client_frame(client, frame("a", resubmit=True))
    gateway.on_client_frame(client, frame("x", weight="huge"))
    gateway.on_client_frame(client, frame("i"))
    accepted, rejected, _ = replies(client)
    assert "a" in accepted, "a resubmitted id is acknowledged again, not re-run"
    assert {r.token_id: r.error_type for r in rejected} == {"x": "BadRequest",
                                                             "i": "GatewayBusy"}


def test_a_frame_of_any_size_is_answered_whole():
    client = ClientConn("peer", "c1")
    big = Gateway(GatewayConfig(token="t", max_pending=10_000), MemoryLedger())
    ids = [f"t{i}" for i in range(2500)]
    big.on_client_frame(client, frame(*ids))
    accepted, rejected, _ = replies(client)
    assert sorted(accepted) == sorted(ids) and not rejected
    assert big.ledger.queue_lengths()["light"] == 2500


def test_a_live_name_cannot_be_taken_but_a_reconnect_replaces_its_link(gateway):
    first = join(gateway, "a1", incarnation="one")
    with pytest.raises(AgentRejected):
        join(gateway, "a1", incarnation="two")
    again = join(gateway, "a1", incarnation="one")
    assert not first.connected and again.connected and gateway.registry.get("a1") is again


def test_a_session_watches_only_its_own_tokens_unless_it_is_an_operators(gateway):
    agent = join(gateway, "a1", n=5)
    owner, other = ClientConn("p1", "owner"), ClientConn("p2", "other")
    operator = ClientConn("p3", "ops", operator=True)
    for conn in (owner, other, operator):
        gateway.open_session(conn)
    gateway.on_client_frame(owner, frame("mine"))
    gateway.on_client_frame(other, pb.ClientFrame(watch=["mine"]))
    assert [r.error_type for r in replies(other)[1]] == ["PermissionDenied"]
    gateway.on_client_frame(other, pb.ClientFrame(watch=["mine"], watch_any=True))
    assert [r.error_type for r in replies(other)[1]] == ["PermissionDenied"]
    gateway.on_client_frame(operator, pb.ClientFrame(watch=["mine"], watch_any=True))
    gateway.on_agent_frame(agent, pb.AgentFrame(results=done(sent_tasks(agent)), seq=2))
    assert [r.token_id for r in replies(operator)[2]] == ["mine"]
    assert [r.token_id for r in replies(owner)[2]] == ["mine"], "a watch takes nothing away"
    assert replies(other)[2] == []


def test_a_task_registered_as_not_idempotent_never_runs_again_whatever_the_client_says(gateway):
    rule = pb.TaskInfo(name="m:once", idempotent=False, weight="medium")
    agent = join(gateway, "a1", n=5, tasks=(rule,))
    client = ClientConn("peer", "c1")
    gateway.open_session(client)
    gateway.on_client_frame(client, frame("t1", task="m:once", weight="light", once=False))
    (item,) = sent_tasks(agent)
    assert item.not_idempotent and item.weight == "medium", "the task's own tags win"
    gateway.registry.declare_lost("a1")
    assert [r.error_type for r in replies(client)[2]] == ["AgentLost"]


def test_a_session_that_does_not_read_is_cut_off_not_grown(gateway):
    client = ClientConn("peer", "c1", max_bytes=64 * 1024)
    big = [pb.ResultItem(token_id=f"r{i}", payload=b"x" * 2048) for i in range(100)]
    sent = [client.send(results=[r]) for r in big]
    assert sent.count(True) < 40 and client.too_slow and not client.open


def test_a_restarted_gateway_keeps_the_drain_and_the_waiting_tokens():
    ledger = MemoryLedger()
    first = Gateway(GatewayConfig(token="t"), ledger)
    first.control.drain("", "upgrade")
    first.on_client_frame(ClientConn("peer", "c1"), frame("held"))
    second = Gateway(GatewayConfig(token="t"), ledger).start(lease_wait=0)
    try:
        assert second.dispatch.drain_state().cluster == "upgrade"
        assert second.dispatch.waiting()[Weight.LIGHT] == 1
        status = second.views.status()
        assert status.state == "DRAINED" and status.held == 1
    finally:
        second.stop()
