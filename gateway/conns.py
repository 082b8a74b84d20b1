"""The gateway's live streams: one object per connected agent and per client session.

Owned by the event loop: everything here is read and written from loop callbacks and
coroutines only, so nothing takes a lock. Each stream has one outbox, filled by the gateway's
owners and drained by the stream's writer coroutine (:meth:`AgentConn.frames`,
:meth:`ClientConn.frames`), which coalesces what waits into one frame: sent at once when the
writer is idle, batched while it writes (what the loop queued meanwhile rides together). A
closed connection refuses new items, so a caller learns at once that a dispatch did not go
out, and gets back what it still held unsent.

A client session owns its delivery: the ids it is owed an answer for (:meth:`ClientConn.expect`,
settled by each result or rejection sent for them, whoever sends it), so a session that
half-closed ends once it has answered them all. Its outbox is bounded in bytes: a client that
stops reading is cut off with ``SessionTooSlow`` instead of growing the gateway; its results
stay in Redis for it to fetch by watching them from a new session.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
from tokengate.gateway import needs, storage
from tokengate.gateway.aio import Signal
from tokengate.shared import framing, labels
from tokengate.shared.errors import SnapshotError
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.snapshot import NodeShape

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


class Outbox:
    """Entries waiting for one stream's writer, in order."""

    def __init__(self) -> None:
        self.entries: deque[Any] = deque()
        self._wake = Signal()

    def put(self, entry: Any) -> None:
        self.entries.append(entry)
        self._wake.set()

    async def ready(self) -> None:
        """Until something waits."""
        while not self.entries:
            await self._wake.wait()

    async def linger(self, seconds: float) -> None:
        """Until something more waits, or ``seconds`` passed."""
        if not self.entries:
            await self._wake.wait(seconds)


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
        self.labels: dict[str, str] = dict(labels.parse(hello.labels))  # checked by the registry
        self.offer = needs.Offer(frozenset(self.tasks), self.labels)  # what it may be given
        self.storage = storage.parse(hello.storage)  # checked by the registry
        self.snapshot = b""
        self.stuck = 0     # workers abandoned to a call past its time limit
        self.blocked = 0   # workers running a call past the agent's stuck_after
        self.last_seen = time.monotonic()
        self.last_seen_wall = time.time()
        self.connected = True
        self.leaving = False  # the agent said it is stopping
        self.left = False     # its link ended, and the gateway was told (the server's flag)
        self.outbox = Outbox()

    def touch(self) -> None:
        self.last_seen = time.monotonic()
        self.last_seen_wall = time.time()

    def _put(self, entry: Any) -> bool:
        if not self.connected:
            return False
        self.outbox.put(entry)
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
        if not self.connected:
            return []
        self.connected = False
        entries = self.outbox.entries
        unsent = [item for entry in entries if isinstance(entry, _Tasks) for item in entry.items]
        entries.clear()
        self.outbox.put(_CLOSE)
        return unsent

    async def frames(self) -> AsyncIterator[pb.DispatchFrame]:
        """The link's frames, until it closes."""
        outbox = self.outbox
        while True:
            await outbox.ready()
            frame = pb.DispatchFrame()
            closed, full = self._fill(frame)
            if not (closed or full) and _quiet(frame):
                await outbox.linger(AGENT_ACK_LINGER)
                closed, _ = self._fill(frame)
            if not _quiet(frame) or frame.ack_seq or frame.seen_seq:
                yield frame
            if closed:
                return

    def _fill(self, frame: pb.DispatchFrame) -> tuple[bool, bool]:
        """Move waiting entries into ``frame``; (closed, full)."""
        entries = self.outbox.entries
        n = len(frame.tasks)
        size = 0
        while entries:
            entry = entries.popleft()
            if entry is _CLOSE:
                return True, False
            if isinstance(entry, _Tasks):
                frame.tasks.extend(entry.items)
                n += len(entry.items)
                size += sum(len(task.payload) for task in entry.items)
            else:
                _add_control(frame, entry)
            if n >= MAX_FRAME_ITEMS or size >= framing.FRAME_SOFT_LIMIT:
                return False, True
        return False, False


def _quiet(frame: pb.DispatchFrame) -> bool:
    """Only acknowledgements: worth holding back a moment for something to ride with."""
    return not (frame.tasks or frame.kill or frame.revoke or frame.commands or frame.lease)


def _workers(topology: bytes) -> int:
    """The worker count an agent's hello reports, read through its schema (:class:`NodeShape`);
    0 if it does not say, or does not fit."""
    if not topology:
        return 0
    try:
        workers = NodeShape.from_wire(msgpack.unpackb(topology)).workers
    except (ValueError, msgpack.UnpackException, SnapshotError):
        return 0
    return workers if workers is not None and workers > 0 else 0


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
        self._owed: set[str] = set()  # ids this session still owes its client an answer for
        self.watching: set[str] = set()  # ids it watches (the results owner keeps this)
        self._queued = 0     # bytes of replies waiting in the outbox
        self._half_closed = False
        self.last_frame_at = 0.0  # loop time of the client's last frame (the server sets it)
        self.outbox = Outbox()

    @property
    def requests_done(self) -> bool:
        """The client half-closed its side: it sends nothing more."""
        return self._half_closed

    def expect(self, ids: Iterable[str]) -> None:
        """The client will be answered for ``ids`` (a result, or a rejection) here."""
        self._owed.update(ids)

    def send(self, accepted: list[str] | None = None, rejected: list[pb.Rejected] | None = None,
             results: list[pb.ResultItem] | None = None) -> bool:
        """Queue a reply; False if the session is closed (or just overflowed and closed).
        Results and rejections settle what the session owes for their ids."""
        if not self.open:
            return False
        size = sum(framing.result_bytes(r) for r in results) if results else 0
        size += ID_BYTES * (len(accepted or ()) + len(rejected or ()))
        if self._queued + size > self.max_bytes:
            self.too_slow = True
            self.close(discard=True)
            return False
        self._queued += size
        self.outbox.put((accepted, rejected, results, size))
        owed = self._owed
        if owed:
            for result in results or ():
                owed.discard(result.token_id)
            for rejection in rejected or ():
                owed.discard(rejection.token_id)
        if self._half_closed and not owed:
            self.close()
        return True

    def finish_requests(self) -> None:
        """The client half-closed: answer what it is still owed, then end the stream."""
        self._half_closed = True
        if not self._owed:
            self.close()

    def close(self, *, discard: bool = False) -> None:
        """End the stream after what is queued; ``discard``: drop that too (the client is
        gone, or too slow to read it: its results stay in Redis)."""
        if not self.open:
            return
        self.open = False
        if discard:
            self.outbox.entries.clear()
            self._queued = 0
        self.outbox.put(_CLOSE)

    async def frames(self) -> AsyncIterator[pb.ClientReply]:
        """The session's replies, until it closes."""
        outbox = self.outbox
        while True:
            await outbox.ready()
            reply = pb.ClientReply()
            closed, full = self._fill(reply)
            if not (closed or full) and not (reply.results or reply.rejected):
                await outbox.linger(ACK_LINGER)  # acks alone: let a result ride along
                closed, _ = self._fill(reply)
            if reply.accepted or reply.rejected or reply.results:
                yield reply
            if closed:
                return

    def _fill(self, reply: pb.ClientReply) -> tuple[bool, bool]:
        entries = self.outbox.entries
        n = size = 0
        while entries:
            entry = entries.popleft()
            if entry is _CLOSE:
                return True, False
            accepted, rejected, results, nbytes = entry
            self._queued -= nbytes
            if accepted:
                reply.accepted.extend(accepted)
            if rejected:
                reply.rejected.extend(rejected)
            if results:
                reply.results.extend(results)
                n += len(results)
                size += nbytes
            if n + len(reply.accepted) >= MAX_FRAME_ITEMS or size >= framing.FRAME_SOFT_LIMIT:
                return False, True
        return False, False

    def too_slow_message(self) -> str:
        return ("SessionTooSlow: this session did not read its results fast enough (more than "
                f"{self.max_bytes} bytes waiting); they are kept in Redis: watch them again "
                "from a new session")
