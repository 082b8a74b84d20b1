"""The operator's commands as a user runs them, and ``tokengate up`` end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import cluster_tasks  # noqa: F401 - registers the tasks
import psutil
import pytest
from conftest import HERE, ROOT, TOKEN, Cluster, wait_until
from faultkit import DurableRedis
from tokengate.shared.client import ClusterClient
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import RedisUnavailable
from tokengate.shared.redis_server import child_env, free_port

from tokengate.cli_up import role_command


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokengate.cli", *args[:1], "--gateway", cluster.address,
         *args[1:]], env=cluster.env, cwd=str(ROOT), capture_output=True, text=True, timeout=60)


def test_status_drain_resume_and_kill_from_the_command_line(shared_cluster):
    out = cli(shared_cluster, "status", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["state"] == "RUNNING" and {n["name"] for n in info["nodes"]} == {"a1", "a2"}
    assert info["nodes"][0]["topology"]["workers"] == 4
    wait_until(lambda: all(n["snapshot"] for n in shared_cluster.status()["nodes"]),
               what="agent status snapshots")
    node = shared_cluster.status()["nodes"][0]
    assert {"tokens", "cores", "guard_house", "process"} <= set(node["snapshot"])
    text = cli(shared_cluster, "status").stdout
    assert "cluster RUNNING" in text and re.search(r"^a1\s+UP", text, re.M)

    out = cli(shared_cluster, "drain", "--node", "a2", "--reason", "patching")
    assert out.returncode == 0 and "a2 draining: patching" in out.stdout
    assert re.search(r"^a2\s+DRAINED.*patching", cli(shared_cluster, "status").stdout, re.M)
    assert cli(shared_cluster, "resume", "--node", "a2").returncode == 0

    client = shared_cluster.client()
    client.drain(reason="cli kill")
    token = client.submit_by_name("cluster_tasks:add", (1, 2))
    wait_until(lambda: shared_cluster.status()["pending"]["light"] >= 1, what="held")
    out = cli(shared_cluster, "kill", token.token_id)
    assert out.returncode == 0 and "killed" in out.stdout
    client.resume()
    out = cli(shared_cluster, "kill", "no-such-token")
    assert out.returncode == 2 and "UnknownToken" in out.stderr


def test_cli_with_a_wrong_token_or_no_gateway_says_so(shared_cluster, tmp_path):
    bad = tmp_path / "token"
    bad.write_text("wrong")
    out = cli(shared_cluster, "status", "--token-file", str(bad))
    assert out.returncode == 2 and "Unauthenticated" in out.stderr
    out = subprocess.run([sys.executable, "-m", "tokengate.cli", "status", "--gateway",
                          f"127.0.0.1:{free_port()}", "--timeout", "1"], env=shared_cluster.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "GatewayUnavailable" in out.stderr


def test_gateway_refuses_an_open_bind_with_a_weak_token(tmp_path):
    env = dict(os.environ, TOKENGATE_TOKEN="weak", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "tokengate.cli", "gateway", "--listen",
                          "0.0.0.0:0"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "loopback" in out.stderr


def test_redis_crash_is_answered_clearly_and_nothing_accepted_is_lost(tmp_path, effects):
    """Redis as ``tokengate up`` runs it (on its AOF), SIGKILLed while accepted calls run and
    wait: a call made while it is down fails with RedisUnavailable once the client's
    submit_timeout has passed, the gateway keeps running, and once Redis is back every call
    accepted before the crash completes, each run once."""
    server = DurableRedis(tmp_path / "redis").start()
    cluster = Cluster(server.url, tmp_path, agent_options=("--workers-per-core", "2"))
    try:
        cluster.start_gateway()
        cluster.start_agent("a1")
        client = cluster.client(submit_timeout=2.0)
        folder = str(effects.folder)
        accepted = [client.submit_by_name("cluster_tasks:record", (folder, f"k{i}", 0.2))
                    for i in range(30)]  # 4 workers: most of them wait behind the first
        wait_until(lambda: effects.counts(), what="the first calls running")
        server.crash()
        refused = client.submit_by_name("cluster_tasks:add", (1, 1))
        with pytest.raises(RedisUnavailable, match="offered again"):
            refused.get(timeout=30)
        assert cluster.gateway.poll() is None, "the gateway keeps running"
        server.restart()
        assert [t.get(timeout=60) for t in accepted] == [f"k{i}" for i in range(30)]
        assert effects.counts() == {f"k{i}": 1 for i in range(30)}
        assert client.submit_by_name("cluster_tasks:add", (2, 3)).get(timeout=30) == 5
    finally:
        cluster.stop()
        server.stop()


def test_tokengate_up_starts_a_working_cluster_and_stops_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokengate.cli", "up", "--port", "0", "--agents", "2",
         "--include", "cluster_tasks", "--path", str(HERE), "--state-dir", str(tmp_path),
         "--no-dashboard"], env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]  # the gateway's line, then up's
        banner = next((line for line in lines if line.startswith("TokenGate is up")), lines[-1])
        assert banner.startswith("TokenGate is up: gateway 127.0.0.1:"), banner
        address = re.search(r"gateway (\S+),", banner).group(1)
        token = (tmp_path / "token").read_text().strip()
        assert oct((tmp_path / "token").stat().st_mode & 0o777) == "0o600"
        client = ClusterClient(ClientConfig(address=address, token=token)).connect()
        wait_until(lambda: len(client.status().nodes) == 2, what="2 agents")
        assert client.submit_by_name("cluster_tasks:add", (20, 22)).get(timeout=20) == 42
        client.close()
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4  # redis, gateway, 2 agents
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, "Ctrl-C stops every child"
    finally:
        if proc.poll() is None:
            proc.terminate()  # up stops its children; they would also die with it
            proc.wait(30)
        proc.stdout.close()


def test_token_is_shared_by_every_role(shared_cluster):
    """The agents joined with the token this client presents; an agent with another token is
    refused and never joins."""
    client = ClusterClient(ClientConfig(address=shared_cluster.address, token=TOKEN))
    try:
        assert {n.name for n in client.status().nodes} == {"a1", "a2"}
    finally:
        client.close()
    env = child_env(dict(shared_cluster.env, TOKENGATE_TOKEN="not-the-cluster-token-0000"))
    log = shared_cluster.tmp / "intruder.log"
    with open(log, "wb") as out:
        intruder = subprocess.Popen(role_command(
            "agent", "--gateway", shared_cluster.address, "--name", "intruder", "--include",
            "cluster_tasks", "--cores", "2"), env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=str(ROOT))
    try:
        wait_until(lambda: re.search(r"refused|unauthenticated", log.read_text(), re.I),
                   timeout=30, what="the intruder saying its token was refused")
        assert "intruder" not in {n["name"] for n in shared_cluster.status()["nodes"]}
    finally:
        shared_cluster.kill(intruder, signal.SIGKILL)


def test_gateway_without_redis_exits_with_a_clear_error():
    env = dict(os.environ, TOKENGATE_TOKEN="some-token", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "tokengate.cli", "gateway", "--listen",
                          "127.0.0.1:0", "--redis", f"redis://127.0.0.1:{free_port()}/0"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "RedisUnavailable" in out.stderr


def test_tokengate_up_with_two_gateways(tmp_path):
    """``tokengate up --gateways 2``: two gateways on shards 0 and 1, the agents dealt to
    them, a client given both addresses gets its calls run, and ``tokengate status`` with
    both addresses shows each gateway with its own agent."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokengate.cli", "up", "--port", "0", "--agents", "2",
         "--gateways", "2", "--include", "cluster_tasks", "--path", str(HERE), "--state-dir",
         str(tmp_path), "--no-dashboard"], env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
        text=True)
    try:
        banner = ""
        while not banner.startswith("TokenGate is up"):
            banner = proc.stdout.readline()
            assert banner, "up ended before its banner"
        both = re.search(r"gateway (\S+),", banner).group(1).split(",")
        assert len(both) == 2, banner
        token = (tmp_path / "token").read_text().strip()
        for address in both:
            one = ClusterClient(ClientConfig(address=address, token=token))
            wait_until(lambda one=one: len(one.status().nodes) == 1, what="an agent each")
            one.close()
        client = ClusterClient(ClientConfig(address=",".join(both), token=token)).connect()
        assert [client.submit_by_name("cluster_tasks:add", (i, 1)).get(timeout=20)
                for i in range(5)] == [1, 2, 3, 4, 5]
        client.close()
        out = subprocess.run([sys.executable, "-m", "tokengate.cli", "status", "--gateway",
                              ",".join(both), "--token-file", str(tmp_path / "token")],
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.count("== gateway") == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        proc.stdout.close()
