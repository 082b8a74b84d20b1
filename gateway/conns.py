"""The gateway's live streams: one object per connected agent and per client session.

Each stream has one outbox filled by any gateway thread and drained by the stream's response
generator (on its gRPC thread), which coalesces what waits into one frame: sent at once when
idle, batched under load. A closed connection refuses new items, so a caller learns at once
that a dispatch did not go out, and drops what it still held unsent.

A client session's outbox is bounded in bytes: a client that stops reading is cut off with
``SessionTooSlow`` instead of growing the gateway; its results stay in Redis for it to fetch
by watching them from a new session. ``_lock`` of each connection guards its open flag, its
counters and the outbox's byte count against sends racing a close.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import msgpack
from tokengate.shared import framing
from tokengate.shared.rpc import tokengate_pb2 as pb

MAX_FRAME_ITEMS = 2000
# A frame that would carry only acknowledgements waits this long for something to ride with
# (a dispatch, a result): acks bound memory, not latency, so they need no frame alone. A
# client's acks free its submit window, so they wait less than an agent's.
ACK_LINGER = 0.003
ID_BYTES = 64  # what an acknowledged or refused id costs in a session's outbox, roughly
AGENT_ACK_LINGER = 0.05


@dataclass(frozen=True, slots=True)
class _Tasks:
    items: list[pb.TaskItem]


@dataclass(frozen=True, slots=True)
class _Control:
    """Anything else a dispatch frame carries: acks, kills, revocations, commands."""

    ack_seq: int = 0
    seen_seq: int = 0
    kill: str = ""
    revoke: tuple[str, ...] = ()
    command: pb.Command | None = None
    lease: float = 0.0


_CLOSE = object()


class AgentConn:
    """One agent's registration and link. Its credits live in the dispatch's book."""

    def __init__(self, hello: pb.Hello) -> None:
        self.name = hello.name
        self.incarnation = hello.incarnation
        self.host = hello.host
        self.pid = hello.pid
        self.topology = bytes(hello.topology)
        self.workers = _workers(self.topology)
        self.tasks: dict[str, pb.TaskInfo] = {info.name: info for info in hello.task_info}
        for name in hello.tasks:
            self.tasks.setdefault(name, pb.TaskInfo(name=name, idempotent=True))
        self.snapshot = b""
        self.stuck = 0     # workers abandoned to a call past its time limit
        self.blocked = 0   # workers running a call past the agent's stuck_after
        self.last_seen = time.monotonic()
        self.last_seen_wall = time.time()
        self.connected = True
        self.leaving = False  # the agent said it is stopping
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def touch(self) -> None:
        self.last_seen = time.monotonic()
        self.last_seen_wall = time.time()

    def _put(self, entry: Any) -> bool:
        with self._lock:
            if not self.connected:
                return False
            self._outbox.put(entry)
        return True

    def send_tasks(self, items: list[pb.TaskItem]) -> bool:
        return self._put(_Tasks(items))

    def send_kill(self, token_id: str) -> bool:
        return self._put(_Control(kill=token_id))

    def send_command(self, command: pb.Command) -> bool:
        return self._put(_Control(command=command))

    def send_ack(self, seq: int) -> None:
        self._put(_Control(ack_seq=seq))

    def send_seen(self, seq: int) -> None:
        self._put(_Control(seen_seq=seq))

    def welcome(self, revoked: list[str], lease: float) -> None:
        """The first frame after registering: what to drop, and the lease it starts work on."""
        self._put(_Control(revoke=tuple(revoked), lease=lease))

    def close(self) -> list[pb.TaskItem]:
        """Refuse further sends; return the tasks that were queued here and never sent."""
        with self._lock:
            if not self.connected:
                return []
            self.connected = False
            unsent: list[pb.TaskItem] = []
            while True:
                try:
                    entry = self._outbox.get_nowait()
                except queue.Empty:
                    break
                if isinstance(entry, _Tasks):
                    unsent.extend(entry.items)
            self._outbox.put(_CLOSE)
        return unsent

    def frames(self) -> Iterator[pb.DispatchFrame]:
        outbox = self._outbox
        while True:
            entry = outbox.get()
            if entry is _CLOSE:
                return
            frame = pb.DispatchFrame()
            n = size = 0
            while True:
                if isinstance(entry, _Tasks):
                    frame.tasks.extend(entry.items)
                    n += len(entry.items)
                    size += sum(len(task.payload) for task in entry.items)
                else:
                    _add_control(frame, entry)
                if n >= MAX_FRAME_ITEMS or size >= framing.FRAME_SOFT_LIMIT:
                    break
                quiet = not (n or frame.kill or frame.revoke or frame.commands or frame.lease)
                try:
                    entry = outbox.get(timeout=AGENT_ACK_LINGER) if quiet \
                        else outbox.get_nowait()
                except queue.Empty:
                    break
                if entry is _CLOSE:
                    yield frame
                    return
            yield frame


def _workers(topology: bytes) -> int:
    """The worker count an agent's hello reports (0 if it does not say)."""
    try:
        workers = msgpack.unpackb(topology).get("workers") if topology else 0
    except (ValueError, AttributeError, msgpack.UnpackException):
        return 0
    return workers if isinstance(workers, int) and workers > 0 else 0


def _add_control(frame: pb.DispatchFrame, entry: _Control) -> None:
    frame.ack_seq = max(frame.ack_seq, entry.ack_seq)
    frame.seen_seq = max(frame.seen_seq, entry.seen_seq)
    if entry.kill:
        frame.kill.append(entry.kill)
    if entry.revoke:
        frame.revoke.extend(entry.revoke)
    if entry.command is not None:
        frame.commands.append(entry.command)
    if entry.lease:
        frame.lease = entry.lease


class ClientConn:
    """One client session: acks and results pushed down its stream, bounded in bytes."""

    def __init__(self, peer: str, client_id: str = "", *, operator: bool = False,
                 max_bytes: int = 8 * 1024 * 1024) -> None:
        self.peer = peer
        self.session = uuid.uuid4().hex
        self.client_id = client_id or self.session  # a raw client without one owns its session
        self.operator = operator
        self.max_bytes = max_bytes
        self.open = True
        self.too_slow = False
        self._owed = 0       # results this session still expects (accepted, not yet sent)
        self._queued = 0     # bytes of results waiting in the outbox
        self._half_closed = False
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def expect(self, count: int) -> None:
        with self._lock:
            self._owed += count

    def send(self, accepted: list[str] | None = None, rejected: list[pb.Rejected] | None = None,
             results: list[pb.ResultItem] | None = None, *, counted: bool = True) -> bool:
        """Queue a reply; False if the session is closed (or just overflowed and closed).

        Results, and rejections of calls it was owed (``counted``), settle what the session
        is owed; rejections of calls never admitted (bad items, GatewayBusy) do not.
        """
        size = sum(framing.result_bytes(r) for r in results) if results else 0
        size += ID_BYTES * (len(accepted or ()) + len(rejected or ()))
        close = False
        with self._lock:
            if not self.open:
                return False
            if self._queued + size > self.max_bytes:
                self.too_slow = close = True
            else:
                self._queued += size
                self._outbox.put((accepted, rejected, results, size))
                self._owed -= len(results or ()) + (len(rejected or ()) if counted else 0)
                close = self._half_closed and self._owed <= 0
        if close:
            self.close(discard=self.too_slow)
        return not self.too_slow

    def finish_requests(self) -> None:
        """The client half-closed: answer what it is still owed, then end the stream."""
        with self._lock:
            self._half_closed = True
            done = self._owed <= 0
        if done:
            self.close()

    def close(self, *, discard: bool = False) -> None:
        """End the stream after what is queued; ``discard``: drop that too (the client is
        gone, or too slow to read it: its results stay in Redis)."""
        with self._lock:
            if not self.open:
                return
            self.open = False
            while discard:
                try:
                    self._outbox.get_nowait()
                except queue.Empty:
                    break
            if discard:
                self._queued = 0
            self._outbox.put(_CLOSE)

    def _taken(self, size: int) -> None:
        with self._lock:
            self._queued -= size

    def frames(self, context: grpc.ServicerContext | None = None) -> Iterator[pb.ClientReply]:
        outbox = self._outbox
        while True:
            entry = outbox.get()
            if entry is _CLOSE:
                self._end(context)
                return
            reply = pb.ClientReply()
            n = size = 0
            while True:
                accepted, rejected, results, nbytes = entry
                self._taken(nbytes)
                if accepted:
                    reply.accepted.extend(accepted)
                if rejected:
                    reply.rejected.extend(rejected)
                if results:
                    reply.results.extend(results)
                    n += len(results)
                    size += nbytes
                if n + len(reply.accepted) >= MAX_FRAME_ITEMS or size >= framing.FRAME_SOFT_LIMIT:
                    break
                quiet = not (n or reply.rejected)
                try:
                    entry = outbox.get(timeout=ACK_LINGER) if quiet else outbox.get_nowait()
                except queue.Empty:
                    break
                if entry is _CLOSE:
                    yield reply
                    self._end(context)
                    return
            yield reply

    def _end(self, context: grpc.ServicerContext | None) -> None:
        if self.too_slow and context is not None:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          "SessionTooSlow: this session did not read its results fast enough "
                          f"(more than {self.max_bytes} bytes waiting); they are kept in Redis: "
                          "watch them again from a new session")

