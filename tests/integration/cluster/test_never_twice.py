"""Nothing acknowledged is lost and nothing marked ``idempotent: false`` runs twice, through
gateway crashes (SIGKILL, start again on the same port) and a Redis crash on its AOF.

Issue 8, defect 1 and the gateway-crash durability test. Runs are counted by their side effect
(cluster_tasks.record* append one line per run), outcomes by what the client was pushed.
The gateway here gives agents 10 s before declaring them lost, so a restart alone never
loses an agent: every token must complete, except that the Redis crash may cost an agent
(then its calls that may not run again fail, visibly, with AgentLost).
"""

from __future__ import annotations

import time

import pytest
from conftest import Cluster, wait_until
from faultkit import DurableRedis, RawSession, call
from tokengate.shared.lifecycle import TokenState

PATIENT = ("--heartbeat-timeout", "10")
SMALL_AGENTS = ("--workers-per-core", "2", "--mailbox-capacity", "10")  # 20 medium slots each


def completed(cluster: Cluster) -> int:
    return cluster.status()["counts"]["completed"]


def outcome_of(token) -> str:
    return f"{token.state.value}:{token.error_type}" if token.error_type else token.state.value


@pytest.mark.slow
def test_never_twice_calls_run_at_most_once_through_gateway_and_redis_crashes(
        make_cluster, effects, tmp_path):
    server = DurableRedis(tmp_path / "redis").start()
    try:
        cluster = make_cluster(redis=server.url, agent_options=SMALL_AGENTS,
                               gateway_options=PATIENT)
        client = cluster.client(recording=True)
        n = 2000
        tokens = [client.submit_by_name("cluster_tasks:record_once", (str(effects), f"k{i}",
                                                                      0.004))
                  for i in range(n)]
        wait_until(lambda: cluster.status()["counts"]["submitted"] >= n, what="all stored")
        # Crash the gateway four times and Redis once while the tokens drain: each time the
        # agents register again with work waiting in Redis.
        for step, mark in enumerate((150, 450, 750, 1050, 1350)):
            wait_until(lambda mark=mark: completed(cluster) >= mark, timeout=60,
                       what=f"{mark} completed")
            if step == 2:
                server.crash_and_restart()
            else:
                cluster.restart_gateway()
        deadline = time.monotonic() + 90
        for token in tokens:
            token.wait(max(0.1, deadline - time.monotonic()))
        outcomes = {t.token_id: outcome_of(t) for t in tokens}
        pushed = client.outcomes()
    finally:
        server.stop()
    check_once(outcomes, pushed, effects, {t.token_id: f"k{i}" for i, t in enumerate(tokens)})


def check_once(outcomes: dict[str, str], pushed: dict[str, list[str]], effects,
               keys: dict[str, str]) -> None:
    """One outcome per token at the client; completed ones ran once, the others failed with
    AgentLost having run at most once."""
    lost = [i for i, o in outcomes.items() if o in ("waiting", "created")]
    assert not lost, f"{len(lost)} acknowledged tokens never got an outcome"
    many = {i: pushed.get(i) for i in outcomes if len(pushed.get(i, [])) != 1}
    assert not many, f"{len(many)} tokens were told more (or less) than once: " \
                     f"{dict(list(many.items())[:10])}"
    twice = effects.twice()
    assert not twice, f"{len(twice)} of {len(keys)} idempotent: false tokens ran twice " \
                      f"(pids): {dict(list(twice.items())[:10])}"
    for token_id, outcome in outcomes.items():
        runs = effects.count(keys[token_id])
        if outcome == "completed":
            assert runs == 1, (token_id, outcome, runs)
        else:
            assert outcome == "failed:AgentLost" and runs <= 1, (token_id, outcome, runs)


def _resolved(sessions: list[RawSession]) -> dict[str, list]:
    seen: dict[str, list] = {}
    for session in sessions:
        for token_id, results in session.outcomes().items():
            seen.setdefault(token_id, []).extend(results)
    return seen


def _reconnect(cluster: Cluster, sessions: list[RawSession], ids: list[str]) -> RawSession:
    """The same client id opens a new session and watches what it has no outcome for."""
    old = sessions[-1]
    old.wait_ended()
    seen = _resolved(sessions)
    session = cluster.raw_session(old.client_id)
    session.watch([i for i in ids if i not in seen])
    sessions.append(session)
    return session


def test_acknowledged_calls_survive_a_gateway_crash_without_the_clients_help(
        make_cluster, effects, gates):
    cluster = make_cluster(agent_options=("--workers-per-core", "1", "--mailbox-capacity", "5"),
                           gateway_options=PATIENT)
    gate = gates("after-crash")
    sessions = [cluster.raw_session()]
    ids = [f"d{i}" for i in range(200)]
    sessions[0].submit(call(i, "cluster_tasks:gated", str(effects), i, str(gate)) for i in ids)
    sessions[0].wait_answered(ids)
    assert sessions[0].rejected == {} and set(sessions[0].accepted) == set(ids)
    info = cluster.status()
    assert info["pending"]["medium"] > 100, "most calls wait in Redis (5 slots per agent)"
    cluster.restart_gateway()  # the session never resubmits: only Redis remembers the calls
    gate.open()
    session = _reconnect(cluster, sessions, ids)
    session.wait_results(ids, timeout=60)
    told = _resolved(sessions)
    wrong = {i: [r.state for r in told[i]] for i in ids if len(told[i]) != 1
             or told[i][0].error_type}
    assert not wrong, f"tokens not completed exactly once at the client: {wrong}"
    runs = {i: effects.count(i) for i in ids}
    assert {i: n for i, n in runs.items() if n != 1} == {}, "every call ran exactly once"
    assert set(cluster.redis.states(ids).values()) == {TokenState.COMPLETED.value}


@pytest.mark.slow
def test_acknowledged_never_twice_calls_survive_repeated_gateway_crashes(make_cluster, effects):
    cluster = make_cluster(agent_options=SMALL_AGENTS, gateway_options=PATIENT)
    sessions = [cluster.raw_session()]
    ids = [f"n{i}" for i in range(1000)]
    sessions[0].submit(call(i, "cluster_tasks:record_once", str(effects), i, 0.004,
                            not_idempotent=True) for i in ids)
    sessions[0].wait_answered(ids)
    assert sessions[0].rejected == {}
    for mark in (150, 400, 650):
        wait_until(lambda mark=mark: completed(cluster) >= mark, timeout=60,
                   what=f"{mark} completed")
        cluster.restart_gateway()
        _reconnect(cluster, sessions, ids)
    sessions[-1].wait(lambda: len(_resolved(sessions)) >= len(ids), timeout=60,
                      what="an outcome for every call")
    told = _resolved(sessions)
    wrong = {i: [(r.state, r.error_type) for r in told[i]] for i in ids
             if len(told[i]) != 1 or told[i][0].error_type}
    assert not wrong, f"tokens not completed exactly once at the client: {wrong}"
    twice = effects.twice()
    assert not twice, f"{len(twice)} idempotent: false calls ran twice (pids): {twice}"
    assert sorted(effects.counts()) == sorted(ids)
