"""HeldTokens, the owner of what an agent holds for the gateway (pure: no gRPC, no threads
but the test's own)."""

from __future__ import annotations

from typing import Any

import pytest
from tokengate.node_agent.held import Held, HeldTokens
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight, parse_tags
from tokengate.shared.token import TaskToken

TAGS = parse_tags({"weight": "light"})


def _token(token_id: str) -> TaskToken[Any]:
    return TaskToken(lambda: None, (), {}, operation_type="f", tags=TAGS, token_id=token_id)


def _held(token_id: str, attempt: int = 1, session: str = "s1") -> Held:
    return Held(_token(token_id), Weight.LIGHT, pb.MSGPACK, session, attempt)


def _began(token: TaskToken[Any], at: float) -> TaskToken[Any]:
    """Mark ``token`` as begun at ``at`` (what a worker's claim records)."""
    token.timestamps[TokenState.EXECUTING] = at
    return token


def test_a_token_is_held_once_and_reads_back_by_id():
    held = HeldTokens()
    first = _held("t1", session="session-a")
    assert held.take(first) and held.take(_held("t2"))
    assert not held.take(_held("t1", session="session-b")), "a resent id is not held twice"
    assert held.get("t1") is first and held.get("t1").session == "session-a"
    assert "t1" in held and "t9" not in held and len(held) == 2
    assert sorted(held) == ["t1", "t2"]
    assert held.ours(first.token) is first
    assert held.ours(_token("t1")) is None, "a namesake token is not ours"


def test_a_frame_is_held_at_once_and_an_id_repeated_in_it_is_taken_once():
    held = HeldTokens()
    held.take(_held("t0"))
    frame = [_held("t0"), _held("t1"), _held("t2"), _held("t1")]
    taken = held.take_all(frame)
    assert taken == [frame[1], frame[2]], "held already, or earlier in the frame: skipped"
    assert held.get("t1") is frame[1] and len(held) == 3


def test_iterating_is_a_copy_so_the_holder_may_change_meanwhile():
    held = HeldTokens()
    for token_id in ("t1", "t2", "t3"):
        held.take(_held(token_id))
    seen = [token_id for token_id in held if held.revoke(token_id)]
    assert seen == ["t1", "t2", "t3"] and len(held) == 0


def test_an_ack_drops_only_the_attempt_it_reports():
    held = HeldTokens()
    held.take(_held("t1", attempt=2))
    held.take(_held("t2", attempt=1))
    held.acked([pb.ResultItem(token_id="t1", attempt=1),   # an older attempt's outcome
                pb.ResultItem(token_id="t2", attempt=1),
                pb.ResultItem(token_id="t9", attempt=1)])  # never held
    assert "t1" in held and "t2" not in held


def test_a_revoked_token_is_refused_by_the_start_gate_until_it_ends():
    held = HeldTokens()
    record = _held("t1")
    held.take(record)
    assert held.admits(record.token)
    assert held.revoke("t1") is record
    assert "t1" not in held and held.ours(record.token) is None
    assert not held.admits(record.token), "claimed before the revocation: must not begin"
    assert held.admits(_token("t1")), "another token of that id (a new dispatch) may run"
    assert record.token.kill()  # it ends: nothing more to refuse
    assert held.revoked_count() == 0 and held.admits(record.token)
    assert held.revoke("t1") is None, "not held any more"


def test_revoking_a_token_that_already_ended_leaves_nothing_behind():
    """Its done callback runs at once, on this thread: it must not need the lock we hold."""
    held = HeldTokens()
    record = _held("t1")
    held.take(record)
    record.token.kill()
    assert held.revoke("t1") is record
    assert held.revoked_count() == 0


@pytest.mark.parametrize(("began", "finishing", "reported", "kept"), [
    (100.0, (), True, False),        # ran long enough: reported once
    (100.5, (), False, True),        # too recent: kept for a later frame
    (100.0, ("t1",), False, False),  # its result rides in this frame: no start report
])
def test_starts_are_reported_once_due_and_only_for_running_held_tokens(
        began, finishing, reported, kept):
    held = HeldTokens()
    record = _held("t1", attempt=3)
    held.take(record)
    held.started(_began(record.token, began))
    reports = held.starts_due(100.2, finishing)
    assert [(r.token_id, r.attempt, r.started_at) for r in reports] == (
        [("t1", 3, began)] if reported else [])
    later = held.starts_due(200.0)
    assert bool(later) == kept, "a start not yet due is reported later, others never again"


def test_starts_of_tokens_ended_or_no_longer_held_are_dropped_unreported():
    held = HeldTokens()
    ended, revoked = _held("t1"), _held("t2")
    held.take(ended)
    held.take(revoked)
    held.started(_began(ended.token, 1.0))
    held.started(_began(revoked.token, 1.0))
    ended.token.kill()
    held.revoke("t2")
    held.started(_began(_token("t3"), 1.0))  # never held (a quarantine replay)
    assert held.starts_due(10.0) == []
    assert held.starts_due(10.0) == [], "dropped, not kept"
