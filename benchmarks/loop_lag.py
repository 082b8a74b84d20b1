"""Event-loop lag while a coroutine submits and awaits tokens: the ticker and the scenarios.

A :class:`Ticker` sleeps ``asyncio.sleep(interval)`` in a loop and records how late each
wake-up was (elapsed minus interval). Whatever stops the loop (a blocking call on its thread,
a long stretch of Python without an ``await``, the GIL held elsewhere) shows as lateness.

The scenarios submit ``n`` calls of a decorated function from a coroutine and await them all,
with the ticker running beside it:

- ``async``: ``await fn.submit_async(i)`` per call, then ``asyncio.gather`` over the tokens
  (in chunks, see :func:`gather_all`);
- ``blocking``: today's code before the async work: the decorated call waits for room on the
  loop's thread (the backends' loop detection switched off), with an ``await asyncio.sleep(0)``
  after each call so the ticker gets the same chances to run as in ``async``;
- ``executor``: the baseline without TokenGate on the loop: the same calls and ``get``s
  made by one thread of ``loop.run_in_executor`` (the same thread load; the loop only ticks).

``tests/integration/test_async_tokens.py`` and ``benchmarks/async_bench.py`` use these.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

INTERVAL = 0.001
GATHER_CHUNK = 500
# The claim "the loop keeps ticking within 10 ms", on 2 CPUs shared with other processes and
# under the GIL, against a baseline measured in the same run (the same ticker and thread load,
# no TokenGate on the loop: ``executor``):
# - the 99th percentile of the wake-ups' lateness is at most 10 ms above the baseline's;
# - the share of the run spent in wake-ups more than 10 ms late is at most 10 points above the
#   baseline's (a percentile of wake-ups undercounts a loop that is stalled: a 100 ms stall is
#   one late wake-up among many on time, yet a tenth of a second when nothing ran);
# - no wake-up is more than 250 ms later than the baseline's worst (the OS may deschedule the
#   loop's thread while a gateway, agents and redis-server share the two CPUs).
# Quiet, the baseline's p99 is ~1-2 ms and its stalled share ~1%. The blocking code fails it
# (docs/async.md has the figures).
P99_BOUND_MS = 10.0
STALL_MS = 10.0
STALLED_BOUND_PCT = 10.0
MAX_BOUND_MS = 250.0


@dataclass
class Ticker:
    """Records the lateness of each ``asyncio.sleep(interval)`` wake-up, in seconds."""

    interval: float = INTERVAL
    lateness: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        clock = time.perf_counter
        while not stop.is_set():
            began = clock()
            await asyncio.sleep(self.interval)
            self.lateness.append(clock() - began - self.interval)

    def summary(self) -> dict[str, float]:
        """p50, p99 and max lateness in milliseconds, the number of ticks, and the share of
        the ticking time spent in wake-ups later than STALL_MS (percent)."""
        ordered = sorted(self.lateness) or [0.0]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        total = sum(self.lateness) + self.interval * len(self.lateness)
        stalled = sum(late + self.interval for late in self.lateness if late > STALL_MS / 1e3)
        return {"ticks": len(self.lateness), "p50_ms": statistics.median(ordered) * 1e3,
                "p99_ms": p99 * 1e3, "max_ms": ordered[-1] * 1e3,
                "stalled_pct": 100 * stalled / total if total else 0.0}


def responsive(summary: dict[str, float], baseline: dict[str, float]) -> bool:
    """Whether a ticker's summary meets the claim against a baseline's of the same run."""
    return (summary["p99_ms"] <= baseline["p99_ms"] + P99_BOUND_MS
            and summary["stalled_pct"] <= baseline["stalled_pct"] + STALLED_BOUND_PCT
            and summary["max_ms"] <= baseline["max_ms"] + MAX_BOUND_MS)


@contextlib.contextmanager
def blocking_submissions() -> Iterator[None]:
    """Decorated calls on a loop's thread wait for room there, as before the async work."""
    import tokengate.shared.client as client

    import tokengate.coordinator as coordinator

    saved = coordinator.running_loop, client.running_loop
    coordinator.running_loop = client.running_loop = lambda: None  # type: ignore[assignment]
    try:
        yield
    finally:
        coordinator.running_loop, client.running_loop = saved  # type: ignore[assignment]


async def gather_all(tokens: list[Any]) -> list[Any]:
    """``asyncio.gather`` in chunks: one gather over N awaitables makes N Tasks before it
    yields (about 6 us each here), a stall of its own however fast the awaitables are."""
    results: list[Any] = []
    for start in range(0, len(tokens), GATHER_CHUNK):
        results.extend(await asyncio.gather(*tokens[start:start + GATHER_CHUNK]))
    return results


async def _produce_async(fn: Any, n: int) -> list[Any]:
    tokens = [await fn.submit_async(i) for i in range(n)]
    return await gather_all(tokens)


async def _produce_blocking(fn: Any, n: int) -> list[Any]:
    tokens = []
    for i in range(n):
        tokens.append(fn(i))
        await asyncio.sleep(0)
    return await gather_all(tokens)


async def _produce_executor(fn: Any, n: int) -> list[Any]:
    def produce() -> list[Any]:
        tokens = [fn(i) for i in range(n)]
        return [token.get() for token in tokens]

    return await asyncio.get_running_loop().run_in_executor(None, produce)


PRODUCERS: dict[str, Callable[[Any, int], Any]] = {
    "async": _produce_async, "blocking": _produce_blocking, "executor": _produce_executor}


async def measure(fn: Any, n: int, mode: str) -> tuple[list[Any], Ticker, float]:
    """Run one scenario; the results in call order, the ticker, and the wall seconds."""
    ticker = Ticker()
    stop = asyncio.Event()
    tick_task = asyncio.create_task(ticker.run(stop))
    await asyncio.sleep(0)
    began = time.perf_counter()
    try:
        if mode == "blocking":
            with blocking_submissions():
                results = await PRODUCERS[mode](fn, n)
        else:
            results = await PRODUCERS[mode](fn, n)
    finally:
        wall = time.perf_counter() - began
        stop.set()
        await tick_task
    return results, ticker, wall
