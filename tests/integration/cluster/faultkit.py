"""Tools of the fault tests: raw sessions, gates, side-effect counts, Redis reads.

- :class:`RawSession` opens ``Gateway.Session`` with grpc directly and sends frames exactly as
  given (huge frames, repeated ids, no resubmit flag, never a receipt), logging every reply it
  reads. ``_lock`` (a Condition) guards its logs; its reader thread is their only writer.
- :class:`RecordingClient` is the Python client, logging every result and rejection the
  gateway pushes before the client's own bookkeeping can hide a second one.
- :class:`SideEffects` counts task runs by the lines cluster_tasks' ``record`` and ``gated``
  tasks append: a run is counted by what it did, never by what a client was told.
- :class:`Gate` is a file gated tasks wait for; the test opens it when it chooses.
- :class:`RedisView` reads one cluster's keys (under its prefix), and finds token hashes that
  are neither final nor in a queue nor in an inflight set, atomically (one Lua call).
- :class:`DurableRedis` is a redis-server on its append-only file as ``tokengate up`` and
  ``docker-compose.yml`` ship it (``appendfsync everysec``), with a crash and restart.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc
import msgpack
import redis
from tokengate.shared.auth import call_metadata
from tokengate.shared.channel import CHANNEL_OPTIONS
from tokengate.shared.client import ClusterClient
from tokengate.shared.redis_server import RedisServer
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc

CLIENT_METADATA = "tokengate-client"
FINAL = frozenset({"completed", "failed", "killed"})
STATE_NAMES = {pb.COMPLETED: "completed", pb.FAILED: "failed", pb.KILLED: "killed"}


def call(token_id: str, task: str, *args: Any, weight: str = "", not_idempotent: bool = False,
         **kwargs: Any) -> pb.TaskItem:
    """A TaskItem as any gRPC client builds it: a registered name, msgpack [args, kwargs]."""
    return pb.TaskItem(token_id=token_id, task=task, payload=msgpack.packb([list(args), kwargs]),
                       weight=weight, not_idempotent=not_idempotent)


class Gate:
    """A file that gated tasks poll for; closed until :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def open(self) -> None:
        self.path.touch()


class SideEffects:
    """Runs per key, from the lines ``record``/``gated`` tasks append to ``folder/key``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder

    def __str__(self) -> str:
        return str(self.folder)

    def pids(self, key: str) -> list[int]:
        path = self.folder / key
        if not path.exists():
            return []
        return [int(line) for line in path.read_text().split()]

    def count(self, key: str) -> int:
        return len(self.pids(key))

    def counts(self) -> dict[str, int]:
        return {path.name: len(path.read_text().split()) for path in self.folder.iterdir()}

    def twice(self) -> dict[str, list[int]]:
        """Keys that ran more than once, with the pids of their runs."""
        return {key: self.pids(key) for key, n in self.counts().items() if n > 1}


class RawSession:
    """One ``Gateway.Session`` stream driven by hand; logs every reply."""

    def __init__(self, address: str, token: str, *, client_id: str) -> None:
        self.client_id = client_id
        self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._requests: queue.SimpleQueue[pb.ClientFrame | None] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self.accepted: Counter[str] = Counter()
        self.rejected: dict[str, list[pb.Rejected]] = defaultdict(list)
        self.results: dict[str, list[pb.ResultItem]] = defaultdict(list)
        self.error: grpc.RpcError | None = None
        self.ended = False
        metadata = (*call_metadata(token), (CLIENT_METADATA, client_id))
        self._call = rpc.GatewayStub(self._channel).Session(self._frames(), metadata=metadata)
        self._reader = threading.Thread(target=self._read, name="raw-session", daemon=True)
        self._reader.start()

    def _frames(self) -> Iterator[pb.ClientFrame]:
        while (frame := self._requests.get()) is not None:
            yield frame

    def _read(self) -> None:
        try:
            for reply in self._call:
                with self._lock:
                    self.accepted.update(reply.accepted)
                    for rejected in reply.rejected:
                        self.rejected[rejected.token_id].append(rejected)
                    for result in reply.results:
                        self.results[result.token_id].append(result)
                    self._lock.notify_all()
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            with self._lock:
                self.ended = True
                self._lock.notify_all()

    # -- sending -------------------------------------------------------------------------

    def send(self, frame: pb.ClientFrame) -> None:
        self._requests.put(frame)

    def submit(self, items: Iterable[pb.TaskItem], *, resubmit: bool = False) -> None:
        self.send(pb.ClientFrame(submit=list(items), resubmit=resubmit))

    def watch(self, ids: Iterable[str]) -> None:
        self.send(pb.ClientFrame(watch=list(ids)))

    # -- waiting -------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate`` (called under the lock) holds; fail with a summary."""
        with self._lock:
            if not self._lock.wait_for(lambda: predicate() or self.ended, timeout):
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"{self.summary()}")
            if not predicate():
                raise AssertionError(f"the session ended ({self._ending()}) before {what}; "
                                     f"{self.summary()}")

    def wait_ended(self, timeout: float = 15.0) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: self.ended, timeout):
                raise AssertionError(f"the session did not end within {timeout}s")

    def wait_answered(self, ids: Iterable[str], timeout: float = 30.0) -> None:
        ids = list(ids)
        self.wait(lambda: all(self.accepted[i] or self.rejected.get(i) for i in ids), timeout,
                  f"an ack or a rejection for each of {len(ids)} ids")

    def wait_results(self, ids: Iterable[str], timeout: float = 30.0) -> None:
        ids = list(ids)
        self.wait(lambda: all(self.results.get(i) or self.rejected.get(i) for i in ids),
                  timeout, f"an outcome for each of {len(ids)} ids")

    def _ending(self) -> str:
        if self.error is None:
            return "closed by the gateway"
        return f"{self.error.code()} {self.error.details()}"

    def summary(self) -> str:
        """What the session has seen so far (call under the lock, or when quiet)."""
        stream = f"ended: {self._ending()}" if self.ended else "open"
        return (f"acked {len(self.accepted)} ids, rejected {len(self.rejected)}, results for "
                f"{len(self.results)}, stream {stream}")

    # -- reading -------------------------------------------------------------------------

    def outcomes(self) -> dict[str, list[pb.ResultItem]]:
        with self._lock:
            return {token_id: list(items) for token_id, items in self.results.items()}

    def state(self, token_id: str) -> str:
        """The final state this session was told, as Redis names it ("" if none)."""
        with self._lock:
            items = self.results.get(token_id)
            return STATE_NAMES.get(items[-1].state, "?") if items else ""

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._reader.join(5)
        self._channel.close()


class RecordingClient(ClusterClient):
    """The Python client, logging every outcome the gateway pushed for each token id."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen_lock = threading.Lock()
        self.seen: dict[str, list[str]] = defaultdict(list)  # id -> outcomes in order

    def _on_reply(self, reply: pb.ClientReply) -> None:
        with self._seen_lock:
            for result in reply.results:
                name = STATE_NAMES.get(result.state, "?")
                self.seen[result.token_id].append(
                    name if not result.error_type else f"{name}:{result.error_type}")
        super()._on_reply(reply)
        with self._seen_lock, self._lock:  # a rejected call still outstanding is offered again
            for rejected in reply.rejected:
                if rejected.token_id not in self._outstanding:
                    self.seen[rejected.token_id].append(f"rejected:{rejected.error_type}")

    def outcomes(self) -> dict[str, list[str]]:
        with self._seen_lock:
            return {token_id: list(seen) for token_id, seen in self.seen.items()}


_ORPHANS = """
local p = ARGV[1]
local placed = {}
for _, q in ipairs(redis.call('KEYS', p .. 'q:*')) do
  for _, id in ipairs(redis.call('LRANGE', q, 0, -1)) do placed[id] = true end
end
for _, s in ipairs(redis.call('KEYS', p .. 'inflight:*')) do
  for _, id in ipairs(redis.call('SMEMBERS', s)) do placed[id] = true end
end
local final = {completed = true, failed = true, killed = true}
local total, orphans, sample = 0, 0, {}
for _, key in ipairs(redis.call('KEYS', p .. 't:*')) do
  total = total + 1
  local s = redis.call('HGET', key, 's')
  local id = string.sub(key, #p + 3)
  if not (s and final[s]) and not placed[id] then
    orphans = orphans + 1
    if #sample < 10 then sample[#sample + 1] = id .. '=' .. tostring(s) end
  end
end
return {total, orphans, sample}
"""


class RedisView:
    """Read-only views of one cluster's Redis keys."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=10)
        self._orphans = self.client.register_script(_ORPHANS)

    def state(self, token_id: str) -> str | None:
        value = self.client.hget(f"{self.prefix}t:{token_id}", "s")
        return None if value is None else value.decode()

    def states(self, ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(ids)
        pipe = self.client.pipeline(transaction=False)
        for token_id in ids:
            pipe.hget(f"{self.prefix}t:{token_id}", "s")
        return {token_id: None if value is None else value.decode()
                for token_id, value in zip(ids, pipe.execute(), strict=True)}

    def inflight(self, agent: str) -> set[str]:
        return {m.decode() for m in self.client.smembers(f"{self.prefix}inflight:{agent}")}

    def orphans(self) -> tuple[int, int, list[str]]:
        """(token hashes, how many are orphans, a sample "id=state") in one atomic look."""
        total, orphans, sample = self._orphans(args=[self.prefix])
        return int(total), int(orphans), [s.decode() for s in sample]

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.close()


class DurableRedis(RedisServer):
    """A redis-server on its AOF with the shipped setting, ``appendfsync everysec``: each write
    reaches the kernel before its reply, so a SIGKILL of the process loses nothing it
    acknowledged (a machine crash could lose up to about the last second: docs/cluster.md)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(directory=str(directory), appendonly=True)

    def crash_and_restart(self) -> None:
        """SIGKILL redis-server, then start it again on the same port from its AOF."""
        self.crash()
        self.restart()

    def crash(self) -> None:
        """SIGKILL redis-server; it stays down until :meth:`restart`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        """Start redis-server again on its port, from its AOF."""
        port = self.port
        self.start()  # redis binds with SO_REUSEADDR: the dead server's port is free at once
        if self.port != port:
            raise AssertionError(f"redis-server came back on port {self.port}, not {port}")

    def freeze(self) -> None:
        """SIGSTOP redis-server: calls to it block (no error) until :meth:`thaw`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class SteadyLoad:
    """Calls of ``cluster_tasks.record`` (each taking ``seconds``) from one client at about
    ``rate`` a second, from a thread of its own, until :meth:`stop`; each call's key is its
    result, and each run leaves a line in ``effects``. ``tokens`` (under ``_lock``, a
    Condition) lets a test wait for progress (:meth:`wait_submitted`)."""

    def __init__(self, client: ClusterClient, effects: SideEffects, *, rate: float = 150.0,
                 task: str = "cluster_tasks:record", seconds: float = 0.0) -> None:
        self.client = client
        self.effects = effects
        self.rate = rate
        self.task = task
        self.seconds = seconds  # how long each call takes
        self.tokens: dict[str, Any] = {}  # key -> TaskToken
        self.errors: list[BaseException] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(1.0 / self.rate):
            key = f"call-{n}"
            try:
                token = self.client.submit_by_name(
                    self.task, (str(self.effects.folder), key, self.seconds))
            except Exception as exc:  # a refused submission is a finding, not a crash
                self.errors.append(exc)
                continue
            with self._lock:
                self.tokens[key] = token
                self._lock.notify_all()
            n += 1

    def wait_submitted(self, more: int, timeout: float = 30.0) -> None:
        """Wait until ``more`` calls beyond those submitted so far have gone out."""
        with self._lock:
            target = len(self.tokens) + more
            if not self._lock.wait_for(lambda: len(self.tokens) >= target, timeout):
                raise AssertionError(f"the load submitted only {len(self.tokens)} of {target} "
                                     f"calls in {timeout}s; errors {self.errors[:3]}")

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(10)
        with self._lock:
            return dict(self.tokens)


class WireAgent:
    """An agent link spoken by hand on the wire: the test decides every frame it sends (and
    may resend one on a new stream, as an agent does after a reconnect); every dispatch frame
    it reads is logged under ``_lock`` (a Condition), per stream."""

    def __init__(self, address: str, token: str, name: str, tasks: list[str], *,
                 credits: dict[str, int] | None = None) -> None:
        self.address = address
        self.token = token
        self.name = name
        self.tasks = tasks
        self.credits = credits or {"heavy": 10, "medium": 10, "light": 10}
        self.incarnation = uuid.uuid4().hex
        self._lock = threading.Condition()
        self.frames: list[pb.DispatchFrame] = []  # read on the current stream
        self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._requests: queue.SimpleQueue[pb.AgentFrame | None] | None = None
        self._call: Any = None

    def connect(self, held: Iterable[str] = ()) -> WireAgent:
        """Open a new stream (closing the last one) with a hello naming ``held``."""
        self.close_stream()
        hello = pb.Hello(name=self.name, incarnation=self.incarnation, host="wire-agent",
                         pid=os.getpid(), tasks=self.tasks, held=list(held),
                         topology=msgpack.packb({"workers": 1, "mailbox_capacity": 10}),
                         task_info=[pb.TaskInfo(name=t, idempotent=True) for t in self.tasks])
        requests: queue.SimpleQueue[pb.AgentFrame | None] = queue.SimpleQueue()
        requests.put(pb.AgentFrame(hello=hello, credits=[
            pb.Credit(weight=w, count=n) for w, n in self.credits.items()]))
        with self._lock:
            self.frames = []
        self._requests = requests
        self._call = rpc.GatewayStub(self._channel).AgentLink(
            iter(requests.get, None), metadata=call_metadata(self.token))
        threading.Thread(target=self._read, args=(self._call,), daemon=True).start()
        return self

    def _read(self, call: Any) -> None:
        with contextlib.suppress(grpc.RpcError):
            for frame in call:
                with self._lock:
                    if call is self._call:
                        self.frames.append(frame)
                        self._lock.notify_all()

    def send(self, frame: pb.AgentFrame) -> None:
        assert self._requests is not None
        self._requests.put(frame)

    def wait(self, predicate: Callable[[list[pb.DispatchFrame]], Any], timeout: float,
             what: str) -> Any:
        with self._lock:
            if not self._lock.wait_for(lambda: predicate(self.frames), timeout):
                raise AssertionError(f"wire agent {self.name}: no {what} in {timeout}s")
            return predicate(self.frames)

    def wait_tasks(self, count: int, timeout: float = 15.0) -> list[pb.TaskItem]:
        return self.wait(lambda fs: [t for f in fs for t in f.tasks][:count]
                         if sum(len(f.tasks) for f in fs) >= count else None, timeout,
                         f"{count} tasks")

    def wait_ack(self, seq: int, timeout: float = 15.0) -> None:
        self.wait(lambda fs: any(f.ack_seq >= seq for f in fs), timeout, f"ack of frame {seq}")

    def close_stream(self) -> None:
        if self._requests is not None:
            self._requests.put(None)
            self._call.cancel()
            self._requests = self._call = None

    def close(self) -> None:
        self.close_stream()
        self._channel.close()
