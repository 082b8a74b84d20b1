"""Fifty agents against two, on the same cores: does the gateway keep its throughput?

    python benchmarks/fifty_agents_bench.py [--tasks 20000] [--rounds 3] [--workers 50]
    python -m benchmarks.fifty_agents_bench --quick

Two clusters run side by side on this machine, each with its own redis-server and gateway:
one with 2 agents, one with 50, every agent on one scheduler core (``--cores 1``) and none
pinned to a CPU, so both share the same cores; the total of worker threads is the same
(``--workers``, split evenly among each cluster's agents). Both are started first (50 agents
take ~10-20 s to register on 2 CPUs), warmed, then measured in alternating runs (the order
flips every round, so a drift of the shared machine hits both alike): each run submits
``--tasks`` no-op calls from one client as fast as it can and waits for every result.

Prints, per run, tokens/s, the CPU each role spent per token and the gateway's frames per
100 tokens; then the median of each cluster, the ratio fifty/two (the target is >= 0.8), how
evenly the fifty agents were used, and the CPU the idle clusters spent meanwhile (they sit
beside the measured one). ``--spread`` adds a third cluster, fifty agents with chunking off
(``TOKENGATE_CHUNK_BUDGET=0``), to the same rounds: what chunking is worth, measured at the
same time on the same noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: ``benchmarks`` must import as a package
    sys.path.insert(0, str(ROOT))

from tokengate.shared.registry import lookup  # noqa: E402
from tokengate.shared.status import describe  # noqa: E402

import benchmarks.cluster_bench_tasks  # noqa: E402,F401  (registers the no-op task here)
from benchmarks.local_cluster import LocalCluster  # noqa: E402

TASK = "benchmarks.cluster_bench_tasks:noop"
TARGET = 0.8
READY_TIMEOUT = 120.0  # fifty interpreters starting on two CPUs, beside other work


@dataclass
class Run:
    cluster: str
    rate: float                   # tokens/s, first submit to last result
    cpu_us: dict[str, float]      # CPU per token by role, microseconds
    nodes: Counter[str]           # tokens per agent
    idle_cpu_s: float             # CPU the other (idle) cluster spent meanwhile
    frames: dict[str, float]      # gateway frames per 100 tokens, by kind


def start_cluster(agents: int, workers: int, env: dict[str, str] | None = None,
                  ) -> LocalCluster:
    per_agent = max(1, round(workers / agents))
    cluster = LocalCluster(agents=agents, includes=("benchmarks.cluster_bench_tasks",),
                           agent_options=("--cores", "1", "--workers-per-core", str(per_agent)),
                           pin=False, ready_timeout=READY_TIMEOUT, env=env)
    cluster.start()
    return cluster


def processes(cluster: LocalCluster) -> dict[str, psutil.Process]:
    return {name: psutil.Process(pid) for name, pid in cluster.pids().items()}


def role(name: str) -> str:
    return "agents" if name.startswith("agent") else name


def cpu_by_role(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out: Counter[str] = Counter()
    for name, proc in procs.items():
        times = proc.cpu_times()
        out[role(name)] += times.user + times.system
    return dict(out)


def run_load(cluster: LocalCluster, n: int) -> tuple[float, Counter[str]]:
    client = cluster.client
    assert client is not None
    spec = lookup(TASK)
    start = time.perf_counter()
    tokens = [client.submit(spec, (), {}) for _ in range(n)]
    for token in tokens:
        token.get(timeout=300)
    wall = time.perf_counter() - start
    return n / wall, Counter(token.node for token in tokens)


FRAMES = {"from clients": "gateway_client_frames", "to agents": "gateway_direct_frames",
          "claims": "gateway_claims", "from agents": "gateway_agent_frames"}


def gateway_counts(cluster: LocalCluster) -> dict[str, int]:
    assert cluster.client is not None
    return describe(cluster.client.status())["counts"]


def measure(name: str, cluster: LocalCluster, idle: list[LocalCluster], n: int) -> Run:
    procs = processes(cluster)
    idle_procs = {f"{i}/{k}": p for i, c in enumerate(idle) for k, p in processes(c).items()}
    counts = gateway_counts(cluster)
    me = psutil.Process()
    before, idle_before = cpu_by_role(procs), sum(cpu_by_role(idle_procs).values())
    client_before = sum(me.cpu_times()[:2])
    rate, nodes = run_load(cluster, n)
    after, idle_after = cpu_by_role(procs), sum(cpu_by_role(idle_procs).values())
    cpu = {r: (after[r] - before[r]) / n * 1e6 for r in after}
    cpu["client"] = (sum(me.cpu_times()[:2]) - client_before) / n * 1e6
    counted = gateway_counts(cluster)
    frames = {kind: (counted.get(key, 0) - counts.get(key, 0)) * 100 / n
              for kind, key in FRAMES.items()}
    return Run(name, rate, cpu, nodes, idle_after - idle_before, frames)


def report(run: Run) -> None:
    per = ", ".join(f"{r} {us:.0f}" for r, us in sorted(run.cpu_us.items()))
    total = sum(run.cpu_us.values())
    print(f"  {run.cluster:>5}: {run.rate:8,.0f} tokens/s   CPU/token {total:.0f} us ({per}); "
          f"idle clusters {run.idle_cpu_s:.2f} s CPU", flush=True)
    print("         frames per 100 tokens: "
          + ", ".join(f"{kind} {n:.1f}" for kind, n in run.frames.items()), flush=True)


def summary(runs: list[Run], agents: int) -> float:
    rates = {name: statistics.median(r.rate for r in runs if r.cluster == name)
             for name in dict.fromkeys(r.cluster for r in runs)}
    ratio = rates["fifty"] / rates["two"]
    print(f"median: two {rates['two']:,.0f} tokens/s, fifty {rates['fifty']:,.0f} tokens/s; "
          f"ratio fifty/two {ratio:.3f} (target >= {TARGET}: "
          f"{'met' if ratio >= TARGET else 'MISSED'})")
    if "spread" in rates:
        print(f"  fifty with chunking off (chunk_budget 0): {rates['spread']:,.0f} tokens/s, "
              f"ratio spread/two {rates['spread'] / rates['two']:.2f}")
    for run in (r for r in runs if r.cluster == "fifty"):
        counts = [run.nodes.get(f"bench{i}", 0) for i in range(1, agents + 1)]
        print(f"  fifty run: {sum(c > 0 for c in counts)}/{agents} agents got work, "
              f"tokens per agent min {min(counts)} / median {statistics.median(counts):.0f} / "
              f"max {max(counts)}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20_000, help="no-op calls per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each cluster")
    parser.add_argument("--agents", type=int, default=50, help="agents of the big cluster")
    parser.add_argument("--workers", type=int, default=50, help="worker threads per cluster")
    parser.add_argument("--quick", action="store_true", help="5,000 calls, 2 rounds")
    parser.add_argument("--spread", action="store_true", help="a third cluster of fifty "
                        "agents with chunking off, measured in the same rounds")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.rounds = 5_000, 2
    print(f"fifty agents bench: {psutil.cpu_count()} CPUs, {args.tasks:,} no-op calls per run, "
          f"{args.rounds} rounds; 2 agents x {round(args.workers / 2)} workers vs "
          f"{args.agents} agents x {max(1, round(args.workers / args.agents))} workers",
          flush=True)
    clusters: dict[str, LocalCluster] = {}
    try:
        started = time.perf_counter()
        clusters["fifty"] = start_cluster(args.agents, args.workers)
        print(f"  {args.agents} agents registered in {time.perf_counter() - started:.1f} s",
              flush=True)
        if args.spread:
            clusters["spread"] = start_cluster(args.agents, args.workers,
                                               {"TOKENGATE_CHUNK_BUDGET": "0"})
        clusters["two"] = start_cluster(2, args.workers)
        for cluster in clusters.values():  # warm: connections, code paths, credits
            run_load(cluster, min(2_000, args.tasks))
        runs: list[Run] = []
        names = list(clusters)
        for i in range(args.rounds):
            for name in names if i % 2 == 0 else reversed(names):
                idle = [c for other, c in clusters.items() if other != name]
                runs.append(measure(name, clusters[name], idle, args.tasks))
                report(runs[-1])
        summary(runs, args.agents)
    finally:
        for cluster in clusters.values():
            cluster.close()


if __name__ == "__main__":
    main()
