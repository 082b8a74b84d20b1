"""Event-loop lag while a coroutine submits and awaits N tokens, embedded and cluster.

    python -m benchmarks.async_bench [--quick] [--tokens N] [--mode embedded|cluster|both]

For each mode, three runs of the same ``N`` calls (a task that sleeps 1 ms) with a ticker
coroutine (``asyncio.sleep(0.001)`` in a loop) on the same loop, see
:mod:`benchmarks.loop_lag`:

- ``executor``: the baseline of the run: the calls made and awaited by one executor thread
  (the same thread load; the loop only ticks);
- ``async``: ``await fn.submit_async(i)`` then ``await`` the tokens, on the loop;
- ``blocking``: the code before the async work: the call waits for room on the loop's thread.

Prints p50/p99/max lateness of the ticker, wall time, tokens/s, the p99 and max ratios to the
baseline, and whether the claim of the tests holds (p99 within 10 ms of the baseline's).
Embedded: 2 cores x 4 workers, mailboxes of 40 (light tasks use one core's four). Cluster:
one agent (2 cores x 4 workers, mailboxes of 20), a client window of 64 and a gateway that
holds 100 waiting tokens, so the window fills. Not run by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from benchmarks import async_bench_tasks as tasks
from benchmarks.local_cluster import LocalCluster
from benchmarks.loop_lag import measure, responsive
from tokengate import OperationsCoordinator

SCENARIOS = ("executor", "async", "blocking")


def run_scenarios(n: int) -> list[dict[str, Any]]:
    rows = []
    for mode in SCENARIOS:
        results, ticker, wall = asyncio.run(measure(tasks.tick, n, mode))
        if results != list(range(n)):
            raise AssertionError(f"{mode}: results out of order or missing")
        rows.append({"scenario": mode, "wall_s": wall, "tokens_s": n / wall,
                     **ticker.summary()})
    return rows


def embedded(n: int) -> list[dict[str, Any]]:
    with OperationsCoordinator(cores=2, workers_per_core=4, mailbox_capacity=40):
        return run_scenarios(n)


def cluster(n: int) -> list[dict[str, Any]]:
    os.environ["TOKENGATE_CLIENT_WINDOW"] = "64"
    with LocalCluster(agents=1, includes=("benchmarks.async_bench_tasks",), pin=False,
                      agent_options=("--cores", "2", "--workers-per-core", "4",
                                     "--mailbox-capacity", "20"),
                      env={"TOKENGATE_MAX_PENDING": "100"}):
        return run_scenarios(n)


def report(mode: str, n: int, rows: list[dict[str, Any]]) -> None:
    base = rows[0]
    print(f"\n{mode}: {n} tokens; ticker lateness in ms (asyncio.sleep(0.001) wake-ups)")
    print(f"{'scenario':<10}{'wall s':>8}{'tok/s':>9}{'ticks':>7}{'p50':>8}{'p99':>8}"
          f"{'max':>8}{'p99/base':>10}{'max/base':>10}  claim")
    for row in rows:
        claim = "holds" if responsive(row, base) else "FAILS"
        print(f"{row['scenario']:<10}{row['wall_s']:>8.2f}{row['tokens_s']:>9.0f}"
              f"{row['ticks']:>7.0f}{row['p50_ms']:>8.2f}{row['p99_ms']:>8.2f}"
              f"{row['max_ms']:>8.1f}{row['p99_ms'] / max(base['p99_ms'], 1e-3):>10.1f}"
              f"{row['max_ms'] / max(base['max_ms'], 1e-3):>10.1f}  {claim}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 tokens")
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--mode", choices=("embedded", "cluster", "both"), default="both")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.tokens
    if args.mode in ("embedded", "both"):
        report("embedded", n, embedded(n))
    if args.mode in ("cluster", "both"):
        report("cluster", n, cluster(n))


if __name__ == "__main__":
    main()
