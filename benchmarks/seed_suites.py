"""The seed's benchmark suites, printed as the seed prints them, plus true speedup.

    python -m benchmarks.seed_suites [burst|window|chains|saturation|orchestrator|all]
        [--seconds 10] [--orchestrator-seconds 10] [--saturation-duration 1.0] [--dump]

Suites: concurrency burst (8 tasks at a barrier release; the seed's medium threads, then
the same work in process mode), sustained mixed window (releases of 8 for ``--seconds``),
parallel chains, series saturation (20 long tasks against the worker pool), mixed orchestrator
(waves: p50/p95/max latency, per-operation bars, failures, Guard House report).

Beside the seed's concurrency ratio each suite prints true speedup; only the latter measures
parallelism (see :mod:`benchmarks.seed_report`).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import seed_tasks as st
from benchmarks.seed_report import RULE, ratio_lines, spread_lines
from tokengate import OperationsCoordinator, TaskToken, chain
from tokengate.report import bar_lines, latency_lines
from tokengate.workloads import MIXED_OPERATIONS

BURST_SIZE = 8


def calibrate(target_seconds: float) -> int:
    """Iterations of :func:`plain_work` that take about ``target_seconds`` here."""
    iterations = 20_000
    began = time.perf_counter()
    st.plain_work(iterations)
    elapsed = time.perf_counter() - began
    return max(1_000, int(iterations * target_seconds / max(elapsed, 1e-6)))


def serial_seconds(calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]) -> float:
    """Wall time of the same calls made one after another on this thread."""
    began = time.perf_counter()
    for func, args in calls:
        func(*args)
    return time.perf_counter() - began


def durations_of(tokens: Sequence[TaskToken]) -> list[float]:
    return [token.elapsed or 0.0 for token in tokens]


def burst(label: str, task: Any, iterations: int) -> bool:
    """8 submitter threads released together, one task each."""
    print(f"\n{RULE}\nCONCURRENCY BURST: {label} | release 1 ({BURST_SIZE} tasks)\n{RULE}")
    barrier = threading.Barrier(BURST_SIZE)
    tokens: list[Any] = [None] * BURST_SIZE
    submitted = [0.0] * BURST_SIZE

    def submitter(i: int) -> None:
        barrier.wait()
        submitted[i] = time.perf_counter()
        tokens[i] = task(iterations)

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(BURST_SIZE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [token.get(timeout=120) for token in tokens]
    wall = max(t.timestamps[t.state] for t in tokens) - min(submitted_at(t) for t in tokens)
    durations = durations_of(tokens)
    serial = serial_seconds([(st.plain_work, (iterations,))] * BURST_SIZE)
    print(f"Submit spread (barrier jitter): {(max(submitted) - min(submitted)) * 1000:.2f}ms")
    print("\n".join(spread_lines(durations, wall)))
    print("Duration per task:")
    for i, seconds in enumerate(durations):
        print(f"Task {i:02d}: {seconds:.6f}s  (core {tokens[i].core_id})")
    print("\n".join(ratio_lines(durations, wall, serial, "same 8 calls, one after another")))
    ok = len(results) == BURST_SIZE
    print(f"CONCURRENCY BURST [{label} | release 1] {'PASSED' if ok else 'FAILED'}")
    return ok


def submitted_at(token: TaskToken) -> float:
    return min(token.timestamps.values())


def _op_costs(ops: Sequence[tuple[Any, Callable[[int], Any]]], wave: int) -> dict[str, float]:
    """Median single-call time of each operation, alone on this thread."""
    costs = {}
    for func, argument in ops:
        plain = func.__wrapped__
        runs = []
        for _ in range(5):
            began = time.perf_counter()
            plain(argument(wave))
            runs.append(time.perf_counter() - began)
        costs[func.__tokengate_spec__.operation_type] = statistics.median(runs)
    return costs


def window(seconds: float) -> bool:
    print(f"\n{RULE}\nCONCURRENCY WINDOW: Sustained mixed releases ({seconds:g}s)\n{RULE}")
    choose = random.Random(1954).choice
    tokens: list[TaskToken] = []
    releases, failures = 0, 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        release = []
        for _ in range(BURST_SIZE):
            func, argument = choose(MIXED_OPERATIONS)
            release.append(func(argument(0)))
        for token in release:
            if not token.wait(120) or token.error is not None:
                failures += 1
        tokens += release
        releases += 1
    wall = time.perf_counter() - began
    costs = _op_costs(MIXED_OPERATIONS, 0)
    serial = sum(costs[token.operation_type] for token in tokens)
    durations = durations_of(tokens)
    print(f"Releases: {releases}\nTotal tasks: {len(tokens)}")
    print("\n".join(spread_lines(durations, wall)))
    print("\n".join(ratio_lines(durations, wall, serial, "each operation's median single "
                                "call, measured alone, x its count", prefix="Sustained ")))
    print(f"Failures: {failures}")
    ok = failures == 0
    print(f"CONCURRENCY WINDOW [Sustained mixed releases ({seconds:g}s)] "
          f"{'PASSED' if ok else 'FAILED'}")
    return ok


def chains(count: int = 4) -> bool:
    print(f"\n{RULE}\nPARALLEL CHAINS: Concurrent entry, ordered resolution per chain\n{RULE}")
    print(f"Running {count} chains with concurrent step-0 submission.")
    pipeline = chain(st.chain_start, st.chain_scale, st.chain_finish)
    began = time.perf_counter()
    handles = [pipeline(i) for i in range(1, count + 1)]
    results = [handle.get(timeout=60) for handle in handles]
    wall = time.perf_counter() - began
    ordered = True
    for i, (handle, result) in enumerate(zip(handles, results, strict=True), start=1):
        print(f"Chain {i}: {result}")
        stamps = [(t.timestamps[t.state], min(t.timestamps.values())) for t in handle.tokens]
        ordered &= all(prev_end <= start for (prev_end, _), (_, start)
                       in itertools.pairwise(stamps))
    starts = sorted(min(h.tokens[0].timestamps.values()) for h in handles)
    print(f"{count} parallel chains completed in {wall:.3f}s "
          f"(step-0 submissions spread over {(starts[-1] - starts[0]) * 1000:.2f}ms)")
    ok = ordered and all(f"parallel_chain_{i}" in r for i, r in enumerate(results, start=1))
    print("PARALLEL CHAINS PASSED — chains concurrent, steps ordered within each." if ok
          else "PARALLEL CHAINS FAILED")
    return ok


def saturation(burst_size: int = 20, duration: float = 1.0, workers: int = 8,
               task: Callable[[float], TaskToken] | None = None) -> bool:
    """More long tasks than workers: PASSED only if every task succeeded and the later ones
    waited their turn (backpressure seen: the spread of resolution times reaches at least half
    a task's duration for every extra wave)."""
    task = task or st.series_long
    print(f"\n{RULE}\nSERIES SATURATION: Intentional pool pressure\n{RULE}")
    print(f"Submitting {burst_size} x {duration}s tasks to {workers} workers.")
    print("Workers will be occupied. Later tokens will wait in mailbox.\n")
    submitted, tokens = [], []
    for _ in range(burst_size):
        submitted.append(time.monotonic())
        tokens.append(task(duration))
    resolved, cpu, failures = [], [], Counter()
    for began, token in zip(submitted, tokens, strict=True):
        if not token.wait(60 + 3 * burst_size * duration) or token.error is not None:
            failures[token.error_type or "timeout"] += 1
            continue
        resolved.append(time.monotonic() - began)
        cpu.append(token.result[1])
    waves = -(-burst_size // max(1, workers))
    needed = 0.5 * duration * (waves - 1)
    spread = max(resolved) - min(resolved) if resolved else 0.0
    print(f" Submission of all {burst_size}: {(submitted[-1] - submitted[0]) * 1000:.2f}ms")
    if resolved:
        print(f" Earliest resolution: {min(resolved):.3f}s")
        print(f" Latest resolution: {max(resolved):.3f}s")
        print(f" Spread (backpressure window): {spread:.3f}s (backpressure needs >= "
              f"{needed:.3f}s over {waves} waves)")
        print(f" CPU time a task really got: mean {statistics.fmean(cpu):.3f}s of its "
              f"{duration}s (threads share one GIL)")
    print(f" Failed: {sum(failures.values())}" + (f"  {dict(failures)}" if failures else ""))
    ok = not failures and len(resolved) == burst_size and spread >= needed
    if ok:
        print("\nSERIES SATURATION PASSED — backpressure observed, no failures.")
    else:
        why = "tasks failed" if failures else "no backpressure observed"
        print(f"\nSERIES SATURATION FAILED — {why}.")
    return ok


def _wave(wave: int, size: int, stats: dict[str, Any]) -> None:
    choose = random.Random(wave).choice
    started = []
    for _ in range(size):
        func, argument = choose(MIXED_OPERATIONS)
        started.append((func(argument(wave)), time.perf_counter()))
    for token, began in started:
        stats["operations"][token.operation_type] += 1
        if not token.wait(120) or token.error is not None:
            stats["failed"] += 1
            stats["errors"][token.error_type or "timeout"] += 1
            continue
        stats["latencies"].append(time.perf_counter() - began)
        stats["tokens"].append(token)


def orchestrator(coord: OperationsCoordinator, seconds: float, wave_size: int,
                 dump: bool) -> bool:
    stats: dict[str, Any] = {"operations": Counter(), "errors": Counter(), "failed": 0,
                             "latencies": [], "tokens": []}
    waves = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        _wave(waves, wave_size, stats)
        waves += 1
    wall = time.perf_counter() - began
    submitted = sum(stats["operations"].values())
    resolved = len(stats["tokens"])
    costs = _op_costs(MIXED_OPERATIONS, 0)
    serial = sum(costs[token.operation_type] for token in stats["tokens"])
    print(f"\n{RULE}\nMIXED ORCHESTRATOR COMPLETE ({submitted} tasks, {seconds:g}s of waves)"
          f"\n{RULE}")
    print(f"Total wall-clock : {wall:.1f}s\nWaves : {waves}\nSubmitted : {submitted}")
    print(f"Resolved : {resolved} ({100.0 * resolved / max(1, submitted):.1f}%)")
    print(f"Failed : {stats['failed']}" + (f"  {dict(stats['errors'])}" if stats["errors"] else ""))
    print("\n".join(latency_lines(stats["latencies"])))
    print("\n".join(ratio_lines(durations_of(stats["tokens"]), wall, serial,
                                "each operation's median single call x its count")))
    print("Operations dispatched:")
    print("\n".join(bar_lines(dict(stats["operations"]))))
    print()
    print(coord.guard_report())
    if dump:
        print(f"Execution history dumped to {coord.dump_history()}")
    return stats["failed"] == 0


SUITES = ("burst", "window", "chains", "saturation", "orchestrator")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", default="all", choices=(*SUITES, "all"))
    parser.add_argument("--seconds", type=float, default=10.0, help="sustained window length")
    parser.add_argument("--orchestrator-seconds", type=float, default=10.0)
    parser.add_argument("--wave-size", type=int, default=22)
    parser.add_argument("--saturation-duration", type=float, default=1.0)
    parser.add_argument("--dump", action="store_true", help="dump execution history to dumps/")
    args = parser.parse_args(argv)
    chosen = SUITES if args.suite == "all" else (args.suite,)
    ok = True
    with OperationsCoordinator() as coord:
        sched = coord.scheduler
        workers = sched.num_cores * sched.config.workers_per_core
        print(f"TokenGate seed suites: {sched.num_cores} cores x "
              f"{sched.config.workers_per_core} workers, cpus {sched.topology.allowed_cpus}")
        if "burst" in chosen:
            iterations = calibrate(0.0085)
            ok &= burst("Medium x8 (threads, the seed's)", st.burst_medium, iterations)
            for token in [st.burst_parallel(1_000) for _ in range(4)]:
                token.get(timeout=60)  # start the worker processes before timing them
            ok &= burst("Heavy x8 (execution: process)", st.burst_parallel, iterations)
        if "window" in chosen:
            ok &= window(args.seconds)
        if "chains" in chosen:
            ok &= chains()
        if "saturation" in chosen:
            ok &= saturation(duration=args.saturation_duration, workers=workers)
        if "orchestrator" in chosen:
            ok &= orchestrator(coord, args.orchestrator_seconds, args.wave_size, args.dump)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
