"""The Node.js client (examples/node) against a real cluster: another language, same contract.

It submits registered tasks by name with msgpack payloads, gets results pushed, reports
refusals, offers GatewayBusy refusals again, and survives a gateway crash mid-run by watching
the calls the gateway had accepted and resubmitting the rest: every call runs exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, TOKEN, Cluster, wait_until

EXAMPLE = ROOT / "examples" / "node"
NODE = shutil.which("node")
MAX_PAYLOAD = 4096  # the gateway's limit here, far under the client's own (4 MiB)


@pytest.fixture
def node() -> str:
    """The node binary; without it (or without ``npm ci``'s packages) skip, but fail in CI."""
    missing = []
    if NODE is None:
        missing.append("`node` is not on PATH")
    if not (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir():
        missing.append("examples/node/node_modules is missing (run `npm ci --prefix "
                       "examples/node`)")
    if missing:
        reason = "the Node.js client cannot run: " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: .ci/run installs them)")
        pytest.skip(reason)
    assert NODE is not None
    return NODE


def _command(node: str, cluster: Cluster, *args: str) -> list[str]:
    return [node, str(EXAMPLE / "submit.js"), "--gateway", cluster.address, "--token", TOKEN,
            "--timeout", "40", *args]


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _outcomes(lines: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    found = [line for line in lines if line["event"] == "outcome"]
    by_index = {line["i"]: line for line in found}
    assert len(by_index) == len(found), "an outcome was printed twice"
    return by_index


def test_node_client_results_refusals_busy_and_a_gateway_crash(
        node: str, make_cluster, effects, gates, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENGATE_MAX_PAYLOAD", str(MAX_PAYLOAD))
    # One medium slot and a waiting room of 4: most of a burst is refused GatewayBusy.
    cluster = make_cluster(agents=("a1",), gateway_options=("--max-pending", "4"),
                           agent_options=("--workers-per-core", "1", "--mailbox-capacity", "1"))

    # Results, a task's own error, and two refusals, in one run.
    calls = [
        {"task": "cluster_tasks:add", "args": [2, 3]},
        {"task": "cluster_tasks:add", "args": ["to", "ken"]},
        {"task": "cluster_tasks:boom", "args": ["bad input {i}"]},
        {"task": "cluster_tasks:no_such_task", "args": []},
        {"task": "cluster_tasks:add", "args": ["x" * (MAX_PAYLOAD + 10), "y"]},
    ]
    run = subprocess.run(_command(node, cluster, "--calls", json.dumps(calls)), cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr  # some failed or were refused
    out = _outcomes(_lines(run.stdout))
    assert out[0]["value"] == 5 and out[1]["value"] == "token"
    assert out[2]["error_type"] == "ValueError" and not out[2]["refused"]
    assert out[2]["error_message"] == "bad input 2"
    assert out[3]["refused"] and out[3]["error_type"] == "UnknownTask"
    assert out[4]["refused"] and out[4]["error_type"] == "PayloadTooLarge"

    # A burst that outruns the waiting room, its runs held at a gate, and the gateway
    # SIGKILLed and restarted mid-run: some calls are accepted (and held), the rest are
    # being refused GatewayBusy and offered again, when the gateway dies.
    n = 40
    gate = gates("node-run")
    log = cluster.tmp / "node-run.jsonl"
    with open(log, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            _command(node, cluster, "--task", "cluster_tasks:gated_once", "--args",
                     json.dumps([str(effects), "k{i}", str(gate)]), "-n", str(n)),
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: effects.counts(), 20, "a run before the crash")
            cluster.restart_gateway()
            gate.open()
            assert proc.wait(45) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    lines = _lines(log.read_text())
    out = _outcomes(lines)
    assert sorted(out) == list(range(n))
    assert all(o["ok"] and o["value"] == f"k{i}" for i, o in out.items()), out
    assert effects.counts() == {f"k{i}": 1 for i in range(n)}, "each call ran exactly once"
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["completed"] == n
    stats = summary["stats"]
    assert stats["sessions"] >= 2 and stats["lost"] >= 1, stats  # it reconnected
    assert stats["busy"] > 0, stats  # GatewayBusy refusals were offered again
    # Receipts: the results read on the new session are dropped from Redis at once (those
    # read just before the crash may have lost theirs with the stream: they expire instead).
    opened = max(k for k, line in enumerate(lines) if line["event"] == "session")
    ids = [line["id"] for line in lines[opened:] if line["event"] == "outcome"]
    wait_until(lambda: ids and not any(cluster.redis.states(ids).values()), 10,
               "received results dropped")
    # The crash came with calls accepted and unfinished (watched from the new session) and
    # calls not accepted yet (offered again there with resubmit set).
    assert stats["watched"] > 0 and stats["resubmitted"] > 0, stats


def test_node_client_example_is_installed_from_its_lockfile() -> None:
    """`npm ci` needs package-lock.json to match package.json's dependencies."""
    package = json.loads((EXAMPLE / "package.json").read_text())
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
    assert set(package["dependencies"]) == {"@grpc/grpc-js", "@grpc/proto-loader",
                                            "@msgpack/msgpack"}
    assert Path(ROOT / ".gitignore").read_text().count("examples/node/node_modules") == 1
