"""Fair shares: a second client's round trip while another floods the gateway.

One redis-server, and for each mode a gateway with two agents (real processes): ``fair``
(the gateway's fair-share gate at ``--fair-depth``) and ``off`` (``--fair-depth 0``: first
come, first served, the baseline). In each mode client B (this process) times no-op round
trips (submit, then ``get()``, one at a time) while idle, then while client A (a process of
its own) floods ``--calls`` no-op calls as fast as its window lets it and waits for them
all; B samples until A is done. Printed per mode: B's p50/p99 idle and under the flood,
the ratio loaded/idle p50 (the target: at most 3x with the gate), and A's throughput.

    python benchmarks/fairness_bench.py [--calls 100000] [--quick] [--fair-depth N]
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
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from tokengate.shared.client import ClusterClient  # noqa: E402
from tokengate.shared.client_config import ClientConfig  # noqa: E402
from tokengate.shared.lifecycle import TokenState  # noqa: E402
from tokengate.shared.redis_server import RedisServer, child_env  # noqa: E402
from tokengate.shared.token import TaskToken  # noqa: E402

from benchmarks.local_cluster import TOKEN, LocalCluster  # noqa: E402

TASK = "cluster_bench_tasks:noop"
READY = 60.0
IDLE_SAMPLES = 300
MAX_LOADED_SAMPLES = 20_000
PACE = 0.02  # seconds between client B's calls


class Sample(NamedTuple):
    round_trip: float  # seconds from submit to the pushed outcome
    to_start: float  # seconds from submit to its worker's start


def flood_main(address: str, calls: int) -> None:
    """Client A: flood ``calls`` no-ops, wait for every one; print the wall time."""
    client = ClusterClient(ClientConfig(address=address, token=TOKEN, client_id="flood-a",
                                        connect_timeout=READY)).connect()
    print("ready", flush=True)
    start = time.perf_counter()
    tokens = [client.submit_by_name(TASK) for _ in range(calls)]
    for token in tokens:
        token.get(timeout=600)
    print(f"{time.perf_counter() - start:.6f}", flush=True)
    client.close()


def probe(client: ClusterClient, until: Callable[[], bool], limit: int) -> list[Sample]:
    """Client B: one call every ``PACE`` seconds (a steady rate, so each moment of the
    run is sampled alike: waiting for each reply would sample quiet moments more, as a slow
    reply takes fewer samples) until ``until()`` or ``limit`` calls; each call's round trip
    is read from its own times once all are back."""
    sent: list[tuple[float, TaskToken]] = []
    next_at = time.perf_counter()
    while not until() and len(sent) < limit:
        sent.append((time.time(), client.submit_by_name(TASK)))
        next_at += PACE
        time.sleep(max(0.0, next_at - time.perf_counter()))
    out = []
    for at, token in sent:
        token.get(timeout=900)
        times = token.timestamps
        out.append(Sample(times[TokenState.COMPLETED] - at, times[TokenState.EXECUTING] - at))
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def run_mode(name: str, redis_url: str, args: argparse.Namespace, logdir: Path) -> dict:
    """One mode on a cluster of its own (its own key prefix) over the shared redis-server."""
    (logdir / name).mkdir()
    cluster = LocalCluster(
        agents=args.agents, redis_url=redis_url, pythonpath=(str(HERE),),
        logdir=str(logdir / name), pin=False, ready_timeout=READY,
        env={"TOKENGATE_KEY_PREFIX": f"fair-{uuid.uuid4().hex[:6]}:"},
        gateway_options=("--fair-depth", str(args.fair_depth if name == "fair" else 0)))
    try:
        cluster.start()  # returns once every agent registered
        client_b = ClusterClient(ClientConfig(address=cluster.address, token=TOKEN,
                                              client_id="probe-b",
                                              connect_timeout=READY)).connect()
        for _ in range(200):  # warm up: connections, task run times
            client_b.submit_by_name(TASK).get(timeout=60)
        idle = probe(client_b, lambda: False, IDLE_SAMPLES)
        flood = subprocess.Popen(
            [sys.executable, __file__, "--flood", cluster.address, "--calls", str(args.calls)],
            env=child_env(cluster.environment()), stdout=subprocess.PIPE, text=True)
        assert flood.stdout is not None and flood.stdout.readline().strip() == "ready"
        loaded = probe(client_b, lambda: flood.poll() is not None, MAX_LOADED_SAMPLES)
        out, _ = flood.communicate(timeout=900)
        wall = float(out.strip().splitlines()[-1])
        client_b.close()
    finally:
        cluster.close()
    loaded = loaded or [Sample(float("nan"), float("nan"))]
    return {"idle": percentiles([s.round_trip for s in idle]),
            "loaded": percentiles([s.round_trip for s in loaded]),
            "samples": len(loaded), "rate": args.calls / wall,
            "to_start": statistics.median(s.to_start for s in loaded) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="client A's flood")
    parser.add_argument("--quick", action="store_true", help="a 10,000-call flood")
    parser.add_argument("--fair-depth", type=int, default=256, help="the gate's depth (fair)")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--modes", default="fair,off", help="fair, off, or both (default)")
    parser.add_argument("--flood", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        flood_main(args.flood, args.calls)
        return
    if args.quick:
        args.calls = min(args.calls, 10_000)
    logdir = Path(tempfile.mkdtemp(prefix="tokengate-fairness-bench-"))
    figures = {}
    with RedisServer() as redis:
        for mode in args.modes.split(","):
            figures[mode] = run_mode(mode, redis.url, args, logdir)
            report(mode, figures[mode], args)
    print(f"({os.cpu_count()} CPUs, client A flooding {args.calls:,} no-ops, "
          f"{args.agents} agents; logs in {logdir})")


def report(mode: str, figure: dict, args: argparse.Namespace) -> None:
    (idle50, idle99), (load50, load99) = figure["idle"], figure["loaded"]
    label = f"fair (depth {args.fair_depth})" if mode == "fair" else "off (first come)"
    print(f"{label:18} B idle p50 {idle50:7.2f} ms p99 {idle99:7.2f} ms | under A's flood "
          f"p50 {load50:8.2f} ms p99 {load99:8.2f} ms ({figure['samples']} samples) | "
          f"loaded/idle p50 {load50 / idle50:6.2f}x | A {figure['rate']:,.0f} calls/s | "
          f"B's loaded p50 to its worker's start {figure['to_start']:.2f} ms",
          flush=True)


if __name__ == "__main__":
    main()
