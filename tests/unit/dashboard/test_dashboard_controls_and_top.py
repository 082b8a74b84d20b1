"""Launch arguments checked at the edge, and ``tokengate top``'s frame."""

from __future__ import annotations

import pytest
from tokengate.dashboard.controls import ControlError, parse_arguments
from tokengate.dashboard.memory import ViewMemory
from tokengate.dashboard.terminal import render_frame
from view_factories import NOW, node, outcome, reading, status


def test_launch_arguments_are_a_json_list_and_object():
    assert parse_arguments("[1, \"a\"]", "{\"n\": 3}") == ((1, "a"), {"n": 3})
    assert parse_arguments("", "") == ((), {})
    for args, kwargs, message in [("[1,", "", "valid JSON"), ("{}", "", "JSON list"),
                                  ("[]", "[]", "JSON object"), ("[" + "1," * 40_000 + "1]",
                                                                "", "KiB")]:
        with pytest.raises(ControlError, match=message):
            parse_arguments(args, kwargs)


def _view():
    memory = ViewMemory(gateway="gw:50051")
    nodes = [node("n1", process=True), node("n2", host="h2", state="DRAINED")]
    recent = [outcome("t1", NOW), outcome("t2", NOW + 0.1, state="failed")]
    return memory.step(reading(status=status(nodes=nodes, recent=recent),
                               errors={"guards": "this gateway does not implement it yet"}))


def test_top_frame_shows_cluster_nodes_by_host_feed_and_unavailable_panels():
    frame = render_frame(_view(), width=200, height=80)
    assert frame.startswith("TokenGate  cluster RUNNING  gateway gw:50051")
    assert "created 20" in frame and "NODES (2)" in frame
    assert "16 workers  4 physical cores on 2 hosts  1,920 queue slots" in frame
    assert " host h1" in frame and " host h2" in frame
    assert "n1" in frame and "12%" in frame and "80M" in frame and "DRAINED" in frame
    assert " nest " in frame and "80M     2     7  " in frame  # tasks 2, nested 7
    assert "GUARD HOUSE  unavailable: this gateway does not implement it yet" in frame
    feed = frame.split("RECENT EXECUTIONS")[1]
    assert feed.index("t2") < feed.index("t1")  # newest first
    assert "\x1b[" not in frame


def test_top_frame_fits_the_terminal_and_colours_only_when_asked():
    frame = render_frame(_view(), width=60, height=12)
    lines = frame.split("\n")
    assert len(lines) <= 12 and all(len(line) <= 60 for line in lines)
    assert "\x1b[32mRUNNING\x1b[0m" in render_frame(_view(), color=True)


def test_top_frame_says_when_the_gateway_is_unreachable():
    memory = ViewMemory(gateway="gw:1")
    memory.step(reading())
    view = memory.step(reading(at=NOW + 1, status=None,
                               errors={"status": "GatewayUnavailable: down"}))
    frame = render_frame(view)
    assert "cluster UNREACHABLE" in frame and "GatewayUnavailable: down" in frame
