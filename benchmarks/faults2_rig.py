"""A throwaway cluster for the fault reproductions: redis-server, gateways and agents as
real processes on loopback, each logging to a file of its own.

The agents load ``faults2_tasks`` (tests/integration/cluster), the tasks whose runs leave one
line each in a file, so a reproduction counts executions on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
TASKS_DIR = ROOT / "tests" / "integration" / "cluster"
sys.path[:0] = [str(ROOT), str(TASKS_DIR)]

from _faults2 import TOKEN  # noqa: E402 - the tests' token, so their wire helpers fit
from tokengate.gateway.ledger.schema import DEFAULT_SHARD, shard_prefix  # noqa: E402
from tokengate.shared.client import ClusterClient  # noqa: E402
from tokengate.shared.client_config import ClientConfig  # noqa: E402
from tokengate.shared.redis_server import RedisServer, child_env, free_port  # noqa: E402
from tokengate.shared.status import describe  # noqa: E402

from tokengate.cli_up import role_command  # noqa: E402

TASKS = "faults2_tasks"


class Rig:
    """One Redis, any number of gateways (one address) and agents; ``close`` stops them."""

    def __init__(self, *, heartbeat_timeout: float = 3.0, redis_url: str | None = None) -> None:
        self.redis = None if redis_url else RedisServer().start()
        self.redis_url = redis_url or self.redis.url  # type: ignore[union-attr]
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.heartbeat_timeout = heartbeat_timeout
        self.logdir = Path(tempfile.mkdtemp(prefix="tokengate-faults2-"))
        self.key_prefix = f"tg-f2-{uuid.uuid4().hex[:8]}:"
        self.prefix = shard_prefix(self.key_prefix, DEFAULT_SHARD)  # the gateway's keys
        self.env = dict(os.environ, TOKENGATE_TOKEN=TOKEN, TOKENGATE_KEY_PREFIX=self.key_prefix,
                        PYTHONPATH=os.pathsep.join([str(ROOT), str(TASKS_DIR)]),
                        TOKENGATE_HEARTBEAT="0.2", PYTHONUNBUFFERED="1")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.clients: list[ClusterClient] = []
        self._admin: ClusterClient | None = None

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
              ) -> subprocess.Popen[bytes]:
        with open(self.logdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(cmd, env=child_env(env or self.env), stdout=log,
                                    stderr=subprocess.STDOUT, cwd=str(ROOT))
        self.procs[name] = proc
        return proc

    def gateway(self, name: str = "gateway", *options: str, wait: bool = True,
                ) -> subprocess.Popen[bytes]:
        proc = self.spawn(name, role_command(
            "gateway", "--listen", self.address, "--redis", self.redis_url,
            "--heartbeat-timeout", str(self.heartbeat_timeout), *options, verbose=True))
        if wait:
            self.client(connect=False).ping(timeout=30)
        return proc

    def agent(self, name: str, *options: str, wait: bool = True) -> subprocess.Popen[bytes]:
        proc = self.spawn(name, role_command(
            "agent", "--gateway", self.address, "--name", name, "--include", "faults2_tasks",
            *options, verbose=True))
        if wait:
            self.wait(lambda info: _node_state(info, name) not in ("", "DISCONNECTED"),
                      f"agent {name} registered")
        return proc

    def client(self, *, connect: bool = True, **options: Any) -> ClusterClient:
        options.setdefault("token", TOKEN)
        client = ClusterClient(ClientConfig(address=self.address, **options))
        self.clients.append(client)
        if connect:
            client.connect()
        return client

    def status(self) -> dict[str, Any]:
        if self._admin is None:
            self._admin = self.client(connect=False)
        return describe(self._admin.status())

    def wait(self, predicate: Any, what: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            info = self.status()
            if predicate(info):
                return info
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}; logs in {self.logdir}")
            time.sleep(0.05)

    def rss(self, name: str = "gateway") -> int:
        return psutil.Process(self.procs[name].pid).memory_info().rss

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def close(self) -> None:
        for client in self.clients:
            try:
                client.close()
            except Exception:
                pass
        for name in list(self.procs):
            self.stop(name)
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _node_state(info: dict[str, Any], name: str) -> str:
    return next((n["state"] for n in info["nodes"] if n["name"] == name), "")


def node(info: dict[str, Any], name: str) -> dict[str, Any]:
    return next((n for n in info["nodes"] if n["name"] == name), {})


def count_lines(path: Path) -> dict[str, int]:
    """Runs per tag recorded in a side-effect file (missing file: none)."""
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().split():
            counts[line] = counts.get(line, 0) + 1
    return counts


def verdict(bad: bool) -> str:
    return "REPRODUCED" if bad else "ok"


class Gate:
    """A gate file and a side-effect log in the rig's directory."""

    def __init__(self, rig: Rig, name: str) -> None:
        self.gate, self.log = rig.logdir / f"{name}.gate", rig.logdir / f"{name}.runs"

    def args(self, tag: object) -> tuple[str, str, object]:
        return (str(self.gate), str(self.log), tag)

    def open(self) -> None:
        self.gate.touch()

    def runs(self) -> Counter[str]:
        return Counter(self.log.read_text().split()) if self.log.exists() else Counter()


def wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def outcomes(tokens: list, timeout: float) -> Counter[str]:
    """Each token's outcome by the deadline: its error type, "completed", or "lost"."""
    deadline = time.monotonic() + timeout
    out: Counter[str] = Counter()
    for token in tokens:
        token.wait(max(0.0, deadline - time.monotonic()))
        if not token.done():
            out["lost"] += 1
        else:
            out[token.error_type or "completed"] += 1
    return out
