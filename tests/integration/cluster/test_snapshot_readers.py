"""The snapshot's readers: the gateway keeps an agent's last snapshot that fits the schema, and
``tokengate status`` reads one through it (no sockets; the gateway's ledger is a RedisLedger
on a shard of its own of the session's redis-server)."""

from __future__ import annotations

import asyncio
import logging

import msgpack
import pytest
from test_ledger import leased_ledger
from tokengate.gateway import registry
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.gateway import Gateway
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.status import describe_node, format_status

WEIGHTS = ("heavy", "medium", "light")


def snapshot(attempts: int, failures: int, **extra: object) -> bytes:
    house = {"mode": "auto-block", "auto_block": True, "failure_threshold": 0.5,
             "min_attempts": 2, "methods": {"m:f": {
                 "attempts": attempts, "successes": attempts - failures, "failures": failures,
                 "mean_time": 0.25, "health": "poor", "blocked": False}}}
    return msgpack.packb({"node": "a1", "state": "running", "workers": 4,
                          "guard_house": house, **extra})


def test_a_snapshot_that_does_not_fit_is_logged_and_the_previous_one_kept(caplog, redis_url,
                                                                          monkeypatch):
    async def main() -> None:
        ledger = leased_ledger(redis_url, "tg-snap")
        gateway = Gateway(GatewayConfig(token="t"), ledger)
        try:
            hello = pb.Hello(name="a1", incarnation="i1", host="h")
            conn = await gateway.join(pb.AgentFrame(hello=hello, seq=1, credits=[
                pb.Credit(weight=w, count=2) for w in WEIGHTS]))
            good = snapshot(1, 0)
            await gateway.on_agent_frame(conn, pb.AgentFrame(seq=2, snapshot=good))
            bad = snapshot(4, 4, uptime="a while")  # its Guard House would block m:f
            with caplog.at_level(logging.WARNING, logger="tokengate.gateway.registry"):
                for seq in (3, 4, 5):  # one a second: one warning a minute, not three
                    await gateway.on_agent_frame(conn, pb.AgentFrame(seq=seq, snapshot=bad))
                warned = [r for r in caplog.records if "does not fit" in r.getMessage()]
                assert len(warned) == 1
                monkeypatch.setattr(registry, "BAD_SNAPSHOT_LOG_EVERY", 0.0)  # a minute on
                await gateway.on_agent_frame(conn, pb.AgentFrame(seq=6, snapshot=bad))
            assert conn.snapshot == good
            assert "a1" in caplog.text and "snapshot.uptime: expected a number" in caplog.text
            assert "(2 more since the last warning)" in caplog.text
            assert gateway.guards.blocked == set()  # the bad report was not taken either
            guards = gateway.views.guards()
            assert [(f.name, f.attempts, f.health) for f in guards.functions] == [
                ("m:f", 1, "poor")]
            status = await gateway.views.status()
            assert status.nodes[0].snapshot == good
            await gateway.on_agent_frame(conn, pb.AgentFrame(seq=7, snapshot=snapshot(4, 4)))
            assert gateway.guards.blocked == {"m:f"}  # a fitting one is taken again
        finally:
            gateway.store.stop()
            ledger.close()
    asyncio.run(main())


def test_status_reads_an_older_agents_snapshot_with_defaults_and_drops_a_bad_one(caplog):
    older = pb.NodeStatus(name="a1", state="UP",
                          topology=msgpack.packb({"workers": 4, "policy": {"heavy": [1]}}),
                          snapshot=msgpack.packb({"state": "running", "tokens": {"completed": 3},
                                                  "cores": [{"core": 1, "depths": [2]}]}))
    node = describe_node(older)
    assert node["snapshot"]["tokens"]["completed"] == 3 and node["snapshot"]["stuck"] == 0
    assert node["snapshot"]["cores"][0]["busy"] == [] and node["topology"]["workers"] == 4
    assert node["topology"]["topology"]["physical_cores"] is None
    bad = pb.NodeStatus(name="a2", state="UP", topology=msgpack.packb({"workers": "four"}),
                        snapshot=msgpack.packb({"cores": "none"}))
    with caplog.at_level(logging.WARNING, logger="tokengate.shared.status"):
        node = describe_node(bad)
    assert node["snapshot"] == {} and node["topology"] == {}
    assert "snapshot.cores: expected a list" in caplog.text
    assert "topology.workers: expected an integer" in caplog.text


@pytest.mark.parametrize(("topology", "shown"), [({"workers": 4}, " 4"), ({}, " ?")])
def test_the_status_text_shows_the_hellos_workers_or_a_question_mark(topology, shown):
    node = describe_node(pb.NodeStatus(name="a1", state="UP",
                                       topology=msgpack.packb(topology) if topology else b""))
    info = {"state": "RUNNING", "reason": "", "uptime": 1.0, "inflight": 0, "counts": {},
            "pending": {}, "nodes": [node]}
    line = next(text for text in format_status(info).splitlines() if text.startswith("a1"))
    assert line.endswith(shown)
