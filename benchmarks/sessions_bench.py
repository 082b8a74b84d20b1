"""Sessions benchmark: a thousand client sessions open on one gateway, and what they cost.

    python benchmarks/sessions_bench.py [--sessions 1000] [--processes 4] [--rounds 1000]
                                        [--client aio|python] [--quick]

Starts its own redis-server, a gateway and two agents (:class:`LocalCluster`), then:

1. a probe client's sequential no-op round trip, p50/p99, with no other session open (idle);
2. ``--sessions`` client sessions opened from ``--processes`` subprocesses: each session is a
   raw grpc.aio ``Session`` stream on a channel (and TCP connection) of its own, speaking the
   wire as the Python client does, that submits a no-op every 1-3 s at random and checks its
   result; a subprocess reports on its stdout once each of its sessions has had its first
   call answered. ``--client python`` makes each session a :class:`ClusterClient` instead
   (as separate programs' clients would be), whose three threads per session cost CPU the
   gateway then lacks on a small machine;
3. the probe again, with those sessions open and calling.

Prints the sessions opened, the gateway's RSS before/after and per open session, the probe's
p50/p99 idle and loaded with the loaded/idle p50 ratio against the 1.5x target, and the errors
the session processes saw (refusals such as GatewayBusy included).

The session processes are :class:`SessionFleet` (``python -m benchmarks.sessions_bench
sessions ...`` each); tests/integration/cluster/test_many_sessions.py uses them too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import logging
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run as a script: ``benchmarks`` importable as a package
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import msgpack  # noqa: E402
from tokengate.shared import codec  # noqa: E402
from tokengate.shared.auth import call_metadata  # noqa: E402
from tokengate.shared.channel import CHANNEL_OPTIONS  # noqa: E402
from tokengate.shared.client import ClusterClient, open_client  # noqa: E402
from tokengate.shared.lifecycle import TokenState  # noqa: E402
from tokengate.shared.rpc import tokengate_pb2 as pb  # noqa: E402
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc  # noqa: E402

from benchmarks.local_cluster import TOKEN, LocalCluster  # noqa: E402

BENCH_TASK = "cluster_bench_tasks:noop"
TARGET_RATIO = 1.5
OPEN_TIMEOUT = 180.0   # seconds for every session of the fleet to have its first call back
CALL_TIMEOUT = 60.0    # a session's call with no outcome after this long is an error
CONNECT_THREADS = 16   # sessions a subprocess opens at once
CLIENTS = ("python", "aio")


# -- one session process ---------------------------------------------------------------------


class ErrorLog:
    """Errors of one process, counted by kind (digits folded, so one kind is one line)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def note(self, message: str) -> None:
        kind = re.sub(r"\d+", "N", message)[:200]
        with self._lock:
            self._counts[kind] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _WarningsTo(logging.Handler):
    """The clients' warnings (a session refused or lost, then reconnecting) become errors."""

    def __init__(self, errors: ErrorLog) -> None:
        super().__init__(logging.WARNING)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.note(f"client log: {record.getMessage()}")


class Calls:
    """Calls of every session of this process: in flight, answered, checked.

    ``add`` mode submits ``(session, seq)`` and expects their sum (each session sees its own
    call's result); ``none`` submits no arguments and expects ``None``. Outcomes come from
    the sessions' reading threads (or loop); ``_lock`` (a Condition) guards every field.
    """

    def __init__(self, task: str, check: str, errors: ErrorLog) -> None:
        self.task, self.check, self.errors = task, check, errors
        self._lock = threading.Condition()
        # token id -> (session, submitted at, expected value, timed: not a first call)
        self.inflight: dict[str, tuple[int, float, Any, bool]] = {}
        self.ok: set[int] = set()  # sessions with at least one call answered right
        self.submitted = 0
        self.answered = 0
        self.seconds: list[float] = []

    def args(self, session: int, seq: int) -> tuple[tuple[Any, ...], Any]:
        """The arguments of a session's call number ``seq``, and the result it expects."""
        if self.check == "add":
            return (session, seq), session + seq
        return (), None

    def track(self, token_id: str, session: int, seq: int, expected: Any) -> None:
        with self._lock:
            self.submitted += 1
            self.inflight[token_id] = (session, time.monotonic(), expected, seq > 0)

    def settle(self, token_id: str, completed: bool, value: Any, detail: str) -> None:
        with self._lock:
            entry = self.inflight.pop(token_id, None)
            if entry is None:  # already counted as late
                return
            session, start, expected, timed = entry
            self.answered += 1
            if timed:  # a first call's time is the opening rush's
                self.seconds.append(time.monotonic() - start)
            right = completed and value == expected
            if right:
                self.ok.add(session)
            self._lock.notify_all()
        if not right:
            self.errors.note(f"call of session {session}: {value!r} != {expected!r} {detail}")

    def expire(self, limit: float, why: str) -> None:
        """Calls in flight longer than ``limit`` become errors ``why`` (no longer waited for)."""
        now = time.monotonic()
        with self._lock:
            late = [tid for tid, entry in self.inflight.items() if now - entry[1] > limit]
            for tid in late:
                del self.inflight[tid]
            self._lock.notify_all()
        for _ in late:
            self.errors.note(why)

    def busy(self, session: int) -> bool:
        with self._lock:
            return any(entry[0] == session for entry in self.inflight.values())

    def wait_settled(self, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: not self.inflight, timeout)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            seconds = sorted(self.seconds)
            return {"submitted": self.submitted, "answered": self.answered,
                    "sessions_ok": len(self.ok), "call_p50_ms": _pct(seconds, 0.50) * 1e3,
                    "call_p99_ms": _pct(seconds, 0.99) * 1e3}


class PythonSession:
    """A session of the Python client: a ``ClusterClient`` of its own (its own channel, so its
    own TCP connection: the client's channel options ask for a local subchannel pool)."""

    def __init__(self, client: ClusterClient, index: int, calls: Calls) -> None:
        self.client, self.index, self.calls = client, index, calls

    def submit(self, seq: int) -> None:
        args, expected = self.calls.args(self.index, seq)
        try:
            token = self.client.submit_by_name(self.calls.task, args)
        except Exception as exc:
            self.calls.errors.note(f"submit: {type(exc).__name__}: {exc}")
            return
        self.calls.track(token.token_id, self.index, seq, expected)
        token.add_done_callback(lambda token: self.calls.settle(
            token.token_id, token.state is TokenState.COMPLETED, token.result,
            repr(token.error)))

    def close(self) -> None:
        self.client.close()


class AioSession:
    """A ``Gateway.Session`` stream on a grpc.aio channel of its own, spoken on the wire: a
    load generator with no thread per session. Every coroutine runs on ``loop``; ``submit``
    and ``close`` are called from other threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: str, token: str, index: int,
                 calls: Calls) -> None:
        self.loop, self.index, self.calls = loop, index, calls
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.frames: asyncio.Queue[pb.ClientFrame | None] = asyncio.Queue()
        self.received: list[str] = []
        metadata = call_metadata(token, uuid.uuid4().hex)
        self.call = rpc.GatewayStub(self.channel).Session(self._frames(), metadata=metadata)
        self.reader = loop.create_task(self._read())

    async def _frames(self) -> AsyncIterator[pb.ClientFrame]:
        while (frame := await self.frames.get()) is not None:
            frame.received.extend(self.received)  # receipts ride with the next call
            self.received.clear()
            yield frame

    async def _read(self) -> None:
        try:
            async for reply in self.call:
                for result in reply.results:
                    completed = result.state == pb.COMPLETED
                    value = codec.decode_result(result.payload, result.codec,
                                                allow_pickle=False) if completed else None
                    self.received.append(result.token_id)
                    self.calls.settle(result.token_id, completed, value,
                                      f"{result.error_type}: {result.error_message}")
                for rej in reply.rejected:
                    self.calls.settle(rej.token_id, False, None,
                                      f"rejected {rej.error_type}: {rej.error_message}")
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.calls.errors.note(f"session ended: {exc.code()} {exc.details()}")

    def submit(self, seq: int) -> None:
        args, expected = self.calls.args(self.index, seq)
        token_id = uuid.uuid4().hex
        self.calls.track(token_id, self.index, seq, expected)
        item = pb.TaskItem(token_id=token_id, task=self.calls.task,
                           payload=msgpack.packb([list(args), {}]))
        self.loop.call_soon_threadsafe(self.frames.put_nowait, pb.ClientFrame(submit=[item]))

    def close(self) -> None:
        async def close() -> None:
            self.frames.put_nowait(None)
            self.call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
            await self.channel.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def _open_python(args: argparse.Namespace, calls: Calls) -> list[PythonSession]:
    def one(i: int) -> PythonSession | None:
        try:
            client = open_client(args.address, token=args.token, connect_timeout=60.0)
        except Exception as exc:
            calls.errors.note(f"connect: {type(exc).__name__}: {exc}")
            return None
        return PythonSession(client, args.first + i, calls)

    with ThreadPoolExecutor(CONNECT_THREADS) as pool:
        return [s for s in pool.map(one, range(args.sessions)) if s is not None]


def _open_aio(args: argparse.Namespace, calls: Calls) -> list[AioSession]:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="aio-sessions", daemon=True).start()

    async def open_all() -> list[AioSession]:
        return [AioSession(loop, args.address, args.token, args.first + i, calls)
                for i in range(args.sessions)]
    return asyncio.run_coroutine_threadsafe(open_all(), loop).result(60)


def _process_figures(sessions: int) -> dict[str, Any]:
    proc = psutil.Process()
    times = proc.cpu_times()
    return {"rss": proc.memory_info().rss, "threads": proc.num_threads(),
            "cpu": times.user + times.system, "tcp": _established(proc),
            "sessions_open": sessions}


def _established(proc: psutil.Process, port: int | None = None) -> int:
    """TCP connections of ``proc`` that are established (on local ``port``, if given)."""
    try:
        conns = proc.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return -1
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED
               and (port is None or c.laddr.port == port))


def run_sessions(args: argparse.Namespace) -> None:
    """The ``sessions`` command: open sessions, call now and then until stdin says stop."""
    errors = ErrorLog()
    logging.basicConfig(level=logging.WARNING, handlers=[_WarningsTo(errors)], force=True)
    rng = random.Random(args.seed)
    calls = Calls(args.task, args.check, errors)
    opener = _open_aio if args.client == "aio" else _open_python
    sessions: Sequence[PythonSession | AioSession] = opener(args, calls)
    for session in sessions:
        session.submit(0)
    calls.wait_settled(args.open_timeout)
    calls.expire(0.0, f"first call with no outcome after {args.open_timeout:.0f}s")
    _emit("open", asked=args.sessions, sessions=calls.summary()["sessions_ok"],
          errors=errors.snapshot(), **_process_figures(len(sessions)))
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    low, high = args.period
    due = [(time.monotonic() + rng.uniform(low, high), i) for i in range(len(sessions))]
    heapq.heapify(due)
    late = f"call with no outcome after {args.call_timeout:.0f}s"
    seq = 1
    while due and not stop.wait(max(0.0, due[0][0] - time.monotonic())):
        when, i = heapq.heappop(due)
        if not calls.busy(sessions[i].index):  # one call in flight per session
            sessions[i].submit(seq)
            seq += 1
        heapq.heappush(due, (when + rng.uniform(low, high), i))
        calls.expire(args.call_timeout, late)
    calls.wait_settled(args.call_timeout)
    calls.expire(0.0, late)
    _emit("done", errors=errors.snapshot(), **calls.summary(), **_process_figures(len(sessions)))
    with ThreadPoolExecutor(CONNECT_THREADS) as pool:
        list(pool.map(lambda session: session.close(), sessions))


# -- the fleet, from the parent ----------------------------------------------------------------


@dataclass
class FleetReport:
    """What the session processes reported at one event (``open`` or ``done``)."""

    lines: list[dict[str, Any]] = field(default_factory=list)

    def total(self, key: str) -> float:
        return sum(line.get(key, 0) for line in self.lines)

    @property
    def sessions(self) -> int:
        return int(self.total("sessions"))

    @property
    def errors(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for line in self.lines:
            out.update(line.get("errors", {}))
        return dict(out)

    def error_count(self) -> int:
        return sum(self.errors.values())


class SessionFleet:
    """``processes`` subprocesses holding ``sessions`` client sessions between them.

    Each reports one JSON line on stdout when its sessions are open (``open``) and one when
    told to stop (``done``); a reader thread per process puts them on ``_lines``.
    """

    def __init__(self, address: str, *, token: str = TOKEN, sessions: int, processes: int,
                 task: str = BENCH_TASK, check: str = "none",
                 period: tuple[float, float] = (1.0, 3.0), open_timeout: float = OPEN_TIMEOUT,
                 client: str = "python", env: dict[str, str] | None = None,
                 logdir: Path | None = None) -> None:
        self.address, self.token, self.task, self.check = address, token, task, check
        self.client = client
        self.period, self.open_timeout = period, open_timeout
        self.split = _split(sessions, processes)
        self.env = dict(env or os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [self.env.get("PYTHONPATH")])])
        self.logdir = logdir
        self.procs: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []
        self._lines: queue.SimpleQueue[tuple[int, dict[str, Any] | None]] = queue.SimpleQueue()

    def start(self) -> SessionFleet:
        first = 0
        for index, count in enumerate(self.split):
            cmd = [sys.executable, "-m", "benchmarks.sessions_bench", "sessions",
                   "--address", self.address, "--token", self.token, "--sessions", str(count),
                   "--first", str(first), "--task", self.task, "--check", self.check,
                   "--period", f"{self.period[0]},{self.period[1]}", "--seed", str(index),
                   "--open-timeout", str(self.open_timeout), "--client", self.client]
            first += count
            with contextlib.ExitStack() as stack:
                stderr: Any = subprocess.DEVNULL if self.logdir is None else stack.enter_context(
                    open(self.logdir / f"sessions{index}.log", "ab"))
                proc = subprocess.Popen(cmd, env=self.env, cwd=str(ROOT), text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=stderr)
            self.procs.append(proc)
            reader = threading.Thread(target=self._read, args=(index, proc), daemon=True)
            reader.start()
            self._readers.append(reader)
        return self

    def _read(self, index: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                with contextlib.suppress(ValueError):
                    self._lines.put((index, json.loads(line)))
        self._lines.put((index, None))  # the process ended

    def _collect(self, event: str, timeout: float) -> FleetReport:
        report = FleetReport()
        waiting = set(range(len(self.procs)))
        deadline = time.monotonic() + timeout
        while waiting:
            try:
                index, line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"session processes {sorted(waiting)} sent no {event!r} "
                                   f"line within {timeout:.0f}s") from None
            if line is None:
                raise RuntimeError(f"session process {index} exited with code "
                                   f"{self.procs[index].wait()} before its {event!r} line")
            if line.get("event") == event:
                waiting.discard(index)
                report.lines.append(line)
        return report

    def wait_open(self) -> FleetReport:
        """Block until every process has its sessions open, or has given up on some after
        ``open_timeout`` (counted as errors)."""
        return self._collect("open", self.open_timeout + 60.0)

    def stop(self, timeout: float = CALL_TIMEOUT + 30.0) -> FleetReport:
        """Tell every process to stop; their last calls answered, their ``done`` lines."""
        self._hang_up()
        return self._collect("done", timeout)

    def _hang_up(self) -> None:
        """End every process's stdin: the processes stop (their EOF is the signal)."""
        for proc in self.procs:
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

    def close(self) -> None:
        self._hang_up()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for reader in self._readers:
            reader.join(5)

    def __enter__(self) -> SessionFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (i < total % parts) for i in range(parts)]


# -- the benchmark -----------------------------------------------------------------------------


def _pct(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


@dataclass
class Probe:
    """Sequential round trips of one client: p50/p99 in ms, how many, over how long."""

    p50: float
    p99: float
    rounds: int
    seconds: float

    @classmethod
    def run(cls, call: Callable[[], Any], rounds: int, least: float, most: float) -> Probe:
        """``rounds`` round trips of ``call``, and more until ``least`` seconds have passed
        (every session calls while the probe runs); fewer if ``most`` seconds pass first."""
        samples: list[float] = []
        begin = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - begin
            if elapsed >= most or (len(samples) >= rounds and elapsed >= least):
                break
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        samples.sort()
        return cls(_pct(samples, 0.50) * 1e3, _pct(samples, 0.99) * 1e3, len(samples),
                   time.perf_counter() - begin)

    def line(self) -> str:
        return (f"p50 {self.p50:.2f} ms, p99 {self.p99:.2f} ms ({self.rounds} sequential "
                f"no-ops in {self.seconds:.1f}s)")


@dataclass
class Figures:
    """One process's RSS, threads, CPU seconds and established TCP connections."""

    rss: int
    threads: int
    cpu: float
    tcp: int

    @classmethod
    def of(cls, pid: int, port: int | None = None) -> Figures:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        return cls(proc.memory_info().rss, proc.num_threads(), times.user + times.system,
                   _established(proc, port))

    def line(self) -> str:
        return (f"RSS {self.rss / 2**20:.1f} MiB, {self.threads} threads, {self.tcp} client "
                "TCP connections")


class Bench(LocalCluster):
    """The cluster of this benchmark: agents that include ``cluster_bench_tasks``."""

    def __init__(self) -> None:
        super().__init__(agents=2, includes=("cluster_bench_tasks",), pythonpath=(str(HERE),))

    def noop(self) -> None:
        assert self.client is not None
        self.client.submit_by_name(BENCH_TASK).get(timeout=CALL_TIMEOUT)

    def gateway(self) -> Figures:
        return Figures.of(self.procs["gateway"].pid, int(self.address.rpartition(":")[2]))

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each role (the probe is this process)."""
        pids = {**self.pids(), "probe": os.getpid()}
        out = {}
        for role, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                out[role] = times.user + times.system
        return out


def _load() -> str:
    return "machine load average {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())


def _print_errors(title: str, report: FleetReport) -> None:
    print(f"  errors seen by the session processes ({title}): {report.error_count()}")
    for message, count in sorted(report.errors.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {count} x {message}")


def _print_clients(report: FleetReport) -> None:
    sessions = max(1, report.total("sessions_open"))
    rss, threads = report.total("rss"), report.total("threads")
    print(f"  session processes: {len(report.lines)} holding {report.total('sessions_open')} "
          f"clients: {threads} threads ({threads / sessions:.1f} per session), "
          f"{report.total('tcp')} TCP connections, RSS {rss / 2**20:.0f} MiB "
          f"({rss / sessions / 1024:.0f} KiB per session, interpreter included)")


@dataclass
class Loaded:
    """What was measured while the fleet's sessions were open."""

    opened: FleetReport
    probe: Probe
    during: Figures  # the gateway once every session was open
    after: Figures   # the gateway after the loaded probe, sessions still open
    done: FleetReport


def _loaded(cluster: Bench, args: argparse.Namespace, span: float) -> Loaded:
    fleet = SessionFleet(cluster.address, sessions=args.sessions, processes=args.processes,
                         period=(args.min_period, args.max_period),
                         open_timeout=args.open_timeout, client=args.client,
                         logdir=cluster.logdir)
    with fleet:
        start = time.monotonic()
        opened = fleet.wait_open()
        during = cluster.gateway()
        print(f"opened: {opened.sessions} of {args.sessions} sessions answered their first "
              f"call, in {time.monotonic() - start:.1f}s; gateway {during.line()}")
        _print_clients(opened)
        _print_errors("opening", opened)
        cpu = cluster.cpu()
        probe = Probe.run(cluster.noop, args.rounds, span, args.probe_limit)
        cpu = {role: seconds - cpu.get(role, 0.0) for role, seconds in cluster.cpu().items()}
        after = cluster.gateway()
        done = fleet.stop()
    cpu["sessions"] = done.total("cpu") - opened.total("cpu")  # from the open to the done line
    print(f"loaded: probe round trip {probe.line()}, {opened.sessions} sessions open; "
          f"{_load()}")
    print("  CPU meanwhile, share of one core: " + ", ".join(
        f"{role} {seconds / probe.seconds:.0%}" for role, seconds in cpu.items()))
    return Loaded(opened, probe, during, after, done)


def run_bench(args: argparse.Namespace) -> None:
    print(f"TokenGate sessions benchmark: {psutil.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}; redis + gateway + 2 agents + probe + {args.processes} "
          f"session processes ({args.client} sessions) on this machine")
    with Bench() as cluster:
        for _ in range(args.warmup):
            cluster.noop()
        span = 2 * args.max_period  # each session calls at least once while the probe runs
        idle = Probe.run(cluster.noop, args.rounds, span, args.probe_limit)
        before = cluster.gateway()
        print(f"idle: probe round trip {idle.line()}; gateway {before.line()}; {_load()}")
        run = _loaded(cluster, args, span)
        closed = cluster.gateway()
    opened = max(1, run.opened.sessions)
    peak = max(run.during.rss, run.after.rss)
    print(f"gateway RSS: {before.rss / 2**20:.1f} MiB idle -> {peak / 2**20:.1f} MiB with "
          f"{run.opened.sessions} sessions open -> {closed.rss / 2**20:.1f} MiB after they "
          f"closed; {(peak - before.rss) / opened / 1024:.1f} KiB per open session; threads "
          f"{before.threads} -> {run.during.threads}")
    ratio = run.probe.p50 / idle.p50
    print(f"probe p50 loaded/idle: {idle.p50:.2f} -> {run.probe.p50:.2f} ms = {ratio:.2f}x "
          f"(target <= {TARGET_RATIO}x: {'met' if ratio <= TARGET_RATIO else 'MISSED'}); "
          f"p99 {idle.p99:.2f} -> {run.probe.p99:.2f} ms = {run.probe.p99 / idle.p99:.2f}x")
    done = run.done
    print(f"sessions' own calls: {done.total('answered')} of {done.total('submitted')} "
          f"answered, {done.total('sessions_ok')} sessions served; round trip after the first "
          f"call p50 {max(line['call_p50_ms'] for line in done.lines):.1f} ms, p99 "
          f"{max(line['call_p99_ms'] for line in done.lines):.1f} ms (worst process)")
    _print_errors("whole run", done)


def _period(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("sessions", help="(internal) one process of session clients")
    worker.add_argument("--address", required=True)
    worker.add_argument("--token", required=True)
    worker.add_argument("--sessions", type=int, required=True)
    worker.add_argument("--first", type=int, default=0, help="number of the first session")
    worker.add_argument("--task", default=BENCH_TASK)
    worker.add_argument("--check", choices=("none", "add"), default="none")
    worker.add_argument("--client", choices=CLIENTS, default="python")
    worker.add_argument("--period", type=_period, default=(1.0, 3.0),
                        help="LOW,HIGH seconds between one session's calls")
    worker.add_argument("--seed", type=int, default=0)
    worker.add_argument("--open-timeout", type=float, default=OPEN_TIMEOUT)
    worker.add_argument("--call-timeout", type=float, default=CALL_TIMEOUT)
    parser.add_argument("--sessions", type=int, help="sessions to open (1000; --quick 200)")
    parser.add_argument("--processes", type=int, help="processes holding them (4; --quick 2)")
    parser.add_argument("--rounds", type=int, help="probe round trips per phase (1000; "
                        "--quick 200)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--min-period", type=float, default=1.0)
    parser.add_argument("--max-period", type=float, default=3.0)
    parser.add_argument("--open-timeout", type=float, default=OPEN_TIMEOUT)
    parser.add_argument("--client", choices=CLIENTS, default="aio",
                        help="raw grpc.aio Session streams (one loop per process: what the "
                        "gateway sees, without the clients' own cost; the default), or "
                        "sessions of the Python client (3 threads each)")
    parser.add_argument("--probe-limit", type=float, default=120.0,
                        help="seconds a probe phase may take, its rounds done or not")
    parser.add_argument("--quick", action="store_true", help="smaller defaults: a smoke run")
    args = parser.parse_args(argv)
    if args.command == "sessions":
        run_sessions(args)
        return
    defaults = (200, 2, 200) if args.quick else (1000, 4, 1000)
    for name, value in zip(("sessions", "processes", "rounds"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    run_bench(args)


if __name__ == "__main__":
    main()
