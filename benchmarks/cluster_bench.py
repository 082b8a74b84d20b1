"""Cluster benchmark: Redis + gateway + 2 agents + this client, all on this machine.

    python benchmarks/cluster_bench.py [--tasks 20000] [--flood 100000] [--quick]

Prints, for no-op tasks: throughput (submit to last result) with the CPU each process spent
per task; one-at-a-time round-trip latency p50/p99; true speedup (serial time / wall time) of
8 CPU-bound tasks spread over the two agents; and gateway/agent memory under a flood.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import cluster_bench_tasks as bench_tasks  # noqa: E402
from tokengate.shared.status import describe  # noqa: E402

from benchmarks.local_cluster import LocalCluster  # noqa: E402


class Cluster(LocalCluster):
    """The cluster of this benchmark: its own Redis, agents that include
    ``cluster_bench_tasks`` (found on PYTHONPATH as a top-level module, as imported here)."""

    def __init__(self, agents: int) -> None:
        super().__init__(agents=agents, includes=("cluster_bench_tasks",),
                         pythonpath=(str(HERE),))
        self.start()

    def processes(self) -> dict[str, psutil.Process]:
        procs = {name: psutil.Process(pid) for name, pid in self.pids().items()}
        procs["client"] = psutil.Process()
        return procs


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, proc in procs.items():
        times = proc.cpu_times()
        out[name] = times.user + times.system
    return out


def bench_throughput(cluster: Cluster, n: int) -> None:
    for token in [bench_tasks.noop() for _ in range(2000)]:  # warm up
        token.get(timeout=60)
    procs = cluster.processes()
    before = cpu_seconds(procs)
    start = time.perf_counter()
    tokens = [bench_tasks.noop() for _ in range(n)]
    submitted = time.perf_counter()
    for token in tokens:
        token.get(timeout=120)
    wall = time.perf_counter() - start
    after = cpu_seconds(procs)
    per = {name: (after[name] - before[name]) / n * 1e6 for name in procs}
    print(f"throughput: {n} no-op tasks in {wall:.3f}s = {n / wall:,.0f} tasks/s "
          f"(submit loop {n / (submitted - start):,.0f}/s)")
    print(f"  CPU per task: {sum(per.values()):.0f} us in all = "
          + ", ".join(f"{name} {us:.0f}" for name, us in sorted(per.items())))
    counts = describe(cluster.client.status())["counts"]
    print("  gateway frames: " + ", ".join(f"{k[8:]} {v}" for k, v in sorted(counts.items())
                                           if k.startswith("gateway_")))


def bench_latency(cluster: Cluster, rounds: int) -> None:
    for _ in range(200):
        bench_tasks.noop().get(timeout=10)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        bench_tasks.noop().get(timeout=10)
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50 = samples[len(samples) // 2] * 1e3
    p99 = samples[int(len(samples) * 0.99) - 1] * 1e3
    time.sleep(1.0)  # the case the issue names: a round trip after an idle second
    start = time.perf_counter()
    bench_tasks.noop().get(timeout=10)
    idle = (time.perf_counter() - start) * 1e3
    print(f"round trip (submit, then get), {rounds} sequential: p50 {p50:.2f} ms, "
          f"p99 {p99:.2f} ms, max {samples[-1] * 1e3:.2f} ms; after 1 s idle {idle:.2f} ms")


def bench_speedup(cluster: Cluster, n: int) -> None:
    start = time.perf_counter()
    for _ in range(8):
        bench_tasks.spin_plain(n)
    serial = time.perf_counter() - start
    bench_tasks.spin(1000).get(timeout=30)
    start = time.perf_counter()
    tokens = [bench_tasks.spin(n) for _ in range(8)]
    for token in tokens:
        token.get(timeout=120)
    wall = time.perf_counter() - start
    nodes = sorted({t.node for t in tokens})
    per_node = {node: sum(t.node == node for t in tokens) for node in nodes}
    print(f"CPU-bound: 8 x spin({n}) serial {serial:.2f}s, cluster wall {wall:.2f}s, "
          f"true speedup {serial / wall:.2f} (limit 2.0 on 2 cores); spread {per_node}")


def bench_flood(cluster: Cluster, n: int) -> None:
    procs = {k: v for k, v in cluster.processes().items() if k not in ("client", "redis")}
    samples: dict[str, list[int]] = {name: [] for name in procs}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for name, proc in procs.items():
                samples[name].append(proc.memory_info().rss)
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    pending = [bench_tasks.noop() for _ in range(n)]  # all at once: the window pushes back
    submitted = time.perf_counter() - start
    for token in pending:
        token.get(timeout=300)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    print(f"flood: {n:,} submitted in one go in {submitted:.1f}s, all done in {wall:.1f}s "
          f"({n / wall:,.0f}/s); RSS MiB first/peak/last:")
    for name, values in samples.items():
        mib = [v / 2**20 for v in values]
        print(f"  {name}: {mib[0]:.1f} / {max(mib):.1f} / {mib[-1]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--spin", type=int, default=3_000_000)
    parser.add_argument("--flood", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default="throughput,latency,speedup,flood",
                        help="comma-separated parts to run")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.rounds, args.spin, args.flood = 2000, 200, 300_000, 5000
    print(f"TokenGate cluster benchmark: {psutil.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}, gateway + 2 agents + redis + client on this machine")
    cluster = Cluster(agents=2)
    try:
        parts = set(args.only.split(","))
        if "throughput" in parts:
            bench_throughput(cluster, args.tasks)
        if "latency" in parts:
            bench_latency(cluster, args.rounds)
        if "speedup" in parts:
            bench_speedup(cluster, args.spin)
        if "flood" in parts:
            bench_flood(cluster, args.flood)
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
