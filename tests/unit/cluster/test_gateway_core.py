"""The gateway's decisions with no sockets, threads or Redis: the in-memory ledger and the
connection objects' outboxes stand in for them."""

from __future__ import annotations

import queue

import pytest
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn, ClientConn
from tokengate.gateway.control import Gateway
from tokengate.gateway.memory_ledger import MemoryLedger
from tokengate.shared.errors import AgentRejected
from tokengate.shared.rpc import tokengate_pb2 as pb


def drain_outbox(conn) -> list:
    out = []
    while True:
        try:
            out.append(conn._outbox.get_nowait())
        except queue.Empty:
            return out


def sent_tasks(agent: AgentConn) -> list[pb.TaskItem]:
    return [item for kind, value in drain_outbox(agent) if kind == "tasks" for item in value]


def client_replies(client: ClientConn) -> tuple[list[str], list[pb.Rejected], list[pb.ResultItem]]:
    accepted, rejected, results = [], [], []
    for entry in drain_outbox(client):
        if isinstance(entry, tuple):
            accepted += entry[0] or []
            rejected += entry[1] or []
            results += entry[2] or []
    return accepted, rejected, results


def hello(name: str, incarnation: str = "i1") -> pb.Hello:
    return pb.Hello(name=name, incarnation=incarnation, host="h")


def credits(n: int) -> list[pb.Credit]:
    return [pb.Credit(weight=w, count=n) for w in ("heavy", "medium", "light")]


def items(*ids: str, weight: str = "light", once: bool = False) -> pb.ClientFrame:
    return pb.ClientFrame(submit=[pb.TaskItem(token_id=i, task="m:f", payload=b"\x92\x90\x80",
                                              weight=weight, not_idempotent=once) for i in ids])


@pytest.fixture
def gateway() -> Gateway:
    return Gateway(GatewayConfig(token="t", max_attempts=2, max_pending=5), MemoryLedger())


def test_submissions_go_to_agents_by_credit_and_results_come_back(gateway):
    a1 = gateway.register_agent(hello("a1"), credits(2))
    a2 = gateway.register_agent(hello("a2"), credits(2))
    client = ClientConn("peer")
    gateway.on_client_frame(client, items("t1", "t2", "t3", "t4", "t5"))
    to_a1, to_a2 = sent_tasks(a1), sent_tasks(a2)
    assert len(to_a1) == 2 and len(to_a2) == 2 and all(t.attempt == 1 for t in to_a1 + to_a2)
    accepted, rejected, _ = client_replies(client)
    assert sorted(accepted) == ["t1", "t2", "t3", "t4", "t5"] and not rejected
    assert gateway.ledger.queue_lengths(["light"]) == {"light": 1}, "no credit left: it waits"

    done = [pb.ResultItem(token_id=t.token_id, state=pb.COMPLETED, payload=b"\x01",
                          session=t.session)
            for t in to_a1]
    gateway.on_agent_frame(a1, pb.AgentFrame(results=done, seq=1,
                                             credits=[pb.Credit(weight="light", count=2)]))
    assert [r.token_id for r in client_replies(client)[2]] == [t.token_id for t in to_a1]
    assert ("ack", 1) in drain_outbox(a1)
    assert gateway._dispatch_round() and [t.token_id for t in sent_tasks(a1)] == ["t5"]


def test_drain_holds_and_resume_dispatches(gateway):
    agent = gateway.register_agent(hello("a1"), credits(10))
    client = ClientConn("peer")
    gateway.drain("", "maintenance")
    gateway.on_client_frame(client, items("t1", "t2"))
    assert sent_tasks(agent) == [] and gateway.status().state == "DRAINED"
    assert gateway.status().nodes[0].state == "DRAINED"
    gateway.resume("")
    while gateway._dispatch_round():
        pass
    assert [t.token_id for t in sent_tasks(agent)] == ["t1", "t2"]
    assert gateway.status().state == "RUNNING"


def test_lost_agent_requeues_idempotent_and_fails_the_rest(gateway):
    a1 = gateway.register_agent(hello("a1"), credits(5))
    client = ClientConn("peer")
    gateway.on_client_frame(client, items("again"))
    gateway.on_client_frame(client, items("once", once=True))
    assert len(sent_tasks(a1)) == 2
    client_replies(client)
    a2 = gateway.register_agent(hello("a2"), credits(5))
    gateway.declare_lost("a1")
    _, _, results = client_replies(client)
    assert [(r.token_id, r.error_type) for r in results] == [("once", "AgentLost")]
    while gateway._dispatch_round():
        pass
    assert [(t.token_id, t.attempt) for t in sent_tasks(a2)] == [("again", 2)]
    gateway.declare_lost("a2")
    assert [r.error_type for r in client_replies(client)[2]] == ["AgentLost"], "attempts ran out"
    assert "a1" not in gateway.agents and gateway.ledger.counts()["lost"] == 2


def test_kill_waiting_and_forwarded(gateway):
    agent = gateway.register_agent(hello("a1"), credits(1))
    client = ClientConn("peer")
    gateway.on_client_frame(client, items("t1", "t2"))
    client_replies(client)
    assert gateway.kill("t2")[0] == "killed"
    assert [r.state for r in client_replies(client)[2]] == [pb.KILLED]
    assert gateway.kill("t1")[0] == "forwarded"
    assert ("kill", "t1") in drain_outbox(agent)


def test_duplicates_bad_items_and_busy_are_answered(gateway):
    client = ClientConn("peer")
    gateway.on_client_frame(client, items("a", "b", "c", "d", "e"))
    gateway.on_client_frame(client, pb.ClientFrame(submit=items("a").submit, resubmit=True))
    gateway.on_client_frame(client, items("f", weight="huge"))
    gateway.on_client_frame(client, items("g"))
    accepted, rejected, _ = client_replies(client)
    assert accepted.count("a") == 2, "a resubmitted id is acknowledged again, not re-run"
    assert {r.token_id: r.error_type for r in rejected} == {"f": "BadRequest",
                                                             "g": "GatewayBusy"}


def test_a_live_name_cannot_be_taken_but_a_reconnect_replaces_its_link(gateway):
    first = gateway.register_agent(hello("a1", "one"), credits(1))
    with pytest.raises(AgentRejected):
        gateway.register_agent(hello("a1", "two"), credits(1))
    again = gateway.register_agent(hello("a1", "one"), credits(1))
    assert not first.connected and again.connected and gateway.agents["a1"] is again


def test_a_restarted_gateway_keeps_the_drain_and_the_waiting_tokens():
    ledger = MemoryLedger()
    first = Gateway(GatewayConfig(token="t"), ledger)
    first.drain("", "upgrade")
    first.on_client_frame(ClientConn("peer"), items("held"))
    second = Gateway(GatewayConfig(token="t"), ledger).start()
    try:
        assert second.cluster_drain == "upgrade" and second._pending["light"] == 1
        assert second.status().state == "DRAINED"
    finally:
        second.stop()
