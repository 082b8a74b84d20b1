"""How the asyncio gateway should call its Redis scripts: three transports, one load.

    python benchmarks/redis_loop_bench.py [--quick] [--ks 1,8,64] [--batches 1,100]

Starts its own redis-server on a free port, loads a Lua script shaped like the ledger's hot
path (HSET a few fields for each of N ids read from a msgpack argument, answer a msgpack list)
and runs, on an asyncio loop in this process, K coroutines that each make M EVALSHA calls of
N ids, through each transport:

``a``   ``redis.asyncio`` (hiredis parser), awaited on the loop; its pool opens up to K
        connections.
``b``   one dedicated thread with a sync connection of its own (sent by hand, as
        ``RedisLedger._run`` does), fed by a bounded ``queue.Queue``; it runs every job it
        drained one after the other and hands the results back with one
        ``loop.call_soon_threadsafe`` per drained batch.
``b2``  the same thread, but all the jobs it drained go out as one pipeline (send all, then
        read all): one round trip per drained batch.

For each it reports calls/s, this process's CPU per call (``time.process_time``: every
thread), redis-server's CPU per call (``INFO cpu`` deltas), how many jobs a drain held, and
how late a ticker coroutine that wants to wake every 5 ms woke (p50/p99/max) while the load
ran: the loop's responsiveness. Ratios of ``a`` and ``b2`` against ``b`` close the report.

Owners: the loop owns the futures and the counters of delivered batches; each transport's
thread owns its connection; the queue between them is bounded (at most K jobs are in flight,
so it never fills here; a gateway would turn ``queue.Full`` into backpressure). The script's
argument packing is done by the calling coroutine, the reply's unpacking on the loop for
``a`` and in the thread for ``b``/``b2``, as the gateway would do it.

Standalone on purpose: it needs redis-py, hiredis, msgpack and a ``redis-server`` on PATH,
not the tokengate package.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hiredis
import msgpack
import redis
import redis.asyncio

SCRIPT = """
-- ARGV[1]: key prefix; ARGV[2]: msgpack list of ids; ARGV[3]: a timestamp.
-- Writes <prefix><id> = {state, weight, at, tries} for each id; answers a msgpack list
-- with 1 for an id it created and 2 for one it overwrote.
local ids = cmsgpack.unpack(ARGV[2])
local out = {}
for i = 1, #ids do
  local added = redis.call('HSET', ARGV[1] .. ids[i], 'state', 'queued', 'weight', 'light',
                           'at', ARGV[3], 'tries', '0')
  out[i] = added > 0 and 1 or 2
end
return cmsgpack.pack(out)
"""
PREFIX = "bench:tok:"
TICK = 0.005  # the ticker's period: seconds
IDS_PER_WORKER = 1000  # each coroutine cycles over this many ids: the key set stays bounded
QUEUE_MAX = 4096
START_TIMEOUT = 10.0
TRANSPORTS = ("a", "b", "b2")
CALLS = {1: 40_000, 100: 8_000}  # calls per cell (all K coroutines together), by batch size
QUICK = 10  # --quick divides the calls (and the idle baseline) by this

Call = Callable[[tuple[Any, ...]], Awaitable[list[int]]]


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=False)  # Lua's cmsgpack reads raw strings


def _unpack(reply: bytes) -> list[int]:
    return msgpack.unpackb(reply, raw=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A redis-server child on a free loopback port, no persistence; yields the port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH")
    folder = tempfile.mkdtemp(prefix="redis-loop-bench-")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", "",
         "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not start on port {port}") from None
                time.sleep(0.02)  # polling a child's port: no event to wait on
        client.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


class AsyncTransport:
    """(a) ``redis.asyncio`` on the loop."""

    def __init__(self, port: int, sha: str) -> None:
        self._client = redis.asyncio.Redis(port=port)
        self._sha = sha
        self.deliveries = 0  # not applicable: no batches

    async def call(self, args: tuple[Any, ...]) -> list[int]:
        return _unpack(await self._client.evalsha(self._sha, 0, *args))

    async def close(self) -> None:
        await self._client.aclose()


class ThreadTransport:
    """(b) and (b2): one thread, one sync connection, results back to the loop per batch."""

    def __init__(self, port: int, sha: str, *, pipelined: bool) -> None:
        self._loop = asyncio.get_running_loop()
        self._port = port
        self._sha = sha
        self._run = self._pipelined if pipelined else self._one_by_one
        self._jobs: queue.Queue[tuple[tuple[Any, ...], asyncio.Future[Any]] | None] = \
            queue.Queue(QUEUE_MAX)
        self.deliveries = 0  # batches handed back; the loop's own counter
        self._thread = threading.Thread(target=self._serve, name="redis-bench", daemon=True)
        self._thread.start()

    def call(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        fut = self._loop.create_future()
        self._jobs.put_nowait((args, fut))  # bounded; never full here (module docstring)
        return fut

    async def close(self) -> None:
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    def _serve(self) -> None:
        conn = redis.Connection(port=self._port)  # the thread's own, for its whole life
        try:
            while True:
                batch, stop = [self._jobs.get()], False
                while True:
                    try:
                        batch.append(self._jobs.get_nowait())
                    except queue.Empty:
                        break
                if None in batch:
                    batch, stop = [job for job in batch if job is not None], True
                if batch:
                    self._loop.call_soon_threadsafe(self._deliver, self._run(conn, batch))
                if stop:
                    return
        finally:
            conn.disconnect()

    def _one_by_one(self, conn: redis.Connection, batch: list[Any]) -> list[Any]:
        out: list[Any] = []
        try:
            for args, fut in batch:
                conn.send_command("EVALSHA", self._sha, 0, *args)
                try:
                    out.append((fut, _unpack(conn.read_response()), None))
                except (redis.ResponseError, ValueError) as exc:
                    out.append((fut, None, exc))
        except redis.RedisError as exc:  # connection lost: every job not answered fails
            out += [(fut, None, exc) for _, fut in batch[len(out):]]
        return out

    def _pipelined(self, conn: redis.Connection, batch: list[Any]) -> list[Any]:
        out: list[Any] = []
        try:
            conn.send_packed_command(conn.pack_commands(
                [("EVALSHA", self._sha, 0, *args) for args, _ in batch]))
            for _, fut in batch:
                try:
                    out.append((fut, _unpack(conn.read_response()), None))
                except (redis.ResponseError, ValueError) as exc:
                    out.append((fut, None, exc))
        except redis.RedisError as exc:
            out += [(fut, None, exc) for _, fut in batch[len(out):]]
        return out

    def _deliver(self, results: list[Any]) -> None:
        self.deliveries += 1
        for fut, value, exc in results:
            if fut.cancelled():
                continue
            if exc is None:
                fut.set_result(value)
            else:
                fut.set_exception(exc)


class Ticker:
    """Wakes every ``TICK`` seconds and records how late each wake-up came."""

    def __init__(self) -> None:
        self.late: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK
            await asyncio.sleep(TICK)
            self.late.append(loop.time() - due)

    def summary(self) -> tuple[float, float, float]:
        """p50, p99 and max lateness in milliseconds."""
        late = sorted(self.late) or [0.0]
        pick = lambda q: late[min(len(late) - 1, int(q * len(late)))] * 1e3  # noqa: E731
        return pick(0.50), pick(0.99), late[-1] * 1e3


@dataclass(frozen=True, kw_only=True)
class Cell:
    transport: str
    k: int
    batch: int
    calls: int
    wall: float
    cpu: float
    redis_cpu: float
    late: tuple[float, float, float]
    ticks: int  # the ticker's samples behind ``late``
    deliveries: int

    @property
    def rate(self) -> float:
        return self.calls / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.calls * 1e6

    @property
    def redis_us(self) -> float:
        return self.redis_cpu / self.calls * 1e6


def _redis_cpu(admin: redis.Redis) -> float:
    info = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _worker(call: Call, w: int, batch: int, m: int, stamp: bytes) -> int:
    ids = [f"{w}:{i}" for i in range(IDS_PER_WORKER)]
    answered = 0
    for j in range(m):
        start = (j * batch) % IDS_PER_WORKER
        reply = await call((PREFIX, _pack(ids[start:start + batch]), stamp))
        answered += len(reply)
    return answered


async def _measure(name: str, port: int, sha: str, k: int, batch: int, calls: int,
                   admin: redis.Redis) -> Cell:
    transport: AsyncTransport | ThreadTransport = AsyncTransport(port, sha) if name == "a" \
        else ThreadTransport(port, sha, pipelined=name == "b2")
    m = max(1, calls // k)
    stamp = b"%d" % time.time_ns()
    try:
        for _ in range(3):  # warm up: K connections for (a), the thread's one for (b)
            await asyncio.gather(*(_worker(transport.call, w, batch, 1, stamp)
                                   for w in range(k)))
        ticker = Ticker()
        deliveries0 = transport.deliveries
        redis0 = _redis_cpu(admin)  # a blocking call, but outside the measured window
        cpu0, wall0 = time.process_time(), time.perf_counter()
        tick = asyncio.create_task(ticker.run())
        answered = sum(await asyncio.gather(*(_worker(transport.call, w, batch, m, stamp)
                                              for w in range(k))))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        tick.cancel()
        redis_cpu = _redis_cpu(admin) - redis0
    finally:
        await transport.close()
    assert answered == k * m * batch, (answered, k * m * batch)
    return Cell(transport=name, k=k, batch=batch, calls=k * m, wall=wall, cpu=cpu,
                redis_cpu=redis_cpu, late=ticker.summary(), ticks=len(ticker.late),
                deliveries=transport.deliveries - deliveries0)


async def _idle(seconds: float) -> tuple[float, float, float]:
    """The ticker's lateness with no load: the floor the loaded figures stand on."""
    ticker = Ticker()
    tick = asyncio.create_task(ticker.run())
    await asyncio.sleep(seconds)
    tick.cancel()
    return ticker.summary()


def _header(port: int, admin: redis.Redis) -> None:
    server = admin.info("server")
    print(f"python {sys.version.split()[0]}, redis-py {redis.__version__} "
          f"(hiredis {hiredis.__version__}, available={redis.utils.HIREDIS_AVAILABLE}), "
          f"RESP{redis.Connection(port=port).protocol or 2}, "
          f"redis-server {server['redis_version']} on 127.0.0.1:{port}, "
          f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}")


def _print_table(cells: list[Cell], idle: tuple[float, float, float]) -> None:
    print(f"\n{'K':>3} {'ids':>4} {'tr':<3} {'calls/s':>9} {'cpu us/call':>11} "
          f"{'redis us/call':>13} {'late p50':>8} {'p99':>6} {'max ms':>7} {'ticks':>6} "
          f"{'jobs/drain':>10}")
    print(f"{'':>3} {'':>4} {'idle':<4}{'':>37} {idle[0]:8.2f} {idle[1]:6.2f} {idle[2]:7.2f}")
    for c in cells:
        drain = f"{c.calls / c.deliveries:10.1f}" if c.deliveries else f"{'-':>10}"
        print(f"{c.k:>3} {c.batch:>4} {c.transport:<3} {c.rate:9.0f} {c.cpu_us:11.1f} "
              f"{c.redis_us:13.1f} {c.late[0]:8.2f} {c.late[1]:6.2f} {c.late[2]:7.2f} {c.ticks:6d} "
              f"{drain}")


def _print_ratios(cells: list[Cell]) -> None:
    print("\nratios against b (same K, ids): calls/s, cpu/call, redis cpu/call, late p99")
    by = {(c.k, c.batch, c.transport): c for c in cells}
    for (k, batch, name), c in by.items():
        base = by.get((k, batch, "b"))
        if name == "b" or base is None:
            continue
        print(f"{k:>3} {batch:>4} {name + '/b':<5} {c.rate / base.rate:6.2f}x "
              f"{c.cpu_us / base.cpu_us:6.2f}x {c.redis_us / base.redis_us:6.2f}x "
              f"{c.late[1] / max(base.late[1], 1e-3):6.2f}x")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"calls / {QUICK}")
    parser.add_argument("--ks", default="1,8,64",
                        help="concurrent coroutines (default %(default)s)")
    parser.add_argument("--batches", default="1,100", help="ids per call (default %(default)s)")
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="of a, b, b2 (default %(default)s)")
    parser.add_argument("--calls", type=int, default=0,
                        help=f"calls per cell, all coroutines together (default {CALLS})")
    args = parser.parse_args(argv)
    args.ks = [int(k) for k in args.ks.split(",")]
    args.batches = [int(b) for b in args.batches.split(",")]
    args.transports = args.transports.split(",")
    if not set(args.transports) <= set(TRANSPORTS):
        parser.error(f"--transports: choose from {', '.join(TRANSPORTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    scale = QUICK if args.quick else 1
    with redis_server() as port:
        admin = redis.Redis(port=port)
        sha = admin.script_load(SCRIPT)
        _header(port, admin)
        idle = asyncio.run(_idle(2.0 / scale))
        cells = []
        for k in args.ks:
            for batch in args.batches:
                calls = args.calls or CALLS.get(batch, 8_000) // scale
                for name in args.transports:
                    admin.flushall()  # each transport starts from the same empty key set
                    cells.append(asyncio.run(
                        _measure(name, port, sha, k, batch, calls, admin)))
        admin.close()
    _print_table(cells, idle)
    _print_ratios(cells)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
