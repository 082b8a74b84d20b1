"""Two hundred agent links on one gateway: every one registers, is kept alive by its
heartbeats, is given work by credit and has its outcomes reach the client; a real agent
still joins and runs calls beside them.

The links are spoken on the wire (``WireAgent``: real gRPC streams to the real gateway
process) because 200 agent processes do not fit on a 2-CPU machine; the gateway cannot tell
them from agents.
"""

from __future__ import annotations

import threading

import msgpack
import pytest
from conftest import TOKEN
from faultkit import WireAgent, call
from tokengate.shared.rpc import tokengate_pb2 as pb

pytestmark = pytest.mark.slow

LINKS = 200
BEAT = 0.5  # seconds between heartbeat frames, well inside the test gateway's timeout


def _answer(agent: WireAgent, items: list[pb.TaskItem], seq: int) -> None:
    agent.send(pb.AgentFrame(seq=seq, received=len(items), results=[
        pb.ResultItem(token_id=item.token_id, state=pb.COMPLETED, attempt=item.attempt,
                      payload=msgpack.packb(agent.name), node=agent.name, session=item.session)
        for item in items]))


@pytest.mark.timeout(240)
def test_two_hundred_agent_links_register_stay_alive_and_run_work(make_cluster):
    cluster = make_cluster(agents=())
    links = [WireAgent(cluster.address, TOKEN, f"w{i:03d}", ["cluster_tasks:add"],
                       credits={"heavy": 1, "medium": 1, "light": 1}) for i in range(LINKS)]
    stop = threading.Event()

    def heartbeats() -> None:
        seq = 1
        while not stop.wait(BEAT):
            seq += 1
            for link in links:
                link.send(pb.AgentFrame(seq=seq))

    beating = threading.Thread(target=heartbeats, daemon=True)
    try:
        for link in links:
            link.connect()
        beating.start()
        cluster.wait_nodes(lambda nodes: sum(s == "UP" for s in nodes.values()) == LINKS,
                           f"{LINKS} agent links up", timeout=60)
        # One light call per link's credit: the gateway spreads them over the links.
        session = cluster.raw_session()
        session.submit([call(f"t{i}", "cluster_tasks:add", i, 1) for i in range(LINKS)])
        served = {}
        for link in links:
            items = link.wait_tasks(1, timeout=30)
            served[link.name] = items
            _answer(link, items, seq=10_000)
        assert all(len(items) == 1 for items in served.values()), "one call each, by credit"
        ids = [f"t{i}" for i in range(LINKS)]
        session.wait_results(ids, timeout=30)
        told = session.outcomes()
        assert all(len(told[i]) == 1 and told[i][0].state == pb.COMPLETED for i in ids)
        assert len({msgpack.unpackb(told[i][0].payload) for i in ids}) == LINKS, \
            "every link ran one"
        # A real agent joins beside the 200 and runs calls; none was declared lost.
        cluster.start_agent("real")
        real = cluster.raw_session()
        real.submit([call(f"r{i}", "cluster_tasks:add", i, 1) for i in range(20)])
        real.wait_results([f"r{i}" for i in range(20)], timeout=30)
        ran = {t: (items[0].node, msgpack.unpackb(items[0].payload))
               for t, items in real.outcomes().items()}
        # The links spent their one credit and never report more: the real agent runs all.
        assert ran == {f"r{i}": ("real", i + 1) for i in range(20)}
        status = cluster.status()
        assert len(status["nodes"]) == LINKS + 1
        assert all(n["state"] in ("UP", "SATURATED") for n in status["nodes"]), \
            sorted({n["state"] for n in status["nodes"]})
        assert "declared lost" not in cluster.log("gateway")
    finally:
        stop.set()
        for link in links:
            link.close()
