"""The agent's gRPC link to the gateway: transport only.

It opens the stream (hello first), reads dispatch frames and turns them into calls on its
collaborators, frames what they put on its outbox, and reconnects with backoff. What the
agent holds for the gateway is not the link's state: it lives in :class:`HeldTokens`
(:mod:`.held`, its own lock); commands run on :class:`CommandRunner` (:mod:`.commands`, a
bounded pool); the work lease and start gate are :mod:`.lease`; result items are built by
:mod:`.reports`.

Threads and what each owns:

- the *link* thread reads frames and acts on them without ever blocking: revocations first,
  then the work lease and acks (applied only to the stream they came from: frame numbers
  start again on each), tasks, each turned into a :class:`TaskToken` resolved only through
  :mod:`tokengate.shared.registry` and handed to the scheduler's non-blocking ``enqueue``
  (so every embedded rule applies: weights, pinning, tiers, guards), then kills; commands
  go to the command pool, except a cancel, which never waits and is answered at once (see
  ``docs/cancel.md``). It owns ``_received`` (tasks received on the current stream), the
  gateway addresses and the backoff;
- the sender, on gRPC's request thread of the current stream, drains the outbox into frames
  (:mod:`.outbox`); its state is guarded by ``_send_lock`` and tied to a stream generation,
  so a dying stream's thread hands back what it took. About once a heartbeat it also asks
  the scheduler to reclaim what waits behind blocked workers (a call running past
  ``stuck_after``) and returns those tokens to the gateway, which runs them elsewhere: work
  stealing, with the scheduler's word that none of them started;
- workers only record starts and put their token's outcome on the outbox;
- command threads (at most ``commands.COMMAND_THREADS``) put their replies on the outbox.

Leaving (``stop``), the agent closes its work lease for good, kills what it holds unstarted
and returns those ids, so the gateway can give them to others with the same attempt.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import grpc
import msgpack
from tokengate.node_agent import outbox as box
from tokengate.node_agent import reports
from tokengate.node_agent.commands import (
    CANCEL,
    CANCEL_FINISHED,
    CommandHandler,
    CommandRunner,
    cancel_outcome,
)
from tokengate.node_agent.held import Held, HeldTokens
from tokengate.node_agent.lease import AgentStartGate, WorkLease
from tokengate.node_agent.link_config import LinkConfig
from tokengate.node_agent.reports import task_info
from tokengate.shared import codec, framing, labels, wire
from tokengate.shared.auth import call_metadata
from tokengate.shared.channel import addresses, open_channel
from tokengate.shared.errors import AdmissionTimeout, AgentLost, ConfigurationError, TokenGateError
from tokengate.shared.registry import lookup, registered_names
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc
from tokengate.shared.snapshot import NodeShape
from tokengate.shared.tags import Weight
from tokengate.shared.token import TaskToken

__all__ = ["AgentLink", "Held", "SchedulerPort", "WorkLease", "cancel_outcome",
           "import_includes"]

logger = logging.getLogger(__name__)

RETURN_WAIT = 2.0  # seconds a leaving agent waits for the gateway to read what it gave back


class SchedulerPort(Protocol):
    """What the link needs of the local scheduler."""

    def enqueue(self, token: TaskToken) -> None: ...
    def kill(self, token_id: str) -> bool: ...
    def cancel(self, token: TaskToken) -> bool: ...
    def free_capacity(self) -> Mapping[Weight, int]: ...
    def wait_idle(self, timeout: float | None = None) -> bool: ...
    def add_observer(self, observer: Any) -> None: ...
    def set_start_gate(self, gate: Any) -> None: ...
    def reclaim_blocked(self) -> list[TaskToken]: ...


def import_includes(modules: tuple[str, ...]) -> list[str]:
    """Import the modules the operator named; their decorated functions become runnable."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import included module {name!r}: {exc}") from None
    return registered_names()


class _StartReporter:
    """Scheduler observer: records a token's start for the sender, which reports it if the
    token still runs a few milliseconds later (no wake-up: the next frame carries it)."""

    def __init__(self, held: HeldTokens) -> None:
        self.on_start = held.started


class AgentLink:
    """Connects one local scheduler to the gateway."""

    def __init__(self, config: LinkConfig, scheduler: SchedulerPort,
                 status: Callable[[], dict[str, Any]],
                 commands: CommandHandler | None = None) -> None:
        self.config = config
        self.scheduler = scheduler
        self.status = status
        self.incarnation = uuid.uuid4().hex
        self.registered = threading.Event()
        self.fatal = threading.Event()  # the gateway refused us for good (wrong token)
        self.fatal_reason = ""
        self.lease = WorkLease()
        self._lease_seconds = 0.0
        self._stop = threading.Event()
        self._held = HeldTokens()
        self._commands = CommandRunner(commands, self._reply)
        self._outbox: queue.SimpleQueue[box.Message] = queue.SimpleQueue()
        self._send_lock = threading.Lock()  # guards _sender, _generation and _seen
        self._seen_changed = threading.Condition(self._send_lock)
        self._seen = 0  # the newest of our frames (this stream) the gateway saw
        self._sender = box.Sender(self._capacity, status, self._held.starts_due,
                                  snapshot_every=1.0)
        self._generation = 0
        self._received = 0
        self._backoff = 0.1  # the link thread's: seconds before the next reconnection
        # The link thread's: the gateways to try, from the first (the operator lists an
        # agent's own gateway first, and so spreads agents over gateways; it is tried for
        # ``home_grace`` before the next, which covers a gateway still starting), the next
        # after a stream failed; the shard its first gateway named, named on every later
        # stream (see wire.SHARD).
        self._addresses = addresses(config.gateway)
        self._at = 0
        self._home_failing_since: float | None = None
        self.shard = ""
        self._next_reclaim = 0.0  # the sender's: when it next asks the scheduler to reclaim
        self._call: Any = None
        self._threads: list[threading.Thread] = []
        self.tasks: list[str] = []

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> AgentLink:
        self.tasks = import_includes(self.config.includes)
        if not self.tasks:
            logger.warning("no tasks registered: include the modules that define them")
        self.scheduler.add_observer(_StartReporter(self._held))
        self.scheduler.set_start_gate(AgentStartGate(self.lease, self._held))
        thread = threading.Thread(target=self._link_loop, name="tg-agent-link", daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def stop(self, timeout: float = 5.0, drain: float = 0.0) -> None:
        """Leave the cluster. With ``drain`` > 0, first tell the gateway we are leaving (it
        sends nothing more) and give admitted work up to ``drain`` seconds to finish and its
        results to be stored; the gateway hands whatever is left to other agents at once."""
        leaving = drain > 0 and self.registered.is_set()
        if leaving:
            self._outbox.put(box.Leaving())
            deadline = time.monotonic() + drain
            self.scheduler.wait_idle(drain)
            while self._held and time.monotonic() < deadline and self.registered.is_set():
                self._stop.wait(0.02)  # outcomes in flight: their acks empty _held
        # Nothing starts from here on: what we hold and did not begin is the gateway's to
        # give to another agent, not ours to run unreported. We tell it which those are, so
        # never-twice calls among them run elsewhere instead of failing AgentLost.
        self.lease.close()
        returned = [token_id for token_id in self._held if self._give_up(token_id)]
        if returned and self.registered.is_set():
            self._return(tuple(returned))
        if leaving and self.registered.is_set() \
                and not self._until_seen(lambda: self._sender.leaving_seq):
            logger.warning("the gateway did not confirm that we are leaving; it will declare "
                           "this agent lost once its heartbeats stop")
        self._stop.set()
        self._commands.close()
        self._outbox.put(box.Wake())
        call = self._call
        if call is not None:
            call.cancel()
        for thread in self._threads:
            thread.join(timeout)

    # -- the link thread ----------------------------------------------------------------------

    @property
    def gateway(self) -> str:
        """The gateway address the link uses (or tries) now."""
        return self._addresses[self._at]

    def _link_loop(self) -> None:
        while not self._stop.is_set():
            metadata = call_metadata(self.config.token)
            if self.shard:
                metadata = (*metadata, (wire.SHARD, self.shard))
            try:
                self._stream(metadata)
            except grpc.RpcError as exc:
                if self._refused(exc):
                    return
                self._next_gateway()
            except ConfigurationError as exc:  # retrying cannot help (TLS files, ...)
                self._fail(str(exc))
                return
            except Exception:  # a bug must not end the link for good: log it, reconnect
                logger.exception("the link to gateway %s failed; reconnecting", self.gateway)
            self._stop.wait(self._backoff)
            self._backoff = min(self.config.max_backoff, self._backoff * 2)

    def _next_gateway(self) -> None:
        """After a failed stream: the next address, once the first had its grace."""
        if len(self._addresses) < 2:
            return
        if self._at == 0:
            now = time.monotonic()
            if self._home_failing_since is None:
                self._home_failing_since = now
            # Once a gateway gave its work lease (a fraction of its heartbeat timeout), no
            # longer than that: the agent moves well within two heartbeat timeouts.
            grace = min(self.config.home_grace, self._lease_seconds or self.config.home_grace)
            if now - self._home_failing_since < grace:
                return
        self._at = (self._at + 1) % len(self._addresses)
        self._home_failing_since = None
        self._backoff = 0.05  # try the next one soon: the gateway that adopts the shard
                              # keeps its agents a heartbeat timeout, counted from then

    def _stream(self, metadata: tuple[tuple[str, str], ...]) -> None:
        """One stream, from its hello to its end (an exception, or the gateway closing it)."""
        channel = open_channel(self.gateway, self.config.tls, self.config.keepalive)
        try:
            with self._send_lock:
                self._generation += 1
                generation = self._generation
                self._received = 0
                self._seen = 0
                first = self._sender.open(self._hello())
            self._call = rpc.GatewayStub(channel).AgentLink(
                self._frames(generation, first), metadata=metadata)
            for frame in self._call:
                if not self.registered.is_set():
                    self._learn_shard(self._call.initial_metadata())
                    self._home_failing_since = None
                    self.registered.set()
                    logger.info("registered with gateway %s (shard %s) as %s", self.gateway,
                                self.shard or "?", self.config.name)
                    self._backoff = 0.1
                self._on_frame(frame, generation)
        finally:
            self.registered.clear()
            with self._send_lock:
                self._generation += 1  # the old stream's sender stops and hands back
            self._outbox.put(box.Wake())
            channel.close()

    def _learn_shard(self, headers: Any) -> None:
        for key, value in headers or ():
            if key == wire.SHARD and value:
                self.shard = str(value)

    def _fail(self, reason: str) -> None:
        """Stop for good: the agent process exits with ``reason`` (code 2)."""
        self.fatal_reason = reason
        logger.error(reason)
        self.fatal.set()

    def _refused(self, exc: grpc.RpcError) -> bool:
        """Log a failed stream; True when retrying cannot help (a wrong token)."""
        if self._stop.is_set():
            return True
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            self._fail(f"the gateway {self.gateway} refused this agent's token "
                       f"({details}); check TOKENGATE_TOKEN / --token-file")
            return True
        if code == grpc.StatusCode.ALREADY_EXISTS:
            logger.error("the gateway refused the name %s: %s", self.config.name, details)
        else:
            logger.warning("link to gateway %s lost (%s); reconnecting", self.gateway,
                           code)
        return False

    def _hello(self) -> pb.Hello:
        shape = NodeShape.from_wire(self.status())  # the snapshot's fixed part
        return pb.Hello(name=self.config.name, incarnation=self.incarnation,
                        host=socket.gethostname(), pid=os.getpid(),
                        topology=msgpack.packb(shape.to_wire(), default=str), tasks=self.tasks,
                        task_info=[task_info(lookup(name)) for name in self.tasks],
                        held=list(self._held),
                        labels=labels.to_texts(labels.parse(self.config.labels)),
                        storage=self.config.storage)

    def _capacity(self) -> tuple[int, dict[Weight, int]]:
        received = self._received  # first: the free figure then reflects at least these
        return received, dict(self.scheduler.free_capacity())

    def _on_frame(self, frame: pb.DispatchFrame, generation: int) -> None:
        """Revocations first, then the lease and acks, then new tasks, then kills (a kill
        may name a token of this very frame)."""
        for token_id in frame.revoke:
            self._revoke(token_id)
        if frame.lease:
            self._lease_seconds = frame.lease
        if frame.seen_seq or frame.ack_seq:
            self._renew(max(frame.seen_seq, frame.ack_seq), generation)
        if frame.tasks:
            self._take(frame.tasks)
        for token_id in frame.kill:
            self._kill(token_id)
        for command in frame.commands:
            if command.kind == CANCEL:  # never waits: answered from this thread
                self._reply(self._cancel(command))
                continue
            self._commands.submit(command)  # never waits: busy when full

    def _renew(self, seq: int, generation: int) -> None:
        """The gateway saw (and stored) our frames up to ``seq`` of stream ``generation``.
        Sequence numbers start again on each stream, so an ack read from a stream that has
        since been replaced names other frames: it is dropped, not applied."""
        with self._send_lock:
            if generation != self._generation:
                return
            sent = self._sender.sent_at.get(seq)
            self._sender.ack(seq, self._held.acked)
            if seq > self._seen:
                self._seen = seq
                self._seen_changed.notify_all()
        if sent is not None and self._lease_seconds:
            self.lease.renew(sent + self._lease_seconds)

    def _revoke(self, token_id: str) -> None:
        """No longer ours: drop it unstarted if we can, and report nothing for it."""
        if self._give_up(token_id) is not None:
            logger.info("token %s was revoked (given to another agent while we were away)",
                        token_id)

    def _give_up(self, token_id: str) -> bool | None:
        """Stop holding ``token_id``: kill it if it is queued (True: it never started); if a
        worker claimed it, it must not begin its call (the start gate asks; False). None if
        we did not hold it."""
        held = self._held.revoke(token_id)
        if held is None:
            return None
        return self.scheduler.kill(token_id) or held.token.kill()

    def _return(self, ids: tuple[str, ...]) -> None:
        """Send ``ids`` as returned, and wait (a little) until the gateway has read them."""
        self._outbox.put(box.Returned(ids))
        if not self._until_seen(lambda: self._sender.returned_seq):
            logger.warning("the gateway did not confirm the %d tokens given back; it will "
                           "treat them as lost", len(ids))

    def _until_seen(self, seq: Callable[[], int]) -> bool:
        """Wait (up to ``RETURN_WAIT``) until the gateway has seen the frame ``seq()`` names
        (0: not sent yet). Cancelling the stream before then could drop it unsent: on a
        crowded host (fifty agents on two CPUs) the sender may not have run yet."""
        with self._seen_changed:
            return self._seen_changed.wait_for(lambda: 0 < seq() <= self._seen, RETURN_WAIT)

    def _reclaim(self) -> None:
        """Give the gateway back what waits behind blocked workers (sender thread, about once
        a heartbeat). Each was taken out of the scheduler unstarted; a token that is not the
        gateway's (a quarantine replay started here) fails instead, visibly."""
        now = time.monotonic()
        if now < self._next_reclaim:
            return
        self._next_reclaim = now + self.config.heartbeat_interval
        returned = []
        for token in self.scheduler.reclaim_blocked():
            if self._give_up(token.token_id):
                returned.append(token.token_id)
            elif not token.done():
                token.set_error(AdmissionTimeout(
                    f"{token.token_id} waited behind a worker blocked on a long call"), "")
        if returned:
            logger.warning("%d tokens waiting behind blocked workers go back to the gateway",
                           len(returned))
            self._outbox.put(box.Returned(tuple(returned)))
            self._outbox.put(box.CreditsDue())

    def _kill(self, token_id: str) -> None:
        if self.scheduler.kill(token_id):
            return
        held = self._held.get(token_id)
        if held is not None:
            held.token.kill()  # not in the scheduler yet

    def _cancel(self, command: pb.Command) -> pb.CommandReply:
        """The gateway's cancel of a token we hold: killed if queued, else its running call is
        asked to stop. The reply's message is the outcome (see :func:`cancel_outcome`)."""
        held = self._held.get(command.target)
        if held is None:  # its outcome went to the gateway already, or it was never ours
            return pb.CommandReply(id=command.id, ok=True, message=CANCEL_FINISHED)
        asked = self.scheduler.cancel(held.token)
        outcome = cancel_outcome(held.token, asked)
        logger.info("cancel of %s: %s", command.target, outcome)
        return pb.CommandReply(id=command.id, ok=True, message=outcome)

    def _take(self, items: Any) -> None:
        made = [held for held in map(self._held_for, items) if held is not None]
        for held in self._held.take_all(made):  # one lock for the frame
            held.token.add_done_callback(self._on_done)
            self.scheduler.enqueue(held.token)
        self._received += len(items)
        with self._send_lock:
            view = self._sender.reported.view(self._received)
        # Report at once only when the gateway believes a weight full that is not: otherwise
        # the next frame with results carries the new figures anyway.
        if any(n <= 0 for n in view.values()):
            free = self.scheduler.free_capacity()
            if any(n <= 0 < free.get(w, 0) for w, n in view.items()):
                self._outbox.put(box.CreditsDue())

    def _held_for(self, item: pb.TaskItem) -> Held | None:
        if item.token_id in self._held:
            return None  # resent after a reconnect while we still hold it
        weight = wire.weight_of(item.weight)
        try:
            spec = lookup(item.task)
            if item.attempt > 1 and not spec.tags.idempotent:
                raise AgentLost(f"{item.task} must never run twice, and attempt "
                                f"{item.attempt - 1} may have run on an agent that was lost")
            args, kwargs = codec.decode_call(item.payload, item.codec,
                                             allow_pickle=self.config.allow_pickle)
        except TokenGateError as exc:
            self._outbox.put(box.Finished(weight, pb.ResultItem(
                token_id=item.token_id, state=pb.FAILED, error_type=wire.error_name(exc),
                error_message=str(exc), attempt=item.attempt, node=self.config.name,
                finished_at=time.time(), session=item.session,
                operation_type=item.operation_type)))
            return None
        token: TaskToken = TaskToken(spec.func, args, kwargs, operation_type=spec.operation_type,
                                     tags=spec.tags, token_id=item.token_id,
                                     attempt=item.attempt or 1)
        return Held(token, weight, item.codec, item.session, item.attempt or 1)

    def _reply(self, reply: pb.CommandReply) -> None:
        self._outbox.put(box.Replied(reply))

    # -- worker threads ---------------------------------------------------------------------

    def _on_done(self, token: TaskToken) -> None:
        held = self._held.ours(token)
        if held is None:
            return  # revoked: not ours to report
        try:
            item = reports.result_item(token, held, self.config.name,
                                       self.config.max_result_bytes)
        except Exception as exc:  # whatever it was, the client hears of it
            logger.exception("the outcome of %s cannot be reported as it is", token.token_id)
            item = reports.unreportable_item(token, held, self.config.name, exc)
        self._outbox.put(box.Finished(held.weight, item))

    # -- the sender: on the current stream's gRPC request thread ------------------------------

    def _frames(self, generation: int, first: list[pb.AgentFrame]) -> Iterator[pb.AgentFrame]:
        yield from first
        outbox, heartbeat = self._outbox, self.config.heartbeat_interval
        while True:
            try:
                messages: list[box.Message] = [outbox.get(timeout=heartbeat)]
            except queue.Empty:
                messages = []
            self._reclaim()  # what it returns joins this frame
            size = sum(box.message_bytes(m) for m in messages)
            while len(messages) < box.MAX_FRAME_RESULTS and size < framing.FRAME_SOFT_LIMIT:
                try:
                    message = outbox.get_nowait()
                except queue.Empty:
                    break
                messages.append(message)
                size += box.message_bytes(message)
            with self._send_lock:
                if generation != self._generation or self._stop.is_set():
                    for message in messages:  # not ours any more: the next stream sends them
                        if not isinstance(message, box.Wake):
                            outbox.put(message)
                    return
                frame = self._sender.frame(messages)
            if frame is not None:
                yield frame
