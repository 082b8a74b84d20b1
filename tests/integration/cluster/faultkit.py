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
- :class:`DurableRedis` is a redis-server with an AOF fsynced on every write, so a SIGKILL of
  it loses nothing it acknowledged.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
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
            for rejected in reply.rejected:
                if rejected.error_type != "GatewayBusy":  # busy: offered again, not an outcome
                    self.seen[rejected.token_id].append(f"rejected:{rejected.error_type}")
        super()._on_reply(reply)

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
    """A redis-server whose AOF is fsynced before each reply: a SIGKILL loses nothing acked."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(directory=str(directory), appendonly=True)

    def _command(self) -> list[str]:
        return [*super()._command(), "--appendfsync", "always"]

    def crash_and_restart(self) -> None:
        """SIGKILL redis-server, then start it again on the same port from its AOF."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        port = self.port
        self.start()  # redis binds with SO_REUSEADDR: the dead server's port is free at once
        if self.port != port:
            raise AssertionError(f"redis-server came back on port {self.port}, not {port}")
