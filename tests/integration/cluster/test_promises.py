"""The cluster's promises with real processes: credits equal what an agent can take, a frame
of any size is answered in full with nothing orphaned in Redis, and a drain is DRAINING
while work runs, DRAINED after, through a gateway crash.

Issue 8, defects 3 and 4, and the pinned drain. Work is held by gates (files the test
creates), never by sleeps; runs are counted by their side effect.
"""

from __future__ import annotations

import threading
import time

import cluster_tasks  # noqa: F401 - registers the tasks
import pytest
from conftest import Cluster, wait_until
from faultkit import call
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.rpc import tokengate_pb2 as pb

WEIGHTS = ("heavy", "medium", "light")


def idle(cluster: Cluster) -> bool:
    info = cluster.status()
    return info["inflight"] == 0 and sum(info["pending"].values()) == 0


class CreditWatch:
    """Samples every agent's credits from Status until stopped; keeps any above ``ceiling``."""

    def __init__(self, cluster: Cluster, ceiling: dict[str, dict[str, int]]) -> None:
        self.cluster, self.ceiling = cluster, ceiling
        self.over: list[tuple[str, dict[str, int]]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, credits in self.cluster.credits().items():
                top = self.ceiling.get(name, {})
                if any(credits.get(w, 0) > top.get(w, 0) for w in WEIGHTS):
                    self.over.append((name, credits))
            self.samples += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_credits_equal_free_capacity_after_agents_rejoin_holding_work(make_cluster, effects,
                                                                     gates):
    cluster = make_cluster(agent_options=("--workers-per-core", "2", "--mailbox-capacity", "6"))
    # 2 cores x 2 mailboxes x 6: heavy may use both cores, medium and light core 2 only.
    full = {"heavy": 24, "medium": 12, "light": 12}
    first = wait_until(lambda: cluster.credits() if idle(cluster) else None,
                       what="idle credits")
    assert first == {"a1": full, "a2": full}
    gate = gates("rejoin")
    client = cluster.client()
    held = [client.submit_by_name(f"cluster_tasks:{task}", (str(effects), f"{task}-{i}",
                                                            str(gate)))
            for task, count in (("gated_heavy", 6), ("gated", 6), ("gated_light", 4))
            for i in range(count)]
    wait_until(lambda: cluster.status()["inflight"] == len(held), what="16 held by agents")
    cluster.restart_gateway()  # the agents register again while they hold that work
    cluster.wait_nodes(lambda n: n.get("a1") == "UP" and n.get("a2") == "UP", "agents back")
    watch = CreditWatch(cluster, first)
    try:
        gate.open()
        mixed = [client.submit_by_name(f"cluster_tasks:{task}", (str(effects), f"{task}-{i}",
                                                                 0.002))
                 for i in range(120) for task in ("record_heavy", "record", "record_light")]
        keys = [t.args[1] for t in held + mixed]
        assert [t.get(timeout=60) for t in held + mixed] == keys
        wait_until(lambda: idle(cluster), what="idle again")
        settled = settled_credits(cluster, first)
    finally:
        watch.stop()
    assert settled == first, f"at idle the credits are {settled}, not {first}"
    assert watch.samples > 0
    assert not watch.over, f"credits above free capacity: {watch.over[:5]}"


def settled_credits(cluster: Cluster, expected: dict, timeout: float = 5.0) -> dict:
    """The credits once they equal ``expected``, or the last figures after ``timeout``
    (the agents report their credits with their results: give them a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        credits = cluster.credits()
        if credits == expected or time.monotonic() > deadline:
            return credits
        time.sleep(0.05)


def _answered_in_full(cluster: Cluster, count: int, timeout: float) -> None:
    session = cluster.raw_session()
    ids = [f"f{i}" for i in range(count)]
    session.submit(call(i, "cluster_tasks:noop", weight="light") for i in ids)
    session.wait_answered(ids, timeout=timeout)
    accepted = [i for i in ids if session.accepted[i]]
    session.wait_results(accepted, timeout=timeout)
    outcomes = session.outcomes()
    assert {r.state for i in accepted for r in outcomes[i]} <= {pb.COMPLETED}, \
        "accepted ones complete"
    total, orphans, sample = cluster.redis.orphans()
    assert total >= len(accepted), "the accepted tokens are in Redis"
    assert orphans == 0, f"{orphans} tokens in no queue and no inflight set, e.g. {sample}"


def test_a_frame_of_9000_calls_is_answered_in_full_and_orphans_nothing(make_cluster):
    _answered_in_full(make_cluster(), 9_000, timeout=30)


@pytest.mark.slow
def test_a_frame_of_100000_calls_is_answered_in_full_and_orphans_nothing(make_cluster):
    _answered_in_full(make_cluster(), 100_000, timeout=90)


def test_a_drain_is_draining_while_work_runs_and_drained_after_a_gateway_crash(
        make_cluster, effects, gates):
    cluster = make_cluster()
    gate = gates("drain")
    client = cluster.client()
    running = [client.submit_by_name("cluster_tasks:gated", (str(effects), f"run{i}", str(gate)))
               for i in range(4)]
    wait_until(lambda: all(effects.count(f"run{i}") for i in range(4)), what="4 running")
    client.drain(reason="pinned")
    for _ in range(5):  # the gate holds: every look says DRAINING
        reply = cluster.status_reply()
        assert (reply.state, reply.reason) == ("DRAINING", "pinned")
        busy = {n.name for n in reply.nodes if n.inflight}
        assert busy and {n.state for n in reply.nodes if n.name in busy} == {"DRAINING"}
    held = [client.submit_by_name("cluster_tasks:record", (str(effects), f"held{i}"))
            for i in range(20)]
    reply = wait_until(lambda: (r := cluster.status_reply()).pending["medium"] == 20 and r,
                       what="20 calls held")
    assert reply.state == "DRAINING"
    reply = wait_until(lambda: (r := cluster.status_reply()).executing == 4 and r, timeout=10,
                       what="Status.executing counting the 4 running tokens")
    assert sum(n.executing for n in reply.nodes) == 4
    assert reply.held == 20, "Status.held counts the calls the drain holds"
    assert not any(t.done() for t in held) and not any(effects.count(f"held{i}")
                                                       for i in range(20))
    gate.open()
    reply = wait_until(lambda: (r := cluster.status_reply()).state == "DRAINED" and r,
                       what="DRAINED once the gated work finished")
    assert (reply.executing, reply.inflight, reply.counts["failed"]) == (0, 0, 0)
    assert {n.state for n in reply.nodes} == {"DRAINED"} and reply.reason == "pinned"
    assert [t.get(timeout=10) for t in running] == [f"run{i}" for i in range(4)]

    cluster.restart_gateway()  # SIGKILL: the drain lives in Redis
    cluster.wait_nodes(lambda n: n.get("a1") == "DRAINED" and n.get("a2") == "DRAINED",
                       "agents back, drained")
    reply = cluster.status_reply()
    assert (reply.state, reply.reason, reply.pending["medium"]) == ("DRAINED", "pinned", 20)
    assert reply.held == 20
    assert all(t.state is TokenState.WAITING for t in held)
    client.resume()
    assert [t.get(timeout=20) for t in held] == [f"held{i}" for i in range(20)]
    assert [effects.count(f"held{i}") for i in range(20)] == [1] * 20
    assert cluster.status_reply().state == "RUNNING"
