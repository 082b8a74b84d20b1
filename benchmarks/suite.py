"""The workloads W1-W6, each written once against :class:`~benchmarks.systems.System`.

Every function takes a started system and the run's sizes and returns plain data (a JSON
object). Figures only ever compare within one run; see ``docs/benchmarks.md``.

- W1 throughput: no-op tasks submitted one call at a time, then all awaited; CPU per task
  summed over every process of the system; Redis commands per task where it uses Redis.
- W2 round trip: sequential submit-then-wait of one no-op; p50/p99.
- W3 CPU-bound: true speedup = serial time (same calls, this thread, same run) / wall time.
- W4 sleeps: wall against the ideal (tasks x seconds / slots).
- W5 the seed's mixed orchestrator: waves of ``MIXED_OPERATIONS``; p50/p95/max, failures.
- W6 flood: submissions in one go; peak RSS of every process, sampled while it runs.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from benchmarks import peer_tasks
from benchmarks.procstats import RssSampler, cpu_delta, group_labels, rss_now
from benchmarks.sizes import Sizes
from benchmarks.systems.base import System
from tokengate.report import percentile
from tokengate.workloads import MIXED_OPERATIONS

TIMEOUT = 120.0  # seconds any one task may take before the workload fails


def _warm(system: System, count: int) -> None:
    for handle in [system.noop() for _ in range(count)]:
        system.result(handle, TIMEOUT)


def _median_round(rounds: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ordered = sorted(rounds, key=lambda r: r[key])
    return ordered[len(ordered) // 2]


def redis_commands(client: redis.Redis | None) -> dict[str, int]:
    """Calls so far per command (scripts' inner commands included; INFO itself left out)."""
    if client is None:
        return {}
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()
            if name != "cmdstat_info"}


def _commands_per_task(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, Any]:
    spent = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
    top = dict(sorted(((k, v / n) for k, v in spent.items()), key=lambda kv: -kv[1])[:12])
    return {"per_task": sum(spent.values()) / n, "by_command": top}


def w1_throughput(system: System, sizes: Sizes, rds: redis.Redis | None) -> dict[str, Any]:
    n = sizes.w1_tasks
    _warm(system, sizes.warmup)
    rounds = []
    for _ in range(sizes.repeats):
        procs = system.processes()
        cmds, cpu = redis_commands(rds), procs.cpu()
        began = time.perf_counter()
        handles = [system.noop() for _ in range(n)]
        submitted = time.perf_counter()
        for handle in handles:
            system.result(handle, TIMEOUT)
        wall = time.perf_counter() - began
        by_process = {k: v / n * 1e6 for k, v in
                      group_labels(cpu_delta(cpu, procs.cpu()), depth=2).items()}
        entry = {"tasks_per_s": n / wall, "submit_per_s": n / (submitted - began),
                 "wall_s": wall, "cpu_us_per_task": sum(by_process.values()),
                 "cpu_us_by_process": by_process}
        if rds is not None:
            entry["redis_commands"] = _commands_per_task(cmds, redis_commands(rds), n)
        rounds.append(entry)
    return {**_median_round(rounds, "tasks_per_s"), "tasks": n, "rounds": rounds}


def _round_trips(system: System, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        system.result(system.noop(), TIMEOUT)
        samples.append(time.perf_counter() - began)
    return sorted(samples)


def w2_round_trip(system: System, sizes: Sizes, rds: redis.Redis | None) -> dict[str, Any]:
    _warm(system, min(sizes.warmup, 200))
    _round_trips(system, min(sizes.warmup, 200))
    rounds = []
    for _ in range(sizes.repeats):
        samples = _round_trips(system, sizes.w2_rounds)
        rounds.append({"p50_ms": percentile(samples, 0.50) * 1e3,
                       "p99_ms": percentile(samples, 0.99) * 1e3,
                       "max_ms": samples[-1] * 1e3})
    time.sleep(sizes.w2_idle)
    began = time.perf_counter()
    system.result(system.noop(), TIMEOUT)
    idle_ms = (time.perf_counter() - began) * 1e3
    return {"p50_ms": statistics.median(r["p50_ms"] for r in rounds),
            "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
            "max_ms": max(r["max_ms"] for r in rounds), "after_idle_ms": idle_ms,
            "idle_s": sizes.w2_idle, "round_trips": sizes.w2_rounds, "rounds": rounds}


def w3_cpu_bound(system: System, sizes: Sizes, iterations: int) -> dict[str, Any]:
    """Serial and parallel rounds alternate, so a burst of load elsewhere on the machine
    falls on both; the best of each is kept (noise only ever adds time)."""
    n = sizes.w3_tasks
    system.warm_cpu()

    def parallel() -> None:
        for handle in [system.spin(iterations) for _ in range(n)]:
            system.result(handle, TIMEOUT)

    serial = wall = float("inf")
    for _ in range(sizes.w3_repeats):
        serial = min(serial, _timed(lambda: [peer_tasks.spin(iterations) for _ in range(n)]))
        wall = min(wall, _timed(parallel))
    return {"tasks": n, "iterations": iterations, "serial_s": serial, "wall_s": wall,
            "speedup": serial / wall}


def _timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def w4_sleeps(system: System, sizes: Sizes) -> dict[str, Any]:
    system.result(system.nap(0.0), TIMEOUT)
    n, seconds = sizes.w4_tasks, sizes.w4_sleep

    def run() -> None:
        for handle in [system.nap(seconds) for _ in range(n)]:
            system.result(handle, TIMEOUT)

    wall = _timed(run)
    ideal = n * seconds / system.slots
    return {"tasks": n, "sleep_s": seconds, "slots": system.slots, "wall_s": wall,
            "ideal_s": ideal, "ratio": wall / ideal}


def _wave(system: System, wave: int, size: int, stats: dict[str, Any]) -> None:
    """One wave, as the seed's orchestrator sends it (``random.Random(wave)``'s choices)."""
    choose = random.Random(wave).randrange
    started = []
    for _ in range(size):
        index = choose(len(MIXED_OPERATIONS))
        argument = MIXED_OPERATIONS[index][1](wave)
        started.append((system.mixed(index, argument), time.perf_counter()))
    for handle, began in started:
        try:
            system.result(handle, TIMEOUT)
        except Exception as exc:  # a task's failure is data here, whatever the system
            stats["failed"] += 1
            stats["errors"][type(exc).__name__] = stats["errors"].get(type(exc).__name__, 0) + 1
            continue
        stats["latencies"].append(time.perf_counter() - began)


def w5_mixed(system: System, sizes: Sizes) -> dict[str, Any]:
    stats: dict[str, Any] = {"failed": 0, "errors": {}, "latencies": []}
    _wave(system, 0, sizes.w5_wave, {"failed": 0, "errors": {}, "latencies": []})  # warm-up
    waves = 0
    began = time.perf_counter()
    while time.perf_counter() - began < sizes.w5_seconds:
        _wave(system, waves, sizes.w5_wave, stats)
        waves += 1
    wall = time.perf_counter() - began
    ordered = sorted(stats["latencies"])
    done = len(ordered)
    return {"waves": waves, "tasks": done + stats["failed"], "failures": stats["failed"],
            "errors": stats["errors"], "wall_s": wall, "tasks_per_s": done / wall,
            "p50_ms": percentile(ordered, 0.50) * 1e3, "p95_ms": percentile(ordered, 0.95) * 1e3,
            "max_ms": (ordered[-1] if ordered else 0.0) * 1e3}


def _drain(system: System, handles: list[Any], deadline: float) -> tuple[int, int]:
    """Wait for handles until ``deadline``: (finished, failed)."""
    finished = failed = 0
    for handle in handles:
        try:
            system.result(handle, max(0.001, deadline - time.monotonic()))
            finished += 1
        except Exception:  # timeouts and failures, each system raising its own types
            if time.monotonic() >= deadline:
                break
            failed += 1
    return finished, failed


def _submit_for(system: System, n: int, deadline: float) -> list[Any]:
    """Up to ``n`` no-ops, one call at a time, until ``deadline`` (checked every 1,000)."""
    handles: list[Any] = []
    while len(handles) < n and time.monotonic() < deadline:
        handles += [system.noop() for _ in range(min(1_000, n - len(handles)))]
    return handles


def w6_flood(system: System, sizes: Sizes) -> dict[str, Any]:
    n = sizes.w6_tasks
    _warm(system, min(sizes.warmup, 200))
    procs = system.processes()
    baseline = rss_now(procs)
    sampler = RssSampler(procs).start()
    began = time.perf_counter()
    try:
        handles = _submit_for(system, n, time.monotonic() + sizes.w6_submit)
        submitted = time.perf_counter() - began
        finished, failed = _drain(system, handles, time.monotonic() + sizes.w6_drain)
        wall = time.perf_counter() - began
        if finished + failed < len(handles):
            system.abandon(handles)
    finally:
        peaks = sampler.stop()
    growth = {k: peaks[k] - baseline.get(k, 0.0) for k in peaks}
    return {"tasks": n, "submitted": len(handles), "submit_s": submitted,
            "submit_limit_s": sizes.w6_submit, "finished": finished, "failed": failed,
            "drained": finished + failed == n, "drain_limit_s": sizes.w6_drain,
            "wall_s": wall, "baseline_mib": baseline, "peak_mib": peaks,
            "growth_mib": growth, "samples": sampler.samples}
