"""Gateways side by side: the same no-op load through one gateway and through two.

Two clusters run at once on one redis-server, each under its own key prefix, and take turns
(so both see the same machine): ``one`` is a gateway (shard ``0``) with two agents; ``two`` is
two gateways (shards ``a`` and ``b``, active at once) with an agent each. Each round starts
two client *processes* at the same moment, each submitting ``--calls`` no-op calls by name and
waiting for every result; in ``two`` each client has its own gateway (the agents and clients
list both addresses, starting at their own). Tokens/s = all calls / the wall time of the
slower client. Printed per round, then the medians and the ratio two/one.

On a 16-CPU machine the gateways and their Redis shards each get cores of their own; on the
2 CPUs of the machines here every process shares both, so what this shows is that a second
gateway costs nothing (the ratio near 1.0 or above), not how far they scale.

    python benchmarks/gateways_bench.py [--calls 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from tokengate.shared.client import ClusterClient  # noqa: E402
from tokengate.shared.client_config import ClientConfig  # noqa: E402
from tokengate.shared.redis_server import RedisServer, child_env, free_port  # noqa: E402
from tokengate.shared.status import describe  # noqa: E402

from tokengate.cli_up import role_command  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
TASK = "cluster_bench_tasks:noop"
READY = 60.0


class Setup:
    """Gateways (one per shard) and an agent per gateway listed in ``agents``."""

    def __init__(self, name: str, redis_url: str, shards: list[str], agents: list[int],
                 logdir: Path) -> None:
        self.name = name
        self.logdir = logdir
        self.addresses = [f"127.0.0.1:{free_port()}" for _ in shards]
        self.env = dict(os.environ, TOKENGATE_TOKEN=TOKEN,
                        TOKENGATE_KEY_PREFIX=f"gwb-{uuid.uuid4().hex[:6]}:",
                        PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE)]))
        self.procs: list[subprocess.Popen[bytes]] = []
        for shard, address in zip(shards, self.addresses, strict=True):
            self._spawn(f"{name}-gw-{shard}", "gateway", "--listen", address, "--redis",
                        redis_url, "--shard", shard)
        for i, home in enumerate(agents):
            self._spawn(f"{name}-agent{i}", "agent", "--gateway", self.order(home),
                        "--name", f"{name}-agent{i}", "--include", "cluster_bench_tasks")

    def order(self, home: int) -> str:
        """The addresses starting at ``home`` (agents start at the first if their name's
        pick falls there; clients are told theirs)."""
        return ",".join(self.addresses[home:] + self.addresses[:home])

    def _spawn(self, log: str, role: str, *args: str) -> None:
        with open(self.logdir / f"{log}.log", "wb") as out:
            self.procs.append(subprocess.Popen(role_command(role, *args), env=child_env(self.env),
                                               stdout=out, stderr=subprocess.STDOUT))

    def wait_ready(self, agents: int) -> None:
        deadline = time.monotonic() + READY
        for address in self.addresses:
            client = ClusterClient(ClientConfig(address=address, token=TOKEN,
                                                connect_timeout=READY))
            try:
                while len(describe(client.status())["nodes"]) < agents:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name}: agents did not register "
                                           f"(logs in {self.logdir})")
                    time.sleep(0.1)  # polling the registry: no event to wait on
            finally:
                client.close()

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def client_main(address: str, calls: int) -> None:
    """One client process: submit ``calls`` no-ops through ``address``, wait for all."""
    client = ClusterClient(ClientConfig(address=address, token=TOKEN, connect_timeout=READY,
                                        spread=False))  # at its own gateway, the first
    client.connect()
    for token in [client.submit_by_name(TASK) for _ in range(500)]:  # warm up
        token.get(timeout=60)
    print("ready", flush=True)
    sys.stdin.readline()  # the go signal: both clients start together
    start = time.perf_counter()
    tokens = [client.submit_by_name(TASK) for _ in range(calls)]
    for token in tokens:
        token.get(timeout=300)
    print(f"{time.perf_counter() - start:.6f}", flush=True)
    client.close()


def one_round(addresses: list[str], calls: int, env: dict[str, str]) -> float:
    """Two client processes at once; tokens/s over both."""
    procs = [subprocess.Popen([sys.executable, __file__, "--client", address,
                               "--calls", str(calls)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for address in addresses]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    walls = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        walls.append(float(out.strip().splitlines()[-1]))
    return len(procs) * calls / max(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.calls)
        return
    logdir = Path(tempfile.mkdtemp(prefix="tokengate-gateways-bench-"))
    with RedisServer() as redis:
        one = Setup("one", redis.url, ["0"], [0, 0], logdir)
        two = Setup("two", redis.url, ["a", "b"], [0, 1], logdir)
        try:
            one.wait_ready(2)
            two.wait_ready(1)
            env = child_env(dict(os.environ, PYTHONPATH=os.pathsep.join(
                [str(HERE.parent), str(HERE)])))
            figures: dict[str, list[float]] = {"one": [], "two": []}
            for r in range(args.rounds):
                for setup, addresses in ((one, [one.addresses[0]] * 2),
                                         (two, [two.order(0), two.order(1)])):
                    rate = one_round(addresses, args.calls, env)
                    figures[setup.name].append(rate)
                    print(f"round {r + 1}: {setup.name} gateway(s): {rate:,.0f} tokens/s",
                          flush=True)
        finally:
            one.close()
            two.close()
    med = {name: statistics.median(values) for name, values in figures.items()}
    print(f"median: one gateway {med['one']:,.0f} tokens/s, two gateways "
          f"{med['two']:,.0f} tokens/s; two/one = {med['two'] / med['one']:.2f}x "
          f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
