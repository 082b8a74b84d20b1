"""The gateway's commands to an agent, answered off the link thread on a bounded pool.

A command (``re-enable``, ``quarantine_replay``/``_drop``, ``history``; see
``NodeAgent.command``) may take a while: a replay waits up to 15 s for its call. The link
thread, which reads the stream, must never wait on one, or acks, revocations and new tasks
would stall behind it. So :class:`CommandRunner` runs them on ``threads`` daemon threads of
its own, with room for ``backlog`` more waiting. (Daemon threads, not a
``ThreadPoolExecutor``, whose threads the interpreter joins at exit: an agent that is leaving
must not wait out a replay.) Beyond that a command is not
queued: it is answered at once, ``ok=False`` with a message starting ``busy:``, so a flood
of commands neither blocks the reader nor grows threads or memory. Every accepted command
is answered exactly once; one that raises is answered with its error.

A ``cancel`` is not run here: it never waits, and the link answers it on its own thread
(:func:`cancel_outcome`, ``docs/cancel.md``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from tokengate.shared import wire
from tokengate.shared.errors import TokenCancelled, TokenGateError
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.token import TaskToken

logger = logging.getLogger(__name__)

COMMAND_THREADS = 2    # commands running at once on one agent
COMMAND_BACKLOG = 32   # more accepted and waiting; beyond: answered "busy" at once
BUSY = wire.COMMAND_BUSY

# The gateway's command to cancel one token (target: its id), and the outcomes an agent
# answers with (the reply's message).
CANCEL = "cancel"
CANCEL_KILLED = "killed"                     # it was queued here: killed, never started
CANCEL_REQUESTED = "cancel_requested"        # it runs: asked to stop; KILLED once it does
CANCEL_FINISHED = "finished"                 # it had finished (or is not held here)


class CommandHandler(Protocol):
    def __call__(self, command: pb.Command) -> pb.CommandReply: ...


def cancel_outcome(token: TaskToken[Any], asked: bool) -> str:
    """What a cancel did to ``token``: ``asked`` is what ``cancel`` returned."""
    if not asked:
        return CANCEL_FINISHED
    if token.state is TokenState.KILLED and not isinstance(token.error, TokenCancelled):
        return CANCEL_KILLED
    return CANCEL_REQUESTED


def clean_text(text: str) -> str:
    """``text`` as valid UTF-8: what cannot be encoded (a lone surrogate) becomes ``?``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def answer(handler: CommandHandler | None, command: pb.Command) -> pb.CommandReply:
    """Run one command; its reply, or its error as a failed reply (never raises)."""
    if handler is None:
        return pb.CommandReply(id=command.id, ok=False, message="no command handler")
    try:
        reply = handler(command)
    except TokenGateError as exc:
        reply = pb.CommandReply(ok=False, message=f"{wire.error_name(exc)}: {exc}")
    except Exception as exc:  # a failed command is answered, never left unanswered
        logger.exception("command %s failed", command.id)
        reply = pb.CommandReply(ok=False, message=clean_text(f"{type(exc).__name__}: {exc}"))
    reply.id = command.id
    return reply


class CommandRunner:
    """Answers commands on at most ``threads`` threads (see the module docstring).

    ``_slots`` counts the commands accepted and not yet answered (``threads + backlog``
    at most), so ``_waiting`` never holds more than that; ``_closed`` is set once, by
    :meth:`close`, and read by the threads, which then drop what still waits.
    """

    def __init__(self, handler: CommandHandler | None,
                 reply: Callable[[pb.CommandReply], None], *,
                 threads: int = COMMAND_THREADS, backlog: int = COMMAND_BACKLOG) -> None:
        self._handler = handler
        self._reply = reply
        self._limits = (threads, backlog)
        self._slots = threading.BoundedSemaphore(threads + backlog)
        self._waiting: queue.SimpleQueue[pb.Command | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [threading.Thread(target=self._serve, name=f"tg-agent-command-{n}",
                                          daemon=True) for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, command: pb.Command) -> bool:
        """Run ``command`` later (True), or answer it busy now (False). Never blocks."""
        if self._closed:  # the agent is leaving: nobody reads the reply
            return False
        if not self._slots.acquire(blocking=False):
            threads, backlog = self._limits
            logger.warning("command %s (%s) refused: %d running and %d waiting", command.id,
                           command.kind[:40], threads, backlog)
            self._reply(pb.CommandReply(
                id=command.id, ok=False, message=f"{BUSY}: this agent runs {threads} "
                f"commands and has {backlog} waiting; try again later"))
            return False
        self._waiting.put(command)
        return True

    def _serve(self) -> None:
        while (command := self._waiting.get()) is not None:
            try:
                if not self._closed:
                    self._reply(answer(self._handler, command))
            except Exception:  # the reply could not be sent: the link is going; go on
                logger.exception("the reply to command %s was not sent", command.id)
            finally:
                self._slots.release()

    def close(self) -> None:
        """Run nothing more: waiting commands are dropped (the agent is leaving); a command
        running now finishes on its daemon thread, which does not hold up the exit."""
        self._closed = True
        for _ in self._threads:
            self._waiting.put(None)
