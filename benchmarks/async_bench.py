"""Event-loop lag while a coroutine submits and awaits N tokens, embedded and cluster.

    python -m benchmarks.async_bench [--quick] [--tokens N] [--mode embedded|cluster|both]

For each mode, three runs of the same ``N`` calls (a task that sleeps 1 ms) with a ticker
coroutine (``asyncio.sleep(0.001)`` in a loop) on the same loop, see
:mod:`benchmarks.loop_lag`:

- ``executor``: the baseline of the run: the calls made and awaited by one executor thread
  (the same thread load; the loop only ticks);
- ``async``: ``await fn.submit_async(i)`` then ``await`` the tokens, on the loop;
- ``blocking``: the code before the async work: the call waits for room on the loop's thread.

Prints p50/p99/max lateness of the ticker, the share of time stalled (in wake-ups over 10 ms
late), wall time, tokens/s, the ratios to the baseline, and whether the claim of the tests
holds (:func:`benchmarks.loop_lag.responsive`).
Embedded: 2 cores x 4 workers, mailboxes of 40 (light tasks use one core's four). Cluster:
one agent (2 cores x 4 workers, mailboxes of 20), a client window of 64 and a gateway that
holds 20 waiting tokens (``--max-pending``), so the window fills. Not run by pytest.
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
MAX_PENDING = 20


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


def cluster(n: int, max_pending: int) -> list[dict[str, Any]]:
    os.environ["TOKENGATE_CLIENT_WINDOW"] = "64"
    with LocalCluster(agents=1, includes=("benchmarks.async_bench_tasks",), pin=False,
                      agent_options=("--cores", "2", "--workers-per-core", "4",
                                     "--mailbox-capacity", "20"),
                      env={"TOKENGATE_MAX_PENDING": str(max_pending)}):
        return run_scenarios(n)


def report(mode: str, n: int, rows: list[dict[str, Any]]) -> None:
    base = rows[0]
    print(f"\n{mode}: {n} tokens; ticker lateness in ms (asyncio.sleep(0.001) wake-ups)")
    print(f"{'scenario':<10}{'wall s':>8}{'tok/s':>8}{'ticks':>7}{'p50':>7}{'p99':>8}"
          f"{'max':>7}{'stall%':>8}{'p99/base':>9}{'max/base':>9}{'tok/s/base':>11}  claim")
    for row in rows:
        claim = "holds" if responsive(row, base) else "FAILS"
        print(f"{row['scenario']:<10}{row['wall_s']:>8.2f}{row['tokens_s']:>8.0f}"
              f"{row['ticks']:>7.0f}{row['p50_ms']:>7.2f}{row['p99_ms']:>8.2f}"
              f"{row['max_ms']:>7.1f}{row['stalled_pct']:>8.1f}"
              f"{row['p99_ms'] / max(base['p99_ms'], 1e-3):>9.1f}"
              f"{row['max_ms'] / max(base['max_ms'], 1e-3):>9.1f}"
              f"{row['tokens_s'] / base['tokens_s']:>11.2f}  {claim}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 tokens")
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--mode", choices=("embedded", "cluster", "both"), default="both")
    parser.add_argument("--max-pending", type=int, default=MAX_PENDING,
                        help="the gateway's max_pending (default: the test's)")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.tokens
    if args.mode in ("embedded", "both"):
        report("embedded", n, embedded(n))
    if args.mode in ("cluster", "both"):
        report("cluster", n, cluster(n, args.max_pending))


if __name__ == "__main__":
    main()
