"""The chaos soak's cluster: Redis on its append-only file, one gateway or several (each on a
shard of its own, :mod:`benchmarks.chaos_gateways`) and three agents, all real processes, each
of which the chaos thread may kill or freeze and this rig restarts.

Built on :class:`benchmarks.faults2_rig.Rig` (spawning, logs, status); it adds what a soak
needs: Redis run as ``tokengate up`` runs it (``appendonly yes``, the default ``appendfsync
everysec``) and restarted on the same port from that file, a restart for every role, the
history of every process incarnation (pid, when it started and ended, and why), and a sampler
of each process's memory.

Threads: the chaos thread (and, before and after it, the soak's main thread) is the only one
that starts or ends processes; the sampler reads pids. ``_lock`` guards ``_incarnations`` and
``_expected_down``; Popen objects are replaced whole, so a reader sees the old or the new one.
Every gateway and agent is forked by one spawner thread that lives as long as the rig: they
ask the kernel for SIGTERM when the *thread* that forked them ends (``die_with_parent``), so a
process started from the chaos thread would die with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
from tokengate.shared.errors import RedisUnavailable, TokenGateError
from tokengate.shared.redis_server import RedisServer

from benchmarks.chaos_checks import Incarnation, Sample
from benchmarks.chaos_gateways import (
    GatewaySpot,
    ShardAdmins,
    addresses_for,
    layout,
    merge_nodes,
    shard_prefixes,
)
from benchmarks.faults2_rig import TASKS, TOKEN, Rig, role_command

logger = logging.getLogger(__name__)

TASK_MODULE = "benchmarks.chaos_tasks"
AGENT_OPTIONS = ("--include", TASK_MODULE, "--cores", "2")
RESTART_TIMEOUT = 30.0   # seconds a restarted process gets to serve
KILL_WAIT = 10.0         # seconds to reap a SIGKILLed process


class _Spawner:
    """One thread that runs every fork of the rig and lives until :meth:`close`."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]] | None] = \
            queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._loop, name="chaos-spawner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            func, reply = job
            try:
                reply.put((True, func()))
            except BaseException as exc:  # handed back to the caller, who raises it
                reply.put((False, exc))

    def call(self, func: Callable[[], Any]) -> Any:
        reply: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._jobs.put((func, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(10)


@dataclass
class _Life:
    """One incarnation while it lives (the rig's own mutable record)."""

    role: str
    pid: int
    started: float
    ended: float | None = None
    cause: str = ""


class ChaosRig:
    """Redis (AOF), ``gateways`` gateways and named agents; ``close`` stops them all."""

    def __init__(self, workdir: Path, *, heartbeat_timeout: float, result_ttl: int,
                 agents: tuple[str, ...] = ("a1", "a2", "a3"), gateways: int = 1) -> None:
        self.workdir = workdir
        self.agents = agents
        self.heartbeat_timeout = heartbeat_timeout
        self._redis_dir = workdir / "redis"
        self._redis_dir.mkdir(parents=True, exist_ok=True)
        self.redis = self._new_redis(0)
        self.rig = Rig(heartbeat_timeout=heartbeat_timeout, redis_url=self.redis.url)
        self.rig.logdir = workdir  # every process log beside the soak's own files
        self.gateway_options = ("--result-ttl", str(result_ttl))
        self.spots = layout(gateways, self.rig.address)
        self._spawner = _Spawner()
        self.admins = ShardAdmins(self.spots, TOKEN)
        self._lock = threading.Lock()
        self._incarnations: list[_Life] = []
        self._expected_down: set[str] = set()
        self._born("redis", self.redis.process)

    @property
    def gateways(self) -> tuple[str, ...]:
        return tuple(spot.role for spot in self.spots)

    @property
    def roles(self) -> tuple[str, ...]:
        return ("redis", *self.gateways, *self.agents)

    def client_addresses(self, index: int) -> str:
        """The address list of the load's ``index``-th client (its own gateway first)."""
        return addresses_for(self.spots, index)

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Each shard's key prefix."""
        return shard_prefixes(self.rig.key_prefix, self.spots)

    # -- processes -----------------------------------------------------------------------

    def process(self, role: str) -> subprocess.Popen[bytes] | None:
        if role == "redis":
            return self.redis.process
        return self.rig.procs.get(role)

    def pid(self, role: str) -> int:
        proc = self.process(role)
        return proc.pid if proc is not None else 0

    def alive(self) -> dict[str, bool]:
        return {role: (p := self.process(role)) is not None and p.poll() is None
                for role in self.roles}

    def signal(self, role: str, sig: int) -> int:
        """Send ``sig`` to ``role``'s process; its pid (0: none running)."""
        proc = self.process(role)
        if proc is None or proc.poll() is not None:
            return 0
        proc.send_signal(sig)
        return proc.pid

    def start(self) -> None:
        """The gateways, then the agents; waits (bounded) until all serve."""
        for spot in self.spots:
            self._start_gateway(spot)
        for name in self.agents:
            self._start_agent(name, wait=False)
        for name in self.agents:
            self.wait_agent(name)

    def kill_and_restart(self, role: str) -> tuple[int, str]:
        """SIGKILL ``role`` and start it again (same port, same name); (old pid, a note)."""
        pid = self.kill(role)
        return pid, self.restart(role)

    def kill(self, role: str) -> int:
        """SIGKILL ``role`` and reap it; it stays down until :meth:`restart`. Its pid."""
        with self._lock:
            self._expected_down.add(role)
        proc = self.process(role)
        pid = proc.pid if proc is not None else 0
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        self._reap(role, proc, "chaos SIGKILL")
        return pid

    def homed(self, gateway: str) -> tuple[str, ...]:
        """The agents whose own gateway (the first of their ``--gateway``) is ``gateway``."""
        i, count = self.gateways.index(gateway), len(self.spots)
        return tuple(a for n, a in enumerate(self.agents) if n % count == i)

    def wait_moved(self, gateway: str, timeout: float) -> float | None:
        """While ``gateway`` is down: seconds until each of its agents (its current pid) is
        connected to another gateway in its shard (named there); None: not within
        ``timeout``."""
        spot = self.spots[self.gateways.index(gateway)]
        others = [s.address for s in self.spots if s is not spot]
        agents = self.homed(gateway)
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            there = merge_nodes(self.admins.nodes_at(address, spot.shard) for address in others)
            if all(a in there and there[a][0] != "DISCONNECTED" and there[a][1] == self.pid(a)
                   for a in agents):
                return time.monotonic() - began
            time.sleep(0.1)
        return None

    def restart(self, role: str) -> str:
        """Start ``role`` again; a note saying how long it took to serve, or why not."""
        began = time.monotonic()
        serving = True
        try:
            if role == "redis":
                self._start_redis()
            elif role in self.gateways:
                self._start_gateway(self.spots[self.gateways.index(role)])
            else:
                serving = self._start_agent(role, wait=True)
        except (RedisUnavailable, TokenGateError, OSError, RuntimeError) as exc:
            logger.error("restarting %s failed: %s", role, exc)
            return f"restart FAILED: {exc}"
        with self._lock:
            self._expected_down.discard(role)
        took = time.monotonic() - began
        if not serving:
            return f"restarted; not UP in status after {took:.1f}s"
        return f"serving again after {took:.1f}s"

    def revive(self) -> list[tuple[str, int, str]]:
        """Start whatever is not running: (role, old pid, note) for each process that died
        though nobody killed it (a crash; it is restarted too). Roles the chaos killed and
        could not restart are retried without being counted."""
        crashed = []
        for role, up in self.alive().items():
            if up:
                continue
            with self._lock:
                expected = role in self._expected_down
            proc = self.process(role)
            pid = proc.pid if proc is not None else 0
            if not expected:
                code = proc.returncode if proc is not None else None
                logger.error("%s (pid %d) died on its own (exit code %s)", role, pid, code)
                self._reap(role, proc, f"crash (exit code {code})")
            note = self.restart(role)
            if not expected:
                crashed.append((role, pid, note))
        return crashed

    def incarnations(self) -> list[Incarnation]:
        with self._lock:
            return [Incarnation(life.role, life.pid, life.started, life.ended, life.cause)
                    for life in self._incarnations]

    def log(self, name: str) -> str:
        return self.rig.log(name)

    def nodes(self) -> tuple[dict[str, tuple[str, int]], str]:
        """Each agent's (state, pid) over every shard; why a shard was unreadable."""
        return self.admins.nodes()

    def drain(self, node: str, reason: str) -> str:
        return self.admins.drain(node, reason)

    def resume(self, node: str) -> str:
        return self.admins.resume(node)

    def close(self) -> None:
        for role in self.roles:  # a frozen process cannot handle SIGTERM
            with contextlib.suppress(OSError):
                self.signal(role, signal.SIGCONT)
        self.admins.close()
        self.rig.close()
        self.redis.stop()
        self._spawner.close()

    # -- starting each role ------------------------------------------------------------

    def _new_redis(self, port: int) -> RedisServer:
        return RedisServer(port=port, directory=str(self._redis_dir), appendonly=True).start()

    def _start_redis(self) -> None:
        """Redis again on its port, from its AOF (SO_REUSEADDR frees the port at once; a
        start that lands elsewhere is stopped and tried again)."""
        port = self.redis.port
        deadline = time.monotonic() + RESTART_TIMEOUT
        while True:
            try:
                server = self._new_redis(port)
            except RedisUnavailable as exc:
                server, error = None, str(exc)
            if server is not None and server.port == port:
                self.redis = server
                self._born("redis", server.process)
                return
            if server is not None:
                error = f"came up on port {server.port}, not {port}"
                server.stop()
            if time.monotonic() > deadline:
                raise RedisUnavailable(f"redis-server did not come back on {port}: {error}")
            time.sleep(0.5)

    def _start_gateway(self, spot: GatewaySpot) -> None:
        shard = ("--shard", spot.shard) if len(self.spots) > 1 else ()
        command = role_command(
            "gateway", "--listen", spot.address, "--redis", self.rig.redis_url,
            "--heartbeat-timeout", str(self.heartbeat_timeout), *shard, *self.gateway_options,
            verbose=True)
        for _ in range(3):
            proc = self._spawner.call(lambda: self.rig.spawn(spot.role, command))
            self._born(spot.role, proc)
            if self._wait_serving(spot.role, proc):
                return
            self._reap(spot.role, proc, "did not start")
        raise RuntimeError(f"{spot.role} did not serve after 3 starts")

    def _wait_serving(self, role: str, proc: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + RESTART_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                self.admins.ping(role, timeout=2.0)
                return True
            except TokenGateError:
                continue
        if proc.poll() is None:
            proc.kill()
        return False

    def _start_agent(self, name: str, *, wait: bool) -> bool:
        command = role_command(
            "agent", "--gateway", addresses_for(self.spots, self.agents.index(name)),
            "--name", name, "--include", TASKS, *AGENT_OPTIONS, verbose=True)
        proc = self._spawner.call(lambda: self.rig.spawn(name, command))
        self._born(name, proc)
        return self.wait_agent(name) if wait else True

    def wait_agent(self, name: str, timeout: float = RESTART_TIMEOUT) -> bool:
        """True once ``status`` lists ``name`` UP with the pid we started; False after
        ``timeout`` (the agent runs; whether the gateway takes it is the system's affair)."""
        return self.wait_nodes(lambda nodes: nodes.get(name) == ("UP", self.pid(name)),
                               timeout)

    def wait_nodes(self, predicate: Callable[[dict[str, tuple[str, int]]], bool],
                   timeout: float) -> bool:
        """True once ``predicate({name: (state, pid)})`` holds in ``status``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes, _ = self.nodes()  # a shard that did not answer shows none of its agents
            if predicate(nodes):
                return True
            time.sleep(0.2)
        return False

    # -- incarnations ------------------------------------------------------------------

    def _born(self, role: str, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None:
            with self._lock:
                self._incarnations.append(_Life(role, proc.pid, time.time()))

    def _reap(self, role: str, proc: subprocess.Popen[bytes] | None, cause: str) -> None:
        if proc is None:
            return
        try:
            proc.wait(KILL_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(KILL_WAIT)
        if proc.stderr is not None:
            proc.stderr.close()
        with self._lock:
            for life in self._incarnations:
                if life.role == role and life.pid == proc.pid and life.ended is None:
                    life.ended, life.cause = time.time(), cause


class MemorySampler:
    """Every ``interval`` seconds, the RSS of each role's current process, of this process (the
    client: role ``client``) and Redis's ``INFO used_memory``. The sampler thread is the only
    writer of ``_samples``."""

    def __init__(self, rig: ChaosRig, interval: float = 2.0) -> None:
        self.rig = rig
        self.interval = interval
        self._samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-memory", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(30)
        return list(self._samples)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except Exception:  # a sampler's bug must not end the soak's memory record
                logger.exception("memory sample failed")

    def _sample(self) -> None:
        now = time.time()
        for role in (*self.rig.roles, "client"):
            pid = os.getpid() if role == "client" else self.rig.pid(role)
            if not pid:
                continue
            try:
                rss = psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
            used = self._redis_used() if role == "redis" else 0
            self._samples.append(Sample(now, role, pid, rss, used))

    def _redis_used(self) -> int:
        client = redis.Redis.from_url(self.rig.redis.url, socket_timeout=1.0,
                                      socket_connect_timeout=1.0)
        try:
            return int(client.info("memory")["used_memory"])
        except redis.RedisError:
            return 0  # stopped or restarting: this sample has RSS only
        finally:
            client.close()
