"""Dashboard benchmark: what an open dashboard costs the gateway, and what it pushes.

    python benchmarks/dashboard_bench.py [--pages 2] [--window 8] [--rounds 4] [--quick]
                                         [--no-browser]

A real cluster on this machine (redis-server, gateway, two agents, the dashboard process).
Windows alternate (off-on, on-off, ...), in the same run, between no page open (the
dashboard then reads nothing) and ``--pages`` pages open (Socket.IO clients over WebSocket;
the dashboard reads the gateway once a second and pushes what changed). For each phase it
prints the gateway's CPU in both kinds of window and the difference (the dashboard's cost),
the dashboard process's CPU, the bytes per second pushed to each page and the largest
single push, and the cluster's throughput; then the gateway's CPU per read, one kind at a
time. Phases: two agents idle; two agents at full throughput (a separate process submitting
no-op tasks without pause); then 50 simulated agents more (AgentLink streams with a real
agent's snapshot that changes every second: the worst case) at full throughput, with one
real chromium page whose CPU and drawing time are measured too.

Targets (issue 9): under 2 % of a core on the gateway at one push a second with two agents;
a bounded payload per push with 50 agents (here: under 64 KiB, and under 100 KB/s per page;
a Ray dashboard cost its users 3 MB/s).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Any

from dashboard_bench_parts import (
    BenchCluster,
    BrowserPage,
    Page,
    SimAgent,
    cpu_seconds,
    load_generator,
)

TARGET_GATEWAY_PERCENT = 2.0
TARGET_PUSH_BYTES = 64 * 1024
TARGET_PAGE_BYTES_PER_S = 100_000


def _completed(cluster: BenchCluster) -> int:
    return int(cluster.client.status().counts.get("completed", 0))


def measure(cluster: BenchCluster, pages: list[Page], seconds: float) -> dict[str, float]:
    gateway, dashboard = cluster.process("gateway"), cluster.process("dashboard")
    for page in pages:
        page.take()
    g0, d0, done0, t0 = cpu_seconds(gateway), cpu_seconds(dashboard), _completed(cluster), \
        time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    g1, d1, done1 = cpu_seconds(gateway), cpu_seconds(dashboard), _completed(cluster)
    taken = [page.take() for page in pages]
    return {
        "gateway": (g1 - g0) / wall * 100, "dashboard": (d1 - d0) / wall * 100,
        "tasks_per_s": (done1 - done0) / wall,
        "bytes_per_s": statistics.mean(t[0] / wall for t in taken) if taken else 0.0,
        "pushes_per_s": statistics.mean(t[1] / wall for t in taken) if taken else 0.0,
        "largest": max((t[2] for t in taken), default=0),
    }


def _with_pages(cluster: BenchCluster, pages: int, seconds: float) -> dict[str, float]:
    opened = [Page(cluster.url).open() for _ in range(pages)]
    time.sleep(1.5)  # the full view, then patches
    try:
        return measure(cluster, opened, seconds)
    finally:
        for page in opened:
            page.close()
        time.sleep(1.5)  # no page: the poller goes quiet


def alternate(cluster: BenchCluster, pages: int, rounds: int, seconds: float) -> dict[str, Any]:
    """Windows with no page and with ``pages`` pages, in the order off-on, on-off, off-on...:
    a cluster whose throughput drifts during the run (Redis filling with results, other
    work on the machine) then weighs on both kinds alike."""
    off, on = [], []
    for round_ in range(rounds):
        if round_ % 2 == 0:
            off.append(measure(cluster, [], seconds))
            on.append(_with_pages(cluster, pages, seconds))
        else:
            on.append(_with_pages(cluster, pages, seconds))
            off.append(measure(cluster, [], seconds))
    return {"off": off, "on": on}


def _mean(windows: list[dict[str, float]], key: str) -> float:
    return statistics.mean(w[key] for w in windows)


def report(name: str, result: dict[str, Any]) -> dict[str, float]:
    off, on = result["off"], result["on"]
    figures = {
        "gateway_off": _mean(off, "gateway"), "gateway_on": _mean(on, "gateway"),
        "dashboard_on": _mean(on, "dashboard"), "bytes_per_s": _mean(on, "bytes_per_s"),
        "pushes_per_s": _mean(on, "pushes_per_s"), "largest": max(w["largest"] for w in on),
        "tasks_off": _mean(off, "tasks_per_s"), "tasks_on": _mean(on, "tasks_per_s"),
    }
    figures["cost"] = figures["gateway_on"] - figures["gateway_off"]
    spread = [w["gateway"] for w in off]
    print(f"{name}")
    print(f"  gateway CPU: no page {figures['gateway_off']:.2f}% of a core "
          f"(windows {min(spread):.2f}-{max(spread):.2f}), pages open "
          f"{figures['gateway_on']:.2f}%: the dashboard costs {figures['cost']:+.2f}% of a core")
    print(f"  dashboard process CPU with pages open: {figures['dashboard_on']:.2f}% of a core")
    print(f"  per page: {figures['bytes_per_s'] / 1000:.2f} KB/s in "
          f"{figures['pushes_per_s']:.2f} pushes/s, largest push {figures['largest']:,} B")
    print(f"  cluster throughput: {figures['tasks_off']:,.0f} tasks/s with no page, "
          f"{figures['tasks_on']:,.0f} with pages open")
    return figures


def browser_window(cluster: BenchCluster, seconds: float) -> None:
    try:
        browser = BrowserPage(cluster.url).open()
    except Exception as exc:  # no chromium or playwright here: say so, go on
        print(f"  real browser page: not measured ({type(exc).__name__}: {exc})")
        return
    try:
        time.sleep(2.0)
        before, cpu0, t0 = browser.stats(), browser.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        after, cpu1 = browser.stats(), browser.cpu_seconds()
        wall = time.monotonic() - t0
        pushes = max(1, after["pushes"] - before["pushes"])
        print(f"  real chromium page: {(cpu1 - cpu0) / wall * 100:.1f}% of a core (all chromium "
              f"processes), {(after['renderMs'] - before['renderMs']) / pushes:.1f} ms of "
              f"script per push over {pushes} pushes")
    finally:
        browser.close()


def read_costs(cluster: BenchCluster, calls: int = 40) -> None:
    """The gateway's CPU per read the poller makes, one kind at a time, and reply sizes."""
    gateway = cluster.process("gateway")
    client = cluster.client
    reads = {"Status": client.status, "Guards": client.guards,
             "Series (last 3 s)": lambda: client.series(600, time.time() - 3),
             "Audit": lambda: client.audit(100)}
    parts = []
    for name, read in reads.items():
        before = cpu_seconds(gateway)
        size = 0
        for _ in range(calls):
            size = read().ByteSize()
        parts.append(f"{name} {(cpu_seconds(gateway) - before) / calls * 1000:.1f} ms "
                     f"({size / 1000:.1f} KB)")
    print("  gateway CPU per read (and reply size): " + ", ".join(parts))


def phase_simulated(cluster: BenchCluster, args: argparse.Namespace) -> dict[str, float]:
    snapshot = cluster.real_snapshot()
    sims = [SimAgent(cluster.address, f"sim{i:02d}", f"sim-host-{i % 5}", snapshot,
                     busy=True).start() for i in range(args.simulated)]
    try:
        cluster.wait_nodes(2 + args.simulated)
        time.sleep(2.0)
        figures = report(f"{2 + args.simulated} agents ({args.simulated} simulated, their "
                         "snapshots changing every second), full throughput",
                         alternate(cluster, args.pages, args.rounds, args.window))
        read_costs(cluster)
        if args.browser:
            browser_window(cluster, args.window)
        return figures
    finally:
        for sim in sims:
            sim.close()


def verdict(idle: dict[str, float], many: dict[str, float]) -> None:
    cost_ok = idle["cost"] < TARGET_GATEWAY_PERCENT
    push_ok = many["largest"] < TARGET_PUSH_BYTES and many["bytes_per_s"] < \
        TARGET_PAGE_BYTES_PER_S
    print("verdict:")
    print(f"  gateway cost at one push a second, two agents: {idle['cost']:+.2f}% of a core "
          f"(target < {TARGET_GATEWAY_PERCENT}%): {'MET' if cost_ok else 'NOT MET'}")
    print(f"  with {many.get('agents', 52):.0f} agents at full throughput: largest push "
          f"{many['largest']:,} B (target < {TARGET_PUSH_BYTES:,}), "
          f"{many['bytes_per_s'] / 1000:.1f} KB/s per page (target < "
          f"{TARGET_PAGE_BYTES_PER_S / 1000:.0f}): {'MET' if push_ok else 'NOT MET'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2, help="pages open in 'on' windows")
    parser.add_argument("--window", type=float, default=8.0, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=4, help="off/on pairs per phase")
    parser.add_argument("--simulated", type=int, default=50, help="simulated agents")
    parser.add_argument("--no-browser", dest="browser", action="store_false")
    parser.add_argument("--quick", action="store_true", help="short windows, one round")
    args = parser.parse_args()
    if args.quick:
        args.window, args.rounds = 3.0, 1
    cluster = BenchCluster()
    load = None
    try:
        print(f"dashboard benchmark: {args.pages} pages, {args.rounds} x {args.window:.0f} s "
              "windows each way, one push a second")
        idle = report("2 agents, idle cluster",
                      alternate(cluster, args.pages, args.rounds, args.window))
        read_costs(cluster)
        load = load_generator(cluster.address)
        time.sleep(4.0)
        report("2 agents, full throughput", alternate(cluster, args.pages, args.rounds,
                                                      args.window))
        many = phase_simulated(cluster, args)
        many["agents"] = 2 + args.simulated
        verdict(idle, many)
    finally:
        if load is not None:
            load.kill()
            with contextlib.suppress(Exception):
                load.wait(10)
        cluster.close()


if __name__ == "__main__":
    main()
