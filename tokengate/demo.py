"""``tokengate demo``: a mixed workload in waves, summarised as the seed summarises it."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tokengate.coordinator import OperationsCoordinator
from tokengate.report import bar_lines, latency_lines
from tokengate.shared.errors import TokenGateError
from tokengate.shared.token import TaskToken
from tokengate.workloads import MIXED_OPERATIONS


@dataclass
class DemoResult:
    waves: int = 0
    submitted: int = 0
    resolved: int = 0
    failed: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    operations: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    guard_report: str = ""


def _run_wave(wave: int, wave_size: int, result: DemoResult) -> None:
    started: list[tuple[TaskToken, float]] = []
    choose = random.Random(wave).choice  # a varied but repeatable mix per wave
    for _ in range(wave_size):
        func, argument = choose(MIXED_OPERATIONS)
        began = time.perf_counter()
        started.append((func(argument(wave)), began))
    for token, began in started:
        result.submitted += 1
        result.operations[token.operation_type] += 1
        try:
            token.get(timeout=60)
        except TokenGateError as exc:
            result.failed += 1
            result.errors[type(exc).__name__] += 1
            continue
        except Exception as exc:  # the task's own error, re-raised by get()
            result.failed += 1
            result.errors[type(exc).__name__] += 1
            continue
        result.resolved += 1
        result.latencies.append(time.perf_counter() - began)


def run_demo(seconds: float = 5.0, wave_size: int = 22,
             on_start: Callable[[list[str]], None] | None = None,
             **options: Any) -> DemoResult:
    """Submit waves of mixed operations for about ``seconds``; wait for every token.
    ``on_start`` is given the coordinator's start-up banner before the first wave."""
    result = DemoResult()
    began = time.perf_counter()
    with OperationsCoordinator(**options) as coordinator:
        if on_start is not None:
            on_start(coordinator.banner())
        while time.perf_counter() - began < seconds:
            _run_wave(result.waves, wave_size, result)
            result.waves += 1
        result.guard_report = coordinator.guard_report()
    result.wall = time.perf_counter() - began
    return result


def summary_lines(result: DemoResult) -> list[str]:
    rate = 100.0 * result.resolved / result.submitted if result.submitted else 0.0
    lines = [
        "=" * 70,
        f"MIXED ORCHESTRATOR COMPLETE ({result.submitted} tasks, {result.waves} waves)",
        "=" * 70,
        f"Total wall-clock : {result.wall:.1f}s",
        f"Waves : {result.waves}",
        f"Submitted : {result.submitted}",
        f"Resolved : {result.resolved} ({rate:.1f}%)",
        f"Failed : {result.failed}",
        *latency_lines(result.latencies),
        "Operations dispatched:",
        *bar_lines(dict(result.operations)),
    ]
    if result.errors:
        lines.append("Failures by type: " + ", ".join(f"{k}={v}" for k, v in result.errors.items()))
    return lines
