"""The gateway's commands on an agent: a bounded pool, never the stream reader's wait."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time

from tokengate.node_agent import outbox as box
from tokengate.node_agent.commands import (
    BUSY,
    CANCEL,
    CANCEL_FINISHED,
    COMMAND_BACKLOG,
    COMMAND_THREADS,
    CommandRunner,
    answer,
)
from tokengate.node_agent.link import AgentLink
from tokengate.node_agent.link_config import LinkConfig
from tokengate.shared import wire
from tokengate.shared.errors import BadRequest
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight

PREFIX = "tg-agent-command"


def _command_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(PREFIX))


class _Slow:
    """A command handler that waits for ``release`` (a quarantine replay waits up to 15 s)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, command: pb.Command) -> pb.CommandReply:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            assert self.release.wait(30), "the test never released the commands"
            return pb.CommandReply(ok=True, message=f"done {command.target}")
        finally:
            with self._lock:
                self.running -= 1


def test_a_flood_of_commands_uses_at_most_the_cap_and_answers_every_one_once():
    replies: queue.SimpleQueue[pb.CommandReply] = queue.SimpleQueue()
    slow = _Slow()
    before = _command_threads()
    runner = CommandRunner(slow, replies.put, threads=2, backlog=3)
    try:
        started = time.monotonic()
        accepted = [runner.submit(pb.Command(id=i, kind="history", target=str(i)))
                    for i in range(1, 51)]
        assert time.monotonic() - started < 2.0, "submitting never waits on a command"
        assert accepted.count(True) == 5, "2 running and 3 waiting; the rest refused"
        busy = [replies.get(timeout=5) for _ in range(45)]
        assert all(not r.ok and r.message.startswith(BUSY) for r in busy)
        assert all(wire.refused_busy(r) for r in busy)  # what the gateway tells apart
        assert {r.id for r in busy} == {i for i, ok in enumerate(accepted, 1) if not ok}
        assert _command_threads() - before <= 2 and slow.most <= 2
        slow.release.set()
        done = [replies.get(timeout=10) for _ in range(5)]
        assert sorted(r.id for r in done) == [1, 2, 3, 4, 5] and all(r.ok for r in done)
        assert replies.empty(), "each command is answered once"
        # room again once answered
        assert runner.submit(pb.Command(id=99, kind="history", target="x"))
        assert replies.get(timeout=10).id == 99
    finally:
        slow.release.set()
        runner.close()
    assert not runner.submit(pb.Command(id=100, kind="history")), "closed: runs nothing"


def test_a_failing_command_is_answered_with_its_error():
    def refuse(command: pb.Command) -> pb.CommandReply:
        raise BadRequest("no such quarantined call")

    def crash(command: pb.Command) -> pb.CommandReply:
        raise ValueError("bug \udcff")

    bad = answer(refuse, pb.Command(id=7, kind="quarantine_drop"))
    assert (bad.id, bad.ok) == (7, False) and "no such quarantined call" in bad.message
    broken = answer(crash, pb.Command(id=8, kind="history"))
    assert (broken.id, broken.ok) == (8, False) and broken.message.startswith("ValueError")
    broken.SerializeToString()  # a lone surrogate made valid UTF-8
    none = answer(None, pb.Command(id=9, kind="history"))
    assert (none.id, none.ok, none.message) == (9, False, "no command handler")


class _Scheduler:
    """The few SchedulerPort calls a frame of commands and kills makes."""

    def free_capacity(self) -> dict[Weight, int]:
        return {Weight.LIGHT: 4}

    def kill(self, token_id: str) -> bool:
        return False


def _replies(link: AgentLink, count: int) -> list[pb.CommandReply]:
    got = []
    while len(got) < count:
        message = link._outbox.get(timeout=5)
        if isinstance(message, box.Replied):
            got.append(message.reply)
    return got


def test_a_slow_command_does_not_block_the_stream_reader():
    slow = _Slow()
    config = LinkConfig(gateway="127.0.0.1:1", token="t" * 20, name="a1")
    link = AgentLink(config, _Scheduler(), lambda: {}, slow)  # type: ignore[arg-type]
    before = _command_threads()
    try:
        started = time.monotonic()
        link._on_frame(pb.DispatchFrame(commands=[
            pb.Command(id=i, kind="quarantine_replay", target=str(i)) for i in range(1, 41)]),
            0)
        link._on_frame(pb.DispatchFrame(kill=["t9"], commands=[
            pb.Command(id=50, kind=CANCEL, target="t9")]), 0)
        assert time.monotonic() - started < 2.0, "the reader waited on a command"
        accepted = COMMAND_THREADS + COMMAND_BACKLOG
        first = _replies(link, 40 - accepted + 1)  # the refused ones and the cancel, at once
        cancel = [r for r in first if r.id == 50]
        assert cancel and cancel[0].ok and cancel[0].message == CANCEL_FINISHED
        assert all(r.message.startswith(BUSY) for r in first if r.id != 50)
        assert slow.most <= COMMAND_THREADS
        assert _command_threads() - before <= COMMAND_THREADS
        slow.release.set()
        rest = _replies(link, accepted)
        assert all(r.ok for r in rest) and len({r.id for r in first + rest}) == 41
    finally:
        slow.release.set()
        link.stop(timeout=1)


def test_only_a_busy_refusal_reads_as_not_run():
    assert wire.refused_busy(pb.CommandReply(ok=False, message=f"{BUSY}: full"))
    assert not wire.refused_busy(pb.CommandReply(ok=False, message="not blocked here"))
    assert not wire.refused_busy(pb.CommandReply(ok=True, message=f"{BUSY}: full"))


_NEVER_RETURNS = """
import threading
from tokengate.node_agent.commands import CommandRunner
from tokengate.shared.rpc import tokengate_pb2 as pb
started = threading.Event()
def handler(command):
    started.set()
    threading.Event().wait()  # a replay that never comes back
runner = CommandRunner(handler, lambda reply: None)
assert runner.submit(pb.Command(id=1, kind="quarantine_replay"))
assert started.wait(10)
runner.close()
print("closed", flush=True)
"""


def test_a_command_still_running_does_not_hold_up_the_agents_exit():
    # a pool whose threads the interpreter joins at exit would hang here until the timeout
    done = subprocess.run([sys.executable, "-c", _NEVER_RETURNS], capture_output=True,
                          text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert "closed" in done.stdout
