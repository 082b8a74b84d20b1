"""Cooperative cancel across the cluster: the client's ``token.cancel()``, the CLI's
``tokengate kill`` and the Kill RPC reach a running token on its agent through the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cancel_cluster_tasks as tasks
import pytest
from conftest import ROOT, wait_until

from tokengate import TokenCancelled, TokenKilled

AGENT_OPTIONS = ("--include", "cancel_cluster_tasks", "--workers-per-core", "2")


def _started(folder: Path, key: str) -> int:
    path = folder / f"{key}.started"
    wait_until(lambda: path.exists() and path.read_text(), 60, f"{key} started")
    return int(path.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cancel_reaches_running_tokens_through_the_gateway(make_cluster, tmp_path):
    cluster = make_cluster(("a1",), agent_options=AGENT_OPTIONS)
    client = cluster.client(install=True)
    folder = tmp_path / "marks"
    folder.mkdir()

    # From the client: token.cancel() goes to the gateway's Kill, which asks the agent.
    token = tasks.loop_until_cancelled(str(folder), "client")
    _started(folder, "client")
    assert token.cancel() is True
    with pytest.raises(TokenCancelled, match="cancelled while running"):
        token.get(timeout=20)
    assert (folder / "client.stopped").exists(), "the task saw the cancel and left its loop"
    detail = client.token_detail(token.token_id)
    assert detail.state == "killed" and detail.error_type == "TokenCancelled"
    assert token.cancel() is False, "final: nothing to cancel"
    again = client.kill(token.token_id)
    assert (again.ok, again.outcome) == (False, "finished")

    # Cancelled right after it was submitted (maybe before the gateway stored it): it never
    # returns a result, whichever way it ends.
    early = tasks.loop_until_cancelled(str(folder), "early")
    assert early.cancel() is True
    with pytest.raises(TokenKilled):
        early.get(timeout=20)

    # From the command line: tokengate kill TOKEN says the cancel was requested.
    token = tasks.loop_until_cancelled(str(folder), "cli")
    _started(folder, "cli")
    out = subprocess.run(
        [sys.executable, "-m", "tokengate.cli", "kill", "--gateway", cluster.address,
         token.token_id], env=cluster.env, cwd=str(ROOT), capture_output=True, text=True,
        timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"{token.token_id}: cancel_requested:" in out.stdout
    with pytest.raises(TokenCancelled):
        token.get(timeout=20)
    assert (folder / "cli.stopped").exists()

    # A process-mode call that never looks, through the Kill RPC: its process is killed after
    # the grace, and the agent's pool runs the next process-mode call in a fresh process.
    token = tasks.spin_in_process(str(folder), "proc")
    pid = _started(folder, "proc")
    reply = cluster.client().kill(token.token_id, actor="test")
    assert (reply.ok, reply.outcome) == (True, "cancel_requested"), reply.message
    with pytest.raises(TokenCancelled):
        token.get(timeout=20)
    wait_until(lambda: not _alive(pid), 10, "the cancelled call's process killed")
    fresh = tasks.process_pid().get(timeout=60)
    assert fresh != pid

    # A queued token (the only worker slots busy): killed, never run, TokenKilled.
    busy = [tasks.loop_until_cancelled(str(folder), f"busy{i}") for i in range(2)]
    for i in range(2):
        _started(folder, f"busy{i}")
    queued = tasks.loop_until_cancelled(str(folder), "queued")
    reply = client.kill(queued.token_id)
    assert reply.ok and reply.outcome in ("killed", "forwarded"), reply.message
    with pytest.raises(TokenKilled) as caught:
        queued.get(timeout=20)
    assert not isinstance(caught.value, TokenCancelled)
    for each in busy:
        assert each.cancel() is True
    for each in busy:
        with pytest.raises(TokenCancelled):
            each.get(timeout=20)
    assert not (folder / "queued.started").exists(), "the killed token never ran"
    counts = cluster.status()["counts"]
    assert counts["killed"] >= 6 and counts.get("completed", 0) == 1
