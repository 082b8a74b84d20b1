"""The request side of a client session: what the caller queued, as frames.

Callers put TaskItems (and prebuilt frames, and receipt markers) on the session's queue; the
gRPC request thread iterates :func:`frames`, which turns whatever is queued into one frame
(sent at once when idle, coalesced under load) with the receipts due so far.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tokengate.shared import framing
from tokengate.shared.rpc import tokengate_pb2 as pb

MAX_FRAME_ITEMS = 1000
RECEIVED_LINGER = 0.05  # receipts wait this long for a call to ride with before going alone
RECEIVED = object()  # stream marker: there are receipts to send
CLOSED = pb.ClientFrame()  # what fill returns when the stream closed


def frames(stream: queue.SimpleQueue[Any],
            take_received: Callable[[], list[str]]) -> Iterator[pb.ClientFrame]:
    """The request side of a session: whatever is queued becomes one frame, with the ids of
    the results received so far (those wait up to RECEIVED_LINGER for a call to ride with).

    A receipt marker is never a call: two replies can queue two markers back to back (the
    first one's receipts already left with a frame of calls), and handing the second to
    ``fill`` as a TaskItem made protobuf raise inside gRPC's request iterator, which ended
    the session ("Exception iterating requests!") and resent every unfinished call.
    """
    while True:
        first = stream.get()
        if first is RECEIVED:
            try:
                first = stream.get(timeout=RECEIVED_LINGER)
            except queue.Empty:
                first = RECEIVED
            if first is RECEIVED:  # nothing to ride with (or another marker): send them now
                received = take_received()
                if received:
                    yield pb.ClientFrame(received=received)
                continue
        if first is None:
            received = take_received()
            if received:
                yield pb.ClientFrame(received=received)
            return
        if isinstance(first, pb.ClientFrame):
            first.received.extend(take_received())
            yield first
            continue
        frame, closing = fill(stream, first)
        frame.received.extend(take_received())
        yield frame
        if closing is CLOSED:
            return
        if closing is not None:
            yield closing


def fill(stream: queue.SimpleQueue[Any], first: Any) -> tuple[pb.ClientFrame, Any]:
    """A frame of queued calls starting with ``first``; also what ended it early (a prebuilt
    frame to send next, or CLOSED)."""
    frame = pb.ClientFrame()
    frame.submit.append(first)
    size = framing.task_bytes(first)
    for _ in range(MAX_FRAME_ITEMS - 1):
        if size >= framing.FRAME_SOFT_LIMIT:
            break
        try:
            item = stream.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return frame, CLOSED
        if item is RECEIVED:
            continue
        if isinstance(item, pb.ClientFrame):
            return frame, item
        frame.submit.append(item)
        size += framing.task_bytes(item)
    return frame, None


def watch_frames(fetched: Iterable[tuple[str, bool]]) -> list[pb.ClientFrame]:
    """Watch frames for ``(token id, any owner)`` fetches: one per kind of watch asked."""
    pairs = list(fetched)
    return [pb.ClientFrame(watch=ids, watch_any=watch_any) for watch_any in (False, True)
            if (ids := [i for i, any_owner in pairs if any_owner is watch_any])]
