"""The client's request side (``shared.client_frames.frames``): receipt markers are never calls.

Defect 10 of issue 8: a reply decides a receipt is due under the client's lock and queues its
marker after resolving its tokens; meanwhile the request thread may send those receipts with
a frame of calls, so the next reply queues a second marker right behind the first. The
request iterator handed that second marker to ``fill`` as a TaskItem, protobuf raised
TypeError, and gRPC ended the session ("Exception iterating requests!").
"""

from __future__ import annotations

import queue

from tokengate.shared import client_frames as client
from tokengate.shared.rpc import tokengate_pb2 as pb


def _frames(*entries, received=("r1",)):
    stream: queue.SimpleQueue = queue.SimpleQueue()
    for entry in entries:
        stream.put(entry)
    pending = list(received)

    def take() -> list[str]:
        taken = list(pending)
        pending.clear()
        return taken

    return list(client.frames(stream, take))


def test_two_receipt_markers_in_a_row_send_the_receipts_and_raise_nothing():
    item = pb.TaskItem(token_id="t1", task="m:f")
    frames = _frames(client.RECEIVED, client.RECEIVED, item, None)
    assert [list(f.received) for f in frames] == [["r1"], []]
    assert [[i.token_id for i in f.submit] for f in frames] == [[], ["t1"]]


def test_a_marker_followed_by_a_call_lets_the_receipts_ride_with_it():
    item = pb.TaskItem(token_id="t1", task="m:f")
    frames = _frames(client.RECEIVED, item, None)
    assert len(frames) == 1
    assert list(frames[0].received) == ["r1"] and frames[0].submit[0].token_id == "t1"


def test_many_markers_then_close():
    frames = _frames(*[client.RECEIVED] * 5, None)
    assert [list(f.received) for f in frames] == [["r1"]]


def test_fetches_are_asked_again_in_one_watch_frame_per_kind():
    frames = client.watch_frames([("a", False), ("b", True), ("c", False)])
    assert [(list(f.watch), f.watch_any) for f in frames] == [(["a", "c"], False), (["b"], True)]
    assert client.watch_frames([]) == []
