"""The agent's gRPC link: register, report capacity, take dispatched batches, report back.

Threads and what each owns:

- the *link* thread opens the stream (hello first), reads dispatch frames and acts on them
  without ever blocking: revocations first, then the work lease and acks (applied only to
  the stream they came from: frame numbers start again on each), tasks, each turned into a
  :class:`TaskToken` resolved only through :mod:`tokengate.shared.registry` and handed to
  the scheduler's non-blocking ``enqueue`` (so every embedded rule applies: weights,
  pinning, tiers, guards), then kills; commands go to a thread of their own, except a
  cancel, which never waits and is answered at once (see ``docs/cancel.md``). It owns
  ``_received`` (tasks received on the current stream) and reconnects with backoff when the
  gateway goes away;
- the sender, on gRPC's request thread of the current stream, drains the outbox into frames
  (:mod:`.outbox`); its state is guarded by ``_send_lock`` and tied to a stream generation,
  so a dying stream's thread hands back what it took. About once a heartbeat it also asks
  the scheduler to reclaim what waits behind blocked workers (a call running past
  ``stuck_after``) and returns those tokens to the gateway, which runs them elsewhere: work
  stealing, with the scheduler's word that none of them started;
- workers only put their token's outcome (and, through the start observer, its start) on the
  outbox.

``_held`` maps each token id given to this agent to its :class:`Held` record until the
gateway has stored its outcome (or revoked it); ``_revoked`` holds the revoked tokens a worker
had already claimed, until they end, so the start gate can stop one still waiting for its
storage slot. Single dict operations only, from any thread.

The work lease: the agent may start tokens only until ``lease`` seconds after it sent the
newest frame the gateway has acknowledged seeing. An agent cut off from the gateway (a
partition, a SIGSTOP) thus stops starting work before the gateway gives that work to
another agent; when it is back, the gateway's welcome revokes what was taken from it.
Leaving (``stop``), the agent closes its lease for good, kills what it holds unstarted and
returns those ids, so the gateway can give them to others with the same attempt.
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
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import msgpack
from tokengate.node_agent import outbox as box
from tokengate.node_agent.link_config import LinkConfig
from tokengate.shared import codec, framing, labels, wire
from tokengate.shared.auth import call_metadata
from tokengate.shared.channel import addresses, open_channel
from tokengate.shared.errors import (
    AdmissionTimeout,
    AgentLost,
    ConfigurationError,
    TokenCancelled,
    TokenGateError,
)
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.registry import TaskSpec, lookup, registered_names
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc
from tokengate.shared.snapshot import NodeShape
from tokengate.shared.tags import Weight
from tokengate.shared.token import TaskToken

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


class CommandHandler(Protocol):
    def __call__(self, command: pb.Command) -> pb.CommandReply: ...


@dataclass(frozen=True, slots=True)
class Held:
    token: TaskToken
    weight: Weight
    codec: int
    owner: str     # the client owed the result (the gateway routes by it)
    attempt: int   # the gateway's attempt number: fences our reports


class WorkLease:
    """Whether this agent may start tokens now (see the module docstring). ``_changed``
    guards ``_until`` and ``_closed``; ``is_open`` reads ``_until`` without the lock."""

    def __init__(self) -> None:
        self._until = 0.0
        self._closed = False
        self._changed = threading.Condition()

    def is_open(self) -> bool:
        return time.monotonic() < self._until

    def renew(self, until: float) -> None:
        with self._changed:
            if until > self._until and not self._closed:
                self._until = until
                self._changed.notify_all()

    def close(self) -> None:
        """For good (the agent leaves): nothing starts from now on."""
        with self._changed:
            self._closed = True
            self._until = 0.0

    def wait_open(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(self.is_open, timeout)


class _StartGate:
    """The scheduler's start gate on an agent: the work lease is open, and the token was not
    revoked after a worker claimed it (``revoked``: the link's, see ``AgentLink._revoke``)."""

    def __init__(self, lease: WorkLease, revoked: dict[str, TaskToken]) -> None:
        self.is_open, self.wait_open = lease.is_open, lease.wait_open
        self._revoked = revoked

    def admits(self, token: TaskToken) -> bool:
        return self._revoked.get(token.token_id) is not token


# The gateway's command to cancel one token (target: its id), and the outcomes an agent
# answers with (the reply's message).
CANCEL = "cancel"
CANCEL_KILLED = "killed"                     # it was queued here: killed, never started
CANCEL_REQUESTED = "cancel_requested"        # it runs: asked to stop; KILLED once it does
CANCEL_FINISHED = "finished"                 # it had finished (or is not held here)


def cancel_outcome(token: TaskToken, asked: bool) -> str:
    """What a cancel did to ``token``: ``asked`` is what ``cancel`` returned."""
    if not asked:
        return CANCEL_FINISHED
    if token.state is TokenState.KILLED and not isinstance(token.error, TokenCancelled):
        return CANCEL_KILLED
    return CANCEL_REQUESTED


def _clean(text: str) -> str:
    """``text`` as valid UTF-8: what cannot be encoded (a lone surrogate) becomes ``?``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def import_includes(modules: tuple[str, ...]) -> list[str]:
    """Import the modules the operator named; their decorated functions become runnable."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import included module {name!r}: {exc}") from None
    return registered_names()


def task_info(spec: TaskSpec) -> pb.TaskInfo:
    return pb.TaskInfo(name=spec.name, weight=spec.tags.weight.value,
                       idempotent=spec.tags.idempotent, operation_type=spec.operation_type,
                       time_limit=float(getattr(spec.tags, "time_limit", None) or 0.0),
                       requires=labels.to_texts(spec.tags.requires),
                       storage_speed=spec.tags.storage.value if spec.tags.storage else "")


class _StartReporter:
    """Scheduler observer: records a token's start for the sender, which reports it if the
    token still runs a few milliseconds later (no wake-up: the next frame carries it)."""

    def __init__(self, link: AgentLink) -> None:
        self._starts = link._starts

    def on_start(self, token: TaskToken) -> None:
        self._starts[token.token_id] = token  # the sender checks it is ours when it reports


class AgentLink:
    """Connects one local scheduler to the gateway."""

    def __init__(self, config: LinkConfig, scheduler: SchedulerPort,
                 status: Callable[[], dict[str, Any]],
                 commands: CommandHandler | None = None) -> None:
        self.config = config
        self.scheduler = scheduler
        self.status = status
        self.commands = commands
        self.incarnation = uuid.uuid4().hex
        self.registered = threading.Event()
        self.fatal = threading.Event()  # the gateway refused us for good (wrong token)
        self.fatal_reason = ""
        self.lease = WorkLease()
        self._lease_seconds = 0.0
        self._stop = threading.Event()
        self._held: dict[str, Held] = {}
        self._revoked: dict[str, TaskToken] = {}  # revoked once claimed, until they end
        self._starts: box.Starts = {}
        self._outbox: queue.SimpleQueue[box.Message] = queue.SimpleQueue()
        self._send_lock = threading.Lock()  # guards _sender, _generation and _seen
        self._seen_changed = threading.Condition(self._send_lock)
        self._seen = 0  # the newest of our frames (this stream) the gateway saw
        self._sender = box.Sender(self._capacity, status, self._starts, self._started,
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
        self.scheduler.add_observer(_StartReporter(self))
        self.scheduler.set_start_gate(_StartGate(self.lease, self._revoked))
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
        returned = [token_id for token_id in list(self._held) if self._give_up(token_id)]
        if returned and self.registered.is_set():
            self._return(tuple(returned))
        if leaving and self.registered.is_set() \
                and not self._until_seen(lambda: self._sender.leaving_seq):
            logger.warning("the gateway did not confirm that we are leaving; it will declare "
                           "this agent lost once its heartbeats stop")
        self._stop.set()
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
                self._outbox.put(box.Replied(self._cancel(command)))
                continue
            threading.Thread(target=self._run_command, args=(command,),
                             name="tg-agent-command", daemon=True).start()

    def _renew(self, seq: int, generation: int) -> None:
        """The gateway saw (and stored) our frames up to ``seq`` of stream ``generation``.
        Sequence numbers start again on each stream, so an ack read from a stream that has
        since been replaced names other frames: it is dropped, not applied."""
        with self._send_lock:
            if generation != self._generation:
                return
            sent = self._sender.sent_at.get(seq)
            self._sender.ack(seq, self._acked)
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
        held = self._held.pop(token_id, None)
        if held is None:
            return None
        token = held.token
        if self.scheduler.kill(token_id) or token.kill():
            return True
        self._revoked[token_id] = token
        token.add_done_callback(lambda t: self._revoked.pop(t.token_id, None))
        return False

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
        for item in items:
            token = self._token_for(item)
            if token is not None:
                self.scheduler.enqueue(token)
        self._received += len(items)
        with self._send_lock:
            view = self._sender.reported.view(self._received)
        # Report at once only when the gateway believes a weight full that is not: otherwise
        # the next frame with results carries the new figures anyway.
        if any(n <= 0 for n in view.values()):
            free = self.scheduler.free_capacity()
            if any(n <= 0 < free.get(w, 0) for w, n in view.items()):
                self._outbox.put(box.CreditsDue())

    def _token_for(self, item: pb.TaskItem) -> TaskToken | None:
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
        self._held[item.token_id] = Held(token, weight, item.codec, item.session,
                                         item.attempt or 1)
        token.add_done_callback(self._on_done)
        return token

    def _run_command(self, command: pb.Command) -> None:
        if self.commands is None:
            reply = pb.CommandReply(id=command.id, ok=False, message="no command handler")
        else:
            try:
                reply = self.commands(command)
            except TokenGateError as exc:
                reply = pb.CommandReply(ok=False, message=f"{wire.error_name(exc)}: {exc}")
            except Exception as exc:  # a failed command is answered, never left unanswered
                logger.exception("command %s failed", command.id)
                reply = pb.CommandReply(ok=False, message=_clean(f"{type(exc).__name__}: "
                                                                 f"{exc}"))
            reply.id = command.id
        self._outbox.put(box.Replied(reply))

    # -- worker threads ---------------------------------------------------------------------

    def _on_done(self, token: TaskToken) -> None:
        held = self._held.get(token.token_id)
        if held is None or held.token is not token:
            return  # revoked: not ours to report
        try:
            item = self._result_item(token, held)
        except Exception as exc:  # whatever it was, the client hears of it
            logger.exception("the outcome of %s cannot be reported as it is", token.token_id)
            item = pb.ResultItem(
                token_id=token.token_id, state=pb.FAILED, attempt=held.attempt,
                node=self.config.name, session=held.owner, finished_at=time.time(),
                error_type="ResultNotReportable",
                error_message=_clean(f"its outcome could not be reported: {exc!r}"))
        self._outbox.put(box.Finished(held.weight, item))

    def _result_item(self, token: TaskToken, held: Held) -> pb.ResultItem:
        state = token.state
        item = pb.ResultItem(
            token_id=token.token_id, state=wire.final_code(state), attempt=held.attempt,
            node=self.config.name, core=token.core_id or 0, worker=token.worker_id or "",
            codec=held.codec, session=held.owner, operation_type=_clean(token.operation_type),
            started_at=token.timestamps.get(TokenState.EXECUTING, 0.0),
            finished_at=token.timestamps.get(state, time.time()))
        if state is TokenState.COMPLETED:
            try:
                item.payload = codec.encode_result(token.result, held.codec,
                                                   self.config.max_result_bytes)
            except TokenGateError as exc:
                item.state = pb.FAILED
                item.error_type, item.error_message = wire.error_name(exc), _clean(str(exc))
        else:  # texts from user code: made valid UTF-8 (protobuf refuses lone surrogates)
            item.error_type = _clean(token.error_type) or wire.TASK_FAILED
            item.error_message = _clean(token.error_message)
            item.traceback = _clean(token.traceback_text)
        return item

    def _started(self, token: TaskToken) -> pb.Started | None:
        """The start report of a token of ours (None if it is no longer ours)."""
        held = self._held.get(token.token_id)
        if held is None or held.token is not token:
            return None
        return pb.Started(token_id=token.token_id, attempt=held.attempt,
                          core=token.core_id or 0, worker=token.worker_id or "",
                          started_at=token.timestamps.get(TokenState.EXECUTING, time.time()))

    def _acked(self, results: list[pb.ResultItem]) -> None:
        """The gateway stored these outcomes: they are no longer ours to keep."""
        for item in results:
            held = self._held.get(item.token_id)
            if held is not None and held.attempt == item.attempt:
                self._held.pop(item.token_id, None)

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
