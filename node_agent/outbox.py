"""What the agent's link sends up, as typed messages, and the sender that frames them.

Any thread puts messages on the link's outbox (a ``SimpleQueue``): workers put
:class:`Finished`, the link thread :class:`CreditsDue`, the command
threads :class:`Replied`. The sender, which runs on the current stream's gRPC request thread,
turns each batch it drains into at most one frame. Starts are not messages: a worker records
its token's start with the agent's held tokens (``HeldTokens.started``, no wake-up), and the
sender takes the reports of those still running ``START_LINGER`` after they began
(``HeldTokens.starts_due``), with whatever frame it sends next (at the latest the next
heartbeat).

:class:`Sender` is the sender's state (sequence numbers, the frames with results the gateway
has not stored yet, when each frame left); it is guarded by the link's ``_send_lock`` and
belongs to one stream generation at a time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack
from tokengate.shared import framing, wire
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight

# A start is reported only if the token still runs this long after it began: a short task
# is reported by its result alone, and costs no frame and no Redis write for its start.
START_LINGER = 0.02
MAX_FRAME_RESULTS = 1000
SENT_TIMES_KEPT = 4096


@dataclass(frozen=True, slots=True)
class Finished:
    weight: Weight
    item: pb.ResultItem


@dataclass(frozen=True, slots=True)
class Replied:
    reply: pb.CommandReply


@dataclass(frozen=True, slots=True)
class CreditsDue:
    """The gateway's view of our capacity is lower than the truth: report it."""


@dataclass(frozen=True, slots=True)
class Returned:
    """We are leaving and never started these: the gateway may give them to others."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Leaving:
    """We are stopping: the gateway should send nothing more."""


@dataclass(frozen=True, slots=True)
class Wake:
    """Nothing to send: wake the sender (a stream ended, or we stop)."""


Message = Finished | Replied | CreditsDue | Returned | Leaving | Wake
# (due, ids finishing in this frame) -> the start reports of held tokens begun by ``due``
StartsDue = Callable[[float, Iterable[str]], list[pb.Started]]


def message_bytes(message: Message) -> int:
    return framing.result_bytes(message.item) if isinstance(message, Finished) else 0


@dataclass(slots=True)
class Capacity:
    """What we last told the gateway we can take: per weight, after receiving this many."""

    free: dict[Weight, int] = field(default_factory=dict)
    received: int = 0

    def view(self, received_now: int) -> dict[Weight, int]:
        """The gateway's conservative view now: the report minus what arrived since."""
        arrived = received_now - self.received
        return {w: n - arrived for w, n in self.free.items()}


class Sender:
    """The state of the frames going up one stream (see the module docstring)."""

    def __init__(self, capacity: Callable[[], tuple[int, dict[Weight, int]]],
                 status: Callable[[], dict[str, Any]], starts_due: StartsDue,
                 snapshot_every: float = 1.0) -> None:
        self._capacity = capacity   # () -> (received, free per weight), read in that order
        self._status = status
        self._starts_due = starts_due
        self._snapshot_every = snapshot_every
        self.unacked: dict[int, list[pb.ResultItem]] = {}
        self.sent_at: dict[int, float] = {}
        self.seq = 0
        self.last_snapshot = 0.0
        self.stuck = 0
        self.blocked = 0
        self.leaving = False
        self.returned_seq = 0  # the frame that carried our Returned ids (0: none yet)
        self.leaving_seq = 0   # the frame that said we are leaving (0: none yet)
        self.reported = Capacity()

    def next_seq(self) -> int:
        self.seq += 1
        self.sent_at[self.seq] = time.monotonic()
        if len(self.sent_at) > SENT_TIMES_KEPT:  # insertion order is sequence order
            del self.sent_at[next(iter(self.sent_at))]
        return self.seq

    def open(self, hello: pb.Hello) -> list[pb.AgentFrame]:
        """A new stream: the hello (with our capacity now), then, renumbered, what the
        gateway has not stored yet."""
        pending = [self.unacked[s] for s in sorted(self.unacked)]
        self.unacked.clear()
        self.sent_at.clear()
        self.seq = 0
        self.returned_seq = self.leaving_seq = 0
        self.reported = self._measure()
        frames = [pb.AgentFrame(hello=hello, seq=self.next_seq(),
                                credits=wire.credit_messages(self.reported.free))]
        for results in pending:
            seq = self.next_seq()
            self.unacked[seq] = results
            frames.append(pb.AgentFrame(results=results, seq=seq))
        if self.leaving:
            self.leaving_seq = self.next_seq()
            frames.append(pb.AgentFrame(leaving=True, seq=self.leaving_seq))
        return frames

    def _measure(self) -> Capacity:
        received, free = self._capacity()
        return Capacity(dict(free), received)

    def frame(self, messages: list[Message]) -> pb.AgentFrame | None:
        """Turn one batch of outbox messages into at most one frame."""
        frame = pb.AgentFrame()
        results: list[pb.ResultItem] = []
        freed: Counter[Weight] = Counter()
        credits_due = False
        for message in messages:
            if isinstance(message, Finished):
                results.append(message.item)
                freed[message.weight] += 1
            elif isinstance(message, Replied):
                frame.replies.append(message.reply)
            elif isinstance(message, CreditsDue):
                credits_due = True
            elif isinstance(message, Returned):
                frame.returned.extend(message.ids)
            elif isinstance(message, Leaving):
                frame.leaving = self.leaving = True
        started = self._starts_due(time.time() - START_LINGER, (r.token_id for r in results))
        if started:
            frame.started.extend(started)
        if results or credits_due:
            self.reported = self._measure()
            frame.credits.extend(wire.credit_messages(self.reported.free))
            frame.received = self.reported.received
        if results:
            frame.results.extend(results)
        snapshot = self._add_snapshot(frame)
        content = bool(results or credits_due or frame.replies or frame.started
                       or frame.leaving or frame.returned or snapshot)
        if messages and not content:
            return None  # only wake-ups or starts not yet due: nothing to say
        frame.stuck, frame.blocked = self.stuck, self.blocked
        frame.seq = self.next_seq()  # an empty batch after an idle wait is the heartbeat
        if results:
            self.unacked[frame.seq] = results
        self._note(frame)
        return frame

    def _note(self, frame: pb.AgentFrame) -> None:
        """Remember the frames whose reading the link waits for as it leaves."""
        if frame.returned:
            self.returned_seq = frame.seq
        if frame.leaving:
            self.leaving_seq = frame.seq

    def _add_snapshot(self, frame: pb.AgentFrame) -> bool:
        """Once a second, the status snapshot rides along; True if it did."""
        now = time.monotonic()
        if now - self.last_snapshot < self._snapshot_every:
            return False
        self.last_snapshot = now
        status = self._status()
        self.stuck = int(status.get("stuck", 0) or 0)
        self.blocked = int(status.get("blocked", 0) or 0)
        frame.snapshot = msgpack.packb(status, default=str)
        return True

    def ack(self, upto: int, acked: Callable[[list[pb.ResultItem]], None]) -> None:
        """The gateway stored every frame of this stream up to ``upto``."""
        for seq in [s for s in self.unacked if s <= upto]:
            acked(self.unacked.pop(seq))
