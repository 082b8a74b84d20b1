"""Every report is fenced: a token reaches its client once, with the outcome Redis stored.

Issue 8, defects 2, 5 and 6, with real processes: a lost agent's late results, an id repeated
inside one frame, and a task's own idempotency against a client that did not send the flag.
Runs are counted by their side effect (one line per run), never by what a client was told.
The agents have one worker per core, so each has one medium mailbox, run in order: a token
that finishes on an agent proves everything dispatched to that agent's core 2 before it ran.
"""

from __future__ import annotations

import signal

import cluster_tasks  # noqa: F401 - registers the tasks
from _faults2 import snapshot_of
from conftest import Cluster, wait_until
from faultkit import Gate, RawSession, SideEffects, call
from tokengate.shared.rpc import tokengate_pb2 as pb

ONE_WORKER = ("--workers-per-core", "1", "--mailbox-capacity", "20")


def flush(cluster: Cluster, session: RawSession, effects: SideEffects,
          nodes: list[str]) -> None:
    """Run a medium sentinel on each of ``nodes`` in turn (the others drained meanwhile): with
    one medium mailbox per agent, all that an agent was given before has run (or been
    dropped) once its sentinel is back."""
    admin = cluster.client(connect=False)
    for node in nodes:
        others = [name for name in cluster.agents if name != node]
        for other in others:
            admin.drain(node=other, reason="flush")
        token_id = f"sentinel-{node}"
        session.submit([call(token_id, "cluster_tasks:record", str(effects), token_id)])
        session.wait_results([token_id], timeout=20)
        assert session.outcomes()[token_id][-1].node == node
        for other in others:
            admin.resume(node=other)


def hold_on_a1(cluster: Cluster, session: RawSession, effects: SideEffects,
               gate: Gate) -> tuple[list[str], list[str], list[str]]:
    """a1 runs two calls that must never run twice (core 1 heavy, core 2 medium) and holds
    six idempotent and six never-twice calls queued behind them in its one medium mailbox."""
    running = ["run-medium", "run-heavy"]
    session.submit([
        call("run-medium", "cluster_tasks:gated_once", str(effects), "run-medium", str(gate),
             not_idempotent=True),
        call("run-heavy", "cluster_tasks:gated_heavy_once", str(effects), "run-heavy", str(gate),
             weight="heavy", not_idempotent=True)])
    wait_until(lambda: all(effects.count(key) for key in running), what="a1 running both")
    again = [f"again-{i}" for i in range(6)]
    once = [f"once-{i}" for i in range(6)]
    session.submit([call(key, "cluster_tasks:record", str(effects), key) for key in again]
                   + [call(key, "cluster_tasks:record_once", str(effects), key,
                           not_idempotent=True) for key in once])
    session.wait_answered(running + again + once)
    wait_until(lambda: cluster.redis.inflight("a1") >= set(running + again + once),
               what="a1 holding all 14")
    assert not any(effects.count(key) for key in again + once), "queued, not started"
    return running, again, once


def test_a_lost_agent_that_wakes_up_changes_no_outcome_and_runs_nothing_twice(
        make_cluster, effects, gates):
    cluster = make_cluster(agents=("a1",), agent_options=ONE_WORKER)
    gate = gates("wake")
    session = cluster.raw_session()
    running, again, once = hold_on_a1(cluster, session, effects, gate)
    queued = again + once
    tokens = running + queued
    cluster.start_agent("a2")

    cluster.freeze("a1")  # past the heartbeat timeout: the gateway declares it lost
    cluster.wait_nodes(lambda nodes: "a1" not in nodes, "a1 declared lost", timeout=30)
    session.wait_results(tokens, timeout=30)
    gate.open()
    cluster.thaw("a1")  # it wakes holding finished work and a mailbox of taken tokens
    cluster.wait_nodes(lambda nodes: nodes.get("a1") == "UP", "a1 back", timeout=30)
    flush(cluster, session, effects, ["a1", "a2"])

    outcomes = session.outcomes()
    told = {key: [(pb.FinalState.Name(r.state), r.error_type) for r in outcomes[key]]
            for key in tokens}
    many = {k: v for k, v in told.items() if len(v) != 1}
    assert not many, f"tokens the client was told more (or less) than once: {many}"
    stored = cluster.redis.states(tokens)
    differ = {k: (session.state(k), stored[k]) for k in tokens if session.state(k) != stored[k]}
    assert not differ, f"told one outcome, Redis stored another (told, stored): {differ}"
    for key in running:
        assert told[key] == [("FAILED", "AgentLost")], key
        assert effects.count(key) == 1, key
    twice = {key: effects.pids(key) for key in queued if effects.count(key) > 1}
    assert not twice, f"tokens taken from a1 ran again when it woke up (pids): {twice}"
    a1 = cluster.agents["a1"].pid
    taken = [key for key in queued if a1 in effects.pids(key)]
    assert not taken, f"a1 ran tokens that were taken from it: {taken}"
    for key in queued:
        if session.state(key) == "completed":
            assert effects.count(key) == 1, key


def test_an_id_repeated_in_one_frame_runs_once_and_every_copy_is_answered(
        make_cluster, effects):
    cluster = make_cluster(agent_options=ONE_WORKER)
    session = cluster.raw_session()
    dup = call("dup", "cluster_tasks:record", str(effects), "dup")
    others = [call(f"other-{i}", "cluster_tasks:record", str(effects), f"other-{i}")
              for i in range(6)]
    session.submit([dup, *others[:2], dup, *others[2:4], dup, *others[4:]])
    ids = ["dup"] + [item.token_id for item in others]
    session.wait_results(ids, timeout=20)
    session.wait(lambda: session.accepted["dup"] + len(session.rejected.get("dup", ())) >= 3,
                 timeout=10, what="an answer for each of the 3 copies")
    flush(cluster, session, effects, ["a1", "a2"])
    assert effects.count("dup") == 1, f"ran on {effects.pids('dup')}"
    assert [effects.count(item.token_id) for item in others] == [1] * len(others)
    outcomes = session.outcomes()
    assert [pb.FinalState.Name(r.state) for r in outcomes["dup"]] == ["COMPLETED"]
    assert session.accepted["dup"] + len(session.rejected.get("dup", ())) == 3


def test_whether_a_call_may_run_again_follows_the_task_not_the_client(make_cluster, effects,
                                                                    gates):
    cluster = make_cluster(agents=("a1",), agent_options=ONE_WORKER)
    gate = gates("hold")
    session = cluster.raw_session()
    # What a client in another language sends: the name and arguments, no idempotency flag;
    # the task itself is declared idempotent: false.
    session.submit([call("once", "cluster_tasks:gated_once", str(effects), "once", str(gate))])
    session.wait_answered(["once"])
    wait_until(lambda: effects.count("once") == 1, what="running on a1")
    cluster.start_agent("a2")
    a1 = cluster.agents["a1"].pid
    cluster.kill(cluster.agents["a1"], signal.SIGKILL)
    gate.open()  # were it run again on a2, it would finish there rather than hang
    session.wait_results(["once"], timeout=30)
    assert effects.pids("once") == [a1], "a task declared idempotent: false ran twice"
    told = [(pb.FinalState.Name(r.state), r.error_type) for r in session.outcomes()["once"]]
    assert told == [("FAILED", "AgentLost")]
    assert cluster.redis.state("once") == "failed"


def test_a_token_waiting_for_a_storage_slot_when_taken_from_its_agent_never_runs_there(
        make_cluster, effects, gates):
    """A worker claimed ``victim`` (its start was reported), then waited for one of the SLOW
    tier's 10 writer slots. a1 is frozen past the heartbeat timeout, the gateway gives the
    victim to a2 (where it runs), and a1's welcome back revokes it. When a1's slots free up,
    its worker must not call the victim: the gate is asked again after the slot wait (it used
    to be asked only before the claim, so the victim ran twice)."""
    cluster = make_cluster(agents=("a1",), agent_options=("--workers-per-core", "12"))
    gate = gates("slow")
    session = cluster.raw_session()
    holders = [f"hold-{i}" for i in range(10)]
    session.submit([call(key, "cluster_tasks:slow_gated_once", str(effects), key, str(gate),
                         not_idempotent=True) for key in holders])
    wait_until(lambda: all(effects.count(key) for key in holders), what="10 SLOW writers")
    session.submit([call("victim", "cluster_tasks:slow_record", str(effects), "victim")])
    wait_until(lambda: cluster.redis.state("victim") == "executing",
               what="the victim claimed on a1, its start reported")
    assert effects.count("victim") == 0, "it waits for a SLOW slot"
    cluster.start_agent("a2")

    cluster.freeze("a1")
    cluster.wait_nodes(lambda nodes: "a1" not in nodes, "a1 declared lost", timeout=30)
    session.wait_results(["victim"], timeout=30)
    assert session.outcomes()["victim"][-1].node == "a2"
    a2 = cluster.agents["a2"].pid
    assert effects.pids("victim") == [a2]
    cluster.thaw("a1")  # its welcome back revokes all eleven
    cluster.wait_nodes(lambda nodes: nodes.get("a1") == "UP", "a1 back", timeout=30)
    gate.open()  # the holders end; a slot frees; the victim's worker on a1 goes on

    def a1_finished() -> int:
        node = next((n for n in cluster.status_reply().nodes if n.name == "a1"), None)
        counts = snapshot_of(node).get("tokens", {})
        return counts.get("completed", 0) + counts.get("failed", 0)

    wait_until(lambda: a1_finished() >= 11, what="a1's worker past the victim", timeout=30)
    assert effects.pids("victim") == [a2], "the victim ran on a1 after it was taken from it"
