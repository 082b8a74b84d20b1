"""Submit once (idempotency keys) and results by id, with real client processes: a client
SIGKILLed right after its call was stored, a new one resubmitting by key or fetching by id,
and ``tokengate result`` on the command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid

import pytest
from conftest import HERE, ROOT, Cluster, wait_until
from tokengate.shared.call_options import key_token_id
from tokengate.shared.errors import BadRequest, IdempotencyConflict, UnknownToken
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.rpc import tokengate_pb2 as pb

CLIENT = str(HERE / "keys_client.py")
FINAL = {s.value for s in (TokenState.COMPLETED, TokenState.FAILED, TokenState.KILLED)}


def client_env(cluster: Cluster, client_id: str) -> dict[str, str]:
    return dict(cluster.env, TOKENGATE_GATEWAY=cluster.address, TOKENGATE_CLIENT_ID=client_id)


def spawn(cluster: Cluster, client_id: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, CLIENT, *args], env=client_env(cluster, client_id),
                            cwd=str(ROOT), stdout=subprocess.PIPE, text=True)


def submit_and_die(cluster: Cluster, calls: list[list[object]]) -> list[str]:
    """A client process submits ``calls``; SIGKILLed once Redis holds them all (stored: the
    gateway acks a call only once it is)."""
    proc = spawn(cluster, uuid.uuid4().hex, "submit", json.dumps(calls))
    try:
        assert proc.stdout is not None
        ids = json.loads(proc.stdout.readline())
        wait_until(lambda: all(cluster.redis.states(ids).values()), 20, "calls stored")
    finally:
        cluster.kill(proc, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()
    return ids


def test_a_client_killed_after_its_submit_and_a_new_one_resubmitting_run_it_once(
        shared_cluster, effects, gates):
    gate = gates("order-42")
    args = [str(effects), "order-42", str(gate)]
    task = "cluster_tasks:gated"
    [token_id] = submit_and_die(shared_cluster, [[task, args, "order-42"]])
    assert token_id == key_token_id("order-42")
    again = spawn(shared_cluster, uuid.uuid4().hex, "get", task, json.dumps(args), "order-42")
    try:
        assert again.stdout is not None
        assert again.stdout.readline().strip() == "submitted"
        wait_until(lambda: effects.count("order-42") == 1, 20, "the first run started")
        gate.open()
        outcome = json.loads(again.stdout.readline())
    finally:
        shared_cluster.kill(again, signal.SIGKILL)
        if again.stdout is not None:
            again.stdout.close()
    assert outcome["token_id"] == token_id
    assert outcome["state"] == TokenState.COMPLETED.value and outcome["result"] == "order-42"
    assert effects.count("order-42") == 1, "one execution for the key"

    client = shared_cluster.client()
    repeat = client.submit_by_name(task, tuple(args), key="order-42")
    assert repeat.token_id == token_id and repeat.get(timeout=20) == "order-42"
    with pytest.raises(IdempotencyConflict, match="order-42"):
        client.submit_by_name(task, (str(effects), "order-43", str(gate)),
                              key="order-42").get(timeout=20)
    with pytest.raises(IdempotencyConflict):
        client.submit_by_name("cluster_tasks:add", (1, 2), key="order-42").get(timeout=20)
    assert effects.count("order-42") == 1 and effects.count("order-43") == 0
    first = client.submit_by_name("cluster_tasks:add", (), {"a": 1, "b": 2}, key="kw")
    assert first.get(timeout=20) == 3
    reordered = client.submit_by_name("cluster_tasks:add", (), {"b": 2, "a": 1}, key="kw")
    assert reordered.token_id == first.token_id and reordered.get(timeout=20) == 3, \
        "keyword order is not part of the call"
    assert client.result(first.token_id, timeout=20) == 3, "by id, from the same session"


def test_the_gateway_refuses_a_keyed_call_whose_id_its_key_does_not_give(shared_cluster):
    session = shared_cluster.raw_session()
    session.submit([pb.TaskItem(token_id="made-up", task="cluster_tasks:add", key="k-1",
                                payload=b"\x92\x92\x01\x02\x80"),
                    pb.TaskItem(token_id=key_token_id("x"), task="cluster_tasks:add",
                                key="x" * 256, payload=b"\x92\x92\x01\x02\x80")])
    session.wait_answered(["made-up", key_token_id("x")], 20)
    rejected = {token_id: answers[0] for token_id, answers in session.rejected.items()}
    assert rejected["made-up"].error_type == BadRequest.__name__
    assert key_token_id("k-1") in rejected["made-up"].error_message
    assert "1 to 255 characters" in rejected[key_token_id("x")].error_message


def cli(cluster: Cluster, client_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokengate.cli", "result", "--gateway",
                           cluster.address, *args], env=client_env(cluster, client_id),
                          cwd=str(ROOT), capture_output=True, text=True, timeout=60)


def test_a_restarted_client_and_the_cli_fetch_outcomes_by_id(shared_cluster, effects, gates):
    gate = gates("by-id")
    held = [str(effects), "by-id", str(gate)]
    calls = [["cluster_tasks:gated", held, None], ["cluster_tasks:gated_boom", held, None]]
    client_id = uuid.uuid4().hex
    proc = spawn(shared_cluster, client_id, "submit", json.dumps(calls))
    assert proc.stdout is not None
    ok_id, failed_id = json.loads(proc.stdout.readline())
    wait_until(lambda: all(shared_cluster.redis.states([ok_id, failed_id]).values()), 20,
               "calls stored")
    shared_cluster.kill(proc, signal.SIGKILL)
    proc.stdout.close()
    gate.open()
    wait_until(lambda: set(shared_cluster.redis.states([ok_id, failed_id]).values()) <= FINAL,
               20, "both finished")

    fetched = spawn(shared_cluster, client_id, "fetch", ok_id, failed_id, "no-such-token")
    out, _ = fetched.communicate(timeout=60)
    ok, failed, unknown = (json.loads(line) for line in out.splitlines())
    assert (ok["state"], ok["result"]) == (TokenState.COMPLETED.value, "by-id")
    assert (failed["state"], failed["error_type"]) == (TokenState.FAILED.value, "ValueError")
    assert "failed on purpose" in failed["error_message"] and failed["traceback"]
    assert unknown["error_type"] == UnknownToken.__name__

    shown = cli(shared_cluster, client_id, ok_id)
    assert (shown.returncode, json.loads(shown.stdout)) == (0, "by-id"), shown.stderr
    shown = cli(shared_cluster, client_id, failed_id, "--json")
    assert shown.returncode == 1 and json.loads(shown.stdout)["error_type"] == "ValueError"
    shown = cli(shared_cluster, uuid.uuid4().hex, ok_id)
    assert shown.returncode == 2 and "PermissionDenied" in shown.stderr
    shown = cli(shared_cluster, uuid.uuid4().hex, ok_id, "--any", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["result"] == "by-id"
    shown = cli(shared_cluster, client_id, "no-such-token")
    assert shown.returncode == 2 and "UnknownToken" in shown.stderr
    assert effects.count("by-id") == 2, "each call ran once; fetching ran nothing"
