"""The gateway's live streams: one object per connected agent and per client session.

Each stream has one outbox (a ``SimpleQueue``) filled by any gateway thread and drained by
the stream's response generator, which coalesces everything waiting into one frame: sent at
once when idle, batched under load. A closed connection refuses new items, so a caller learns
at once that a dispatch did not go out.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tokengate.shared import framing
from tokengate.shared.rpc import tokengate_pb2 as pb

_CLOSE = object()
MAX_FRAME_ITEMS = 2000
# A frame that would carry only acknowledgements waits this long for something to ride
# with (a dispatch, a result): acks bound memory, not latency, so they need no frame alone.
ACK_LINGER = 0.003


class AgentConn:
    """One agent's registration and link. Credits live in the gateway's credit book."""

    def __init__(self, hello: pb.Hello) -> None:
        self.name = hello.name
        self.incarnation = hello.incarnation
        self.host = hello.host
        self.pid = hello.pid
        self.topology = bytes(hello.topology)
        self.tasks = frozenset(hello.tasks)
        self.snapshot = b""
        self.grant: dict[str, int] = {}  # the credits of its hello: its full free capacity
        self.last_seen = time.monotonic()
        self.last_seen_wall = time.time()
        self.connected = True
        self.leaving = False  # the agent said it is stopping
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards connected against sends racing a close

    def touch(self) -> None:
        self.last_seen = time.monotonic()
        self.last_seen_wall = time.time()

    def send_tasks(self, items: list[pb.TaskItem]) -> bool:
        with self._lock:
            if not self.connected:
                return False
            self._outbox.put(("tasks", items))
        return True

    def send_kill(self, token_id: str) -> bool:
        with self._lock:
            if not self.connected:
                return False
            self._outbox.put(("kill", token_id))
        return True

    def send_ack(self, seq: int) -> None:
        with self._lock:
            if self.connected:
                self._outbox.put(("ack", seq))

    def close(self) -> None:
        with self._lock:
            if not self.connected:
                return
            self.connected = False
            self._outbox.put(_CLOSE)

    def frames(self) -> Iterator[pb.DispatchFrame]:
        outbox = self._outbox
        while True:
            item = outbox.get()
            if item is _CLOSE:
                return
            frame = pb.DispatchFrame()
            n = size = 0
            while True:
                kind, value = item
                if kind == "tasks":
                    frame.tasks.extend(value)
                    n += len(value)
                    size += sum(len(task.payload) for task in value)
                elif kind == "kill":
                    frame.kill.append(value)
                else:
                    frame.ack_seq = max(frame.ack_seq, value)
                if n >= MAX_FRAME_ITEMS or size >= framing.FRAME_SOFT_LIMIT:
                    break
                try:
                    item = outbox.get(timeout=ACK_LINGER) if not (n or frame.kill) \
                        else outbox.get_nowait()
                except queue.Empty:
                    break
                if item is _CLOSE:
                    yield frame
                    return
            yield frame


class ClientConn:
    """One client session: acks and results pushed down its stream."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.id = uuid.uuid4().hex  # stamped on its tokens, so results find their way back
        self.open = True
        self.owed = 0  # results this session still expects (accepted and watched, not sent)
        self.half_closed = False  # the client sent its last frame; close once all resolved
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def expect(self, count: int) -> None:
        self.owed += count

    def send(self, accepted: list[str] | None = None, rejected: list[pb.Rejected] | None = None,
             results: list[pb.ResultItem] | None = None) -> None:
        if not self.open:
            return
        self._outbox.put((accepted, rejected, results))
        self.owed -= len(results or ()) + len(rejected or ())
        if self.half_closed and self.owed <= 0:
            self.close()

    def finish_requests(self) -> None:
        """The client half-closed: answer what it is still owed, then end the stream."""
        self.half_closed = True
        if self.owed <= 0:
            self.close()

    def close(self) -> None:
        if self.open:
            self.open = False
            self._outbox.put(_CLOSE)

    def frames(self) -> Iterator[pb.ClientReply]:
        outbox = self._outbox
        while True:
            item = outbox.get()
            if item is _CLOSE:
                return
            reply = pb.ClientReply()
            n = size = 0
            while True:
                accepted, rejected, results = item
                if accepted:
                    reply.accepted.extend(accepted)
                if rejected:
                    reply.rejected.extend(rejected)
                if results:
                    reply.results.extend(results)
                    n += len(results)
                    size += sum(framing.result_bytes(result) for result in results)
                if n + len(reply.accepted) >= MAX_FRAME_ITEMS or size >= framing.FRAME_SOFT_LIMIT:
                    break
                try:
                    item = outbox.get(timeout=ACK_LINGER) if not (n or reply.rejected) \
                        else outbox.get_nowait()
                except queue.Empty:
                    break
                if item is _CLOSE:
                    yield reply
                    return
            yield reply
