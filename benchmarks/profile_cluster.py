"""Where one token's time and CPU go in the local cluster: py-spy on every process, Redis
commands counted, per-leg wall times from the token's own timestamps.

    python -m benchmarks.profile_cluster [--seconds 15] [--rate 100] [--out DIR]

Runs two phases against a fresh local cluster (its own redis-server, a gateway, two agents
pinned to one CPU each, this client): ``roundtrip`` (sequential submit-then-get of one no-op,
W2's shape) and ``throughput`` (batches of 2,000 no-ops submitted one call at a time, then
awaited: W1's shape). Each phase first runs unprofiled (CPU per task by process, Redis
commands per task from ``INFO commandstats``, legs from the timestamps), then again under
``py-spy record --native --idle --threads`` on the gateway, both agents and this client,
writing collapsed stacks (``DIR/<phase>-<role>.txt``) that ``benchmarks.profile_summary``
reads. Needs py-spy (the ``bench`` extra) and ptrace rights (root here).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.status import describe

from benchmarks import cluster_bench_tasks as tasks
from benchmarks.echo import measure as echo_measure
from benchmarks.local_cluster import LocalCluster
from benchmarks.procstats import ProcessSet, cpu_delta, group_labels
from benchmarks.suite import _commands_per_task, redis_commands
from tokengate.report import percentile

BATCH = 2_000


def _roundtrips(seconds: float) -> tuple[int, dict[str, float]]:
    """Sequential round trips for ``seconds``; count and median legs in ms."""
    legs: dict[str, list[float]] = {"total": [], "out": [], "back": [], "wake": []}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.time()
        token = tasks.noop()
        token.get(timeout=30)
        returned = time.time()
        started = token.timestamps[TokenState.EXECUTING]
        completed = token.timestamps[token.state]
        legs["total"].append(returned - began)
        legs["out"].append(started - began)  # client call -> worker starts (agent's clock)
        legs["back"].append(completed - started)  # worker starts -> client thread resolves
        legs["wake"].append(returned - completed)  # resolved -> the caller's get() returns
    out = {k: statistics.median(v) * 1e3 for k, v in legs.items()}
    out["p99_total"] = percentile(sorted(legs["total"]), 0.99) * 1e3
    return len(legs["total"]), out


def _throughput(seconds: float) -> tuple[int, dict[str, float]]:
    done, end, began = 0, time.monotonic() + seconds, time.perf_counter()
    while time.monotonic() < end:
        for token in [tasks.noop() for _ in range(BATCH)]:
            token.get(timeout=60)
        done += BATCH
    return done, {"tasks_per_s": done / (time.perf_counter() - began)}


PHASES = {"roundtrip": _roundtrips, "throughput": _throughput}


def thread_cpu(pids: dict[str, int]) -> dict[tuple[str, int], tuple[str, float]]:
    """(role, tid) -> (thread name, CPU seconds), native threads (gRPC's own) included."""
    out = {}
    for role, pid in pids.items():
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
                fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1]
            except OSError:
                continue
            ticks = sum(int(x) for x in fields.split()[11:13])  # utime, stime
            out[(role, int(tid))] = (name, ticks / os.sysconf("SC_CLK_TCK"))
    return out


def thread_delta(before: dict[tuple[str, int], tuple[str, float]],
                 after: dict[tuple[str, int], tuple[str, float]], count: int) -> dict[str, float]:
    """us per task by role, thread id and OS name (py-spy's files name the Python threads
    by the same ids), busiest first."""
    spent: dict[str, float] = {}
    for key, (name, seconds) in after.items():
        label = f"{key[0]}:{key[1]}:{name}"
        spent[label] = spent.get(label, 0.0) + seconds - before.get(key, (name, 0.0))[1]
    return {k: v / count * 1e6 for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v}


def _gateway_counts(client: Any) -> dict[str, int]:
    counts = describe(client.status())["counts"]
    return {k[len("gateway_"):]: int(v) for k, v in counts.items() if k.startswith("gateway_")}


def measure(phase: str, seconds: float, procs: ProcessSet, rds: redis.Redis,
            client: Any) -> dict[str, Any]:
    frames = _gateway_counts(client)
    cmds, cpu, threads = redis_commands(rds), procs.cpu(), thread_cpu(procs.roots)
    count, figures = PHASES[phase](seconds)
    spent = group_labels(cpu_delta(cpu, procs.cpu()))
    after = _gateway_counts(client)
    return {"tasks": count, **figures,
            "gateway_counts_per_task": {k: (v - frames.get(k, 0)) / count
                                        for k, v in after.items()},
            "cpu_us_per_task": {k: v / count * 1e6 for k, v in sorted(spent.items())},
            "cpu_us_per_task_by_thread": thread_delta(threads, thread_cpu(procs.roots), count),
            "redis_commands": _commands_per_task(cmds, redis_commands(rds), count)}


def profile(phase: str, seconds: float, pids: dict[str, int], rate: int,
            out: Path) -> dict[str, Any]:
    spy = shutil.which("py-spy") or str(Path(os.sys.executable).parent / "py-spy")
    recorders = [subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--native", "--idle", "--threads", "--rate",
         str(rate), "--format", "raw", "--duration", str(int(seconds) + 1), "--output",
         str(out / f"{phase}-{role}.txt")], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL) for role, pid in pids.items()]
    time.sleep(0.5)  # py-spy attaches before the phase starts
    try:
        count, figures = PHASES[phase](seconds)
    finally:
        for rec in recorders:
            rec.wait(seconds + 30)
    return {"tasks": count, **figures}


def yardsticks(client: Any, rounds: int = 300) -> dict[str, float]:
    """A bare gRPC stream echo, and a unary Ping to the gateway (one link, no Redis)."""
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        client.ping(timeout=5)
        samples.append(time.perf_counter() - began)
    echo = echo_measure(rounds, 3)
    return {"echo_p50_ms": echo["p50_ms"], "echo_p99_ms": echo["p99_ms"],
            "ping_p50_ms": percentile(sorted(samples), 0.5) * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    with LocalCluster(includes=("benchmarks.cluster_bench_tasks",)) as cluster:
        pids = {"gateway": cluster.procs["gateway"].pid, "agent1": cluster.procs["agent1"].pid,
                "agent2": cluster.procs["agent2"].pid, "client": os.getpid()}
        procs = ProcessSet({**pids, "redis": cluster.redis_pid or 0})
        rds = redis.Redis.from_url(cluster.redis_url)
        for token in [tasks.noop() for _ in range(BATCH)]:
            token.get(timeout=60)
        report["yardsticks"] = yardsticks(cluster.client)
        for phase in PHASES:
            report[phase] = {"plain": measure(phase, args.seconds, procs, rds, cluster.client),
                             "profiled": profile(phase, args.seconds, pids, args.rate,
                                                 args.out)}
            print(phase, json.dumps(report[phase], indent=1), flush=True)
    (args.out / "summary.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
