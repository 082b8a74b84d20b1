"""The agent link's acks are fenced by stream (pure logic: no gateway, no network).

Frame numbers start again on each stream, so an ack read from a stream that has since been
replaced names other frames. Applied to the new stream, it would drop results the gateway has
not stored (they would never be sent again, and their clients would wait forever).
"""

from __future__ import annotations

from tokengate.node_agent import outbox as box
from tokengate.node_agent.link import AgentLink, Held
from tokengate.node_agent.link_config import LinkConfig
from tokengate.shared.registry import TaskSpec
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight, parse_tags
from tokengate.shared.token import TaskToken


class _Scheduler:
    """The few SchedulerPort calls these steps make."""

    def free_capacity(self) -> dict[Weight, int]:
        return {Weight.LIGHT: 4}

    def kill(self, token_id: str) -> bool:
        return False


def _link() -> AgentLink:
    config = LinkConfig(gateway="127.0.0.1:1", token="t" * 20, name="a1")
    return AgentLink(config, _Scheduler(), lambda: {})  # type: ignore[arg-type]


def _held(link: AgentLink, token_id: str) -> None:
    spec = TaskSpec(name="m:f", operation_type="f", tags=parse_tags({"weight": "light"}),
                    func=lambda: None)
    token: TaskToken = TaskToken(spec.func, (), {}, operation_type="f", tags=spec.tags,
                                 token_id=token_id)
    link._held.take(Held(token, Weight.LIGHT, pb.MSGPACK, "c1", 1))


def _open(link: AgentLink) -> int:
    """What the link thread does when a stream opens: a new generation, then the hello."""
    with link._send_lock:
        link._generation += 1
        link._seen = 0
        link._sender.open(pb.Hello(name="a1"))
        return link._generation


def _result_frame(link: AgentLink, token_id: str) -> int:
    finished = box.Finished(Weight.LIGHT, pb.ResultItem(token_id=token_id, attempt=1))
    with link._send_lock:
        frame = link._sender.frame([finished])
    assert frame is not None
    return frame.seq


def test_an_ack_from_a_replaced_stream_drops_nothing():
    link = _link()
    _held(link, "t1")
    old = _open(link)
    seq = _result_frame(link, "t1")  # frame 2 of the old stream carries t1's result
    new = _open(link)                # reconnected: t1's result is resent as frame 2 again
    assert link._sender.unacked, "the result waits for the new stream's ack"

    link._renew(seq, old)            # the old stream's ack, read late
    assert link._sender.unacked and "t1" in link._held, "a stale ack applied to new frames"

    link._renew(seq, new)            # the new stream's own ack
    assert not link._sender.unacked and "t1" not in link._held


def test_a_leaving_agent_knows_when_the_gateway_saw_that_it_leaves(monkeypatch):
    """The link is cancelled only once the gateway saw the leaving frame: cancelled before,
    the frame could be dropped unsent, and the agent would be declared lost a heartbeat
    timeout later instead of at once (fifty agents stopping on two CPUs did that)."""
    import tokengate.node_agent.link as link_module

    monkeypatch.setattr(link_module, "RETURN_WAIT", 0.01)
    link = _link()
    stream = _open(link)
    assert not link._until_seen(lambda: link._sender.leaving_seq), "nothing sent yet"
    with link._send_lock:
        frame = link._sender.frame([box.Leaving()])
    assert frame is not None and frame.leaving and link._sender.leaving_seq == frame.seq
    assert not link._until_seen(lambda: link._sender.leaving_seq), "sent, not seen"
    link._renew(frame.seq, stream)
    assert link._until_seen(lambda: link._sender.leaving_seq)
    stream = _open(link)  # reconnected while leaving: the hello is followed by it again
    assert link._sender.leaving_seq == 2 and not link._until_seen(
        lambda: link._sender.leaving_seq)
    link._renew(2, stream)
    assert link._until_seen(lambda: link._sender.leaving_seq)
