"""The agent's gRPC link: register, grant credits, take dispatched batches, send results back.

Threads and what each owns:

- the *link* thread opens the stream (hello first), reads dispatch frames, turns each item
  into a :class:`TaskToken` resolved only through :mod:`shared.registry`, and hands it to the
  local scheduler's ``submit`` (so every embedded rule applies: weights, pinning, tiers,
  guards); it reconnects with backoff when the gateway goes away;
- gRPC's request thread of the current stream runs :meth:`AgentLink._frames`, the sender: it
  coalesces finished tokens into one frame per wake-up (one credit back per finished token),
  heartbeats when idle, and after a reconnect first resends what was not acknowledged. The
  sender state (sequence, unacknowledged frames) is guarded by ``_send_lock`` and tied to a
  stream generation, so a dying stream's thread hands back what it took.

Workers only encode their token's result and put it on the outbox.
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
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import msgpack
from tokengate.node_agent.link_config import LinkConfig
from tokengate.shared import codec, framing
from tokengate.shared.auth import call_metadata
from tokengate.shared.channel import open_channel
from tokengate.shared.errors import ConfigurationError, TokenGateError
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.registry import lookup, registered_names
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc
from tokengate.shared.token import TaskToken

logger = logging.getLogger(__name__)

MAX_FRAME_RESULTS = 1000
SNAPSHOT_EVERY = 1.0
_FINAL_CODES = {TokenState.COMPLETED: pb.COMPLETED, TokenState.FAILED: pb.FAILED,
                TokenState.KILLED: pb.KILLED}


def import_includes(modules: tuple[str, ...]) -> list[str]:
    """Import the modules the operator named; their decorated functions become runnable."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import included module {name!r}: {exc}") from None
    return registered_names()


class AgentLink:
    """Connects one local scheduler to the gateway."""

    def __init__(self, config: LinkConfig, scheduler: Any,
                 status: Callable[[], dict[str, Any]] | None = None) -> None:
        """``status`` gives the plain-data status sent to the gateway every second (the
        scheduler's snapshot by default; the agent passes its coordinator's, guards included).
        """
        self.config = config
        self.scheduler = scheduler
        self.status = status or scheduler.snapshot
        self.incarnation = uuid.uuid4().hex
        self.registered = threading.Event()
        self._stop = threading.Event()
        # id -> token, weight, codec, session; until the gateway acks the token's result
        self._held: dict[str, tuple[TaskToken, str, int, str]] = {}
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()  # the sender's input
        self._send_lock = threading.Lock()  # guards _sender and _generation
        self._sender = _Sender(self)
        self._generation = 0
        self._call: Any = None
        self._threads: list[threading.Thread] = []
        self.tasks: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> AgentLink:
        self.tasks = import_includes(self.config.includes)
        if not self.tasks:
            logger.warning("no tasks registered: include the modules that define them")
        thread = threading.Thread(target=self._link_loop, name="tg-agent-link", daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def stop(self, timeout: float = 5.0, drain: float = 0.0) -> None:
        """Leave the cluster. With ``drain`` > 0, first tell the gateway we are leaving (it
        sends nothing more) and give admitted work up to ``drain`` seconds to finish and its
        results to be stored; the gateway hands whatever is left to other agents at once."""
        if drain > 0 and self.registered.is_set():
            self._outbox.put(("leaving", None))
            deadline = time.monotonic() + drain
            self.scheduler.wait_idle(drain)
            while self._held and time.monotonic() < deadline and self.registered.is_set():
                self._stop.wait(0.02)  # results in flight: their acks empty _held
        self._stop.set()
        self._outbox.put(("stop", None))
        call = self._call
        if call is not None:
            call.cancel()
        for thread in self._threads:
            thread.join(timeout)

    # -- link thread ---------------------------------------------------------------------

    def _link_loop(self) -> None:
        backoff = 0.1
        metadata = call_metadata(self.config.token)
        while not self._stop.is_set():
            channel = open_channel(self.config.gateway, self.config.tls)
            with self._send_lock:
                self._generation += 1
                generation = self._generation
            try:
                self._call = rpc.GatewayStub(channel).AgentLink(
                    self._frames(generation, self._hello()), metadata=metadata)
                for frame in self._call:
                    if not self.registered.is_set():
                        self.registered.set()
                        logger.info("registered with gateway %s as %s", self.config.gateway,
                                    self.config.name)
                        backoff = 0.1
                    self._on_frame(frame)
            except grpc.RpcError as exc:
                self._log_rpc_error(exc)
            finally:
                self.registered.clear()
                with self._send_lock:
                    self._generation += 1  # the old stream's sender stops and hands back
                self._outbox.put(("wake", None))
                channel.close()
            self._stop.wait(backoff)
            backoff = min(self.config.max_backoff, backoff * 2)

    def _log_rpc_error(self, exc: grpc.RpcError) -> None:
        if self._stop.is_set():
            return
        code = exc.code() if hasattr(exc, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            logger.error("the gateway refused this agent's token; check TOKENGATE_TOKEN")
        elif code == grpc.StatusCode.ALREADY_EXISTS:
            logger.error("the gateway refused the name %s: %s", self.config.name, exc.details())
        else:
            logger.warning("link to gateway %s lost (%s); reconnecting", self.config.gateway,
                           code)

    def _hello(self) -> pb.AgentFrame:
        free = self.scheduler.free_capacity()
        snapshot = self.scheduler.snapshot()
        topology = {"topology": snapshot.get("topology", {}), "workers": snapshot.get("workers"),
                    "workers_per_core": snapshot.get("workers_per_core"),
                    "mailbox_capacity": snapshot.get("mailbox_capacity"),
                    "policy": snapshot.get("policy", {})}
        hello = pb.Hello(name=self.config.name, incarnation=self.incarnation,
                         host=socket.gethostname(), pid=os.getpid(),
                         topology=msgpack.packb(topology, default=str),
                         tasks=self.tasks, held=list(self._held))
        return pb.AgentFrame(hello=hello, credits=[
            pb.Credit(weight=getattr(w, "value", str(w)), count=max(0, int(n)))
            for w, n in free.items()])

    def _on_frame(self, frame: pb.DispatchFrame) -> None:
        if frame.ack_seq:
            self._outbox.put(("ack", frame.ack_seq))
        for token_id in frame.kill:
            self._kill(token_id)
        submit = self.scheduler.submit
        for item in frame.tasks:
            token = self._token_for(item)
            if token is None:
                continue
            try:
                submit(token, timeout=None)  # backpressure waits here, bounded by our credits
            except TokenGateError as exc:  # refused at admission (guards, stopped)
                token.set_error(exc, "")

    def _token_for(self, item: pb.TaskItem) -> TaskToken | None:
        if item.token_id in self._held:
            return None  # resent after a reconnect while we still hold it
        weight = item.weight or "medium"
        try:
            spec = lookup(item.task)
            args, kwargs = codec.decode_call(item.payload, item.codec,
                                             allow_pickle=self.config.allow_pickle)
        except TokenGateError as exc:
            self._outbox.put((weight, pb.ResultItem(
                token_id=item.token_id, state=pb.FAILED, error_type=type(exc).__name__,
                error_message=str(exc), attempt=item.attempt, node=self.config.name,
                finished_at=time.time(), session=item.session)))
            return None
        token: TaskToken = TaskToken(spec.func, args, kwargs, operation_type=spec.operation_type,
                                     tags=spec.tags, token_id=item.token_id,
                                     attempt=item.attempt or 1)
        self._held[item.token_id] = (token, weight, item.codec, item.session)
        token.add_done_callback(self._on_done)
        return token

    def _kill(self, token_id: str) -> None:
        if self.scheduler.kill(token_id):
            return
        held = self._held.get(token_id)
        if held is not None:
            held[0].kill()  # not yet in the scheduler: it is skipped at submit

    # -- worker threads ------------------------------------------------------------------

    def _on_done(self, token: TaskToken) -> None:
        held = self._held.get(token.token_id)
        weight, code, session = (held[1], held[2], held[3]) if held else (
            token.tags.weight.value, codec.MSGPACK, "")
        state = token.state
        item = pb.ResultItem(
            token_id=token.token_id, state=_FINAL_CODES.get(state, pb.FAILED),
            attempt=token.attempt, node=self.config.name, core=token.core_id or 0,
            worker=token.worker_id or "", codec=code, session=session,
            operation_type=token.operation_type,
            started_at=token.timestamps.get(TokenState.EXECUTING, 0.0),
            finished_at=token.timestamps.get(state, time.time()))
        if state is TokenState.COMPLETED:
            try:
                item.payload = codec.encode_result(token.result, code,
                                                   self.config.max_result_bytes)
            except TokenGateError as exc:
                item.state = pb.FAILED
                item.error_type, item.error_message = type(exc).__name__, str(exc)
        else:
            item.error_type = token.error_type or "TaskFailed"
            item.error_message = token.error_message
            item.traceback = token.traceback_text
        self._outbox.put((weight, item))

    # -- sender: runs on the current stream's gRPC request thread ---------------------

    def _frames(self, generation: int, hello: pb.AgentFrame) -> Iterator[pb.AgentFrame]:
        yield hello
        with self._send_lock:
            resend = self._sender.resend() if generation == self._generation else None
        if resend is None:
            return
        yield from resend
        outbox, interval = self._outbox, self.config.heartbeat_interval
        while True:
            try:
                entries = [outbox.get(timeout=interval)]
            except queue.Empty:
                entries = []
            size = sum(_entry_bytes(entry) for entry in entries)
            while len(entries) < MAX_FRAME_RESULTS and size < framing.FRAME_SOFT_LIMIT:
                try:
                    entry = outbox.get_nowait()
                except queue.Empty:
                    break
                entries.append(entry)
                size += _entry_bytes(entry)
            with self._send_lock:
                if generation != self._generation or self._stop.is_set():
                    for entry in entries:  # not ours any more: the next stream sends them
                        if entry[0] not in ("wake", "stop"):
                            outbox.put(entry)
                    return
                frame = self._sender.frame(entries)
            if frame is not None:
                yield frame


def _entry_bytes(entry: tuple[str, Any]) -> int:
    value = entry[1]
    return framing.result_bytes(value) if isinstance(value, pb.ResultItem) else 0


class _Sender:
    """The sender's state: frame sequence and the frames the gateway has not stored yet."""

    def __init__(self, link: AgentLink) -> None:
        self.link = link
        self.unacked: dict[int, list[pb.ResultItem]] = {}
        self.seq = 0
        self.last_snapshot = 0.0
        self.leaving = False

    def resend(self) -> list[pb.AgentFrame]:
        frames = [pb.AgentFrame(results=items, seq=seq) for seq, items in self.unacked.items()]
        if self.leaving:
            frames.append(pb.AgentFrame(leaving=True))
        return frames

    def frame(self, entries: list[tuple[str, Any]]) -> pb.AgentFrame | None:
        """Turn one batch of outbox entries into at most one frame."""
        results: list[pb.ResultItem] = []
        credits: Counter[str] = Counter()
        leaving = False
        for kind, value in entries:
            if kind == "ack":
                self._ack(value)
            elif kind == "leaving":
                leaving = self.leaving = True
            elif kind not in ("wake", "stop"):
                results.append(value)
                credits[kind] += 1
        frame = pb.AgentFrame(credits=[pb.Credit(weight=w, count=n) for w, n in credits.items()],
                              leaving=leaving)
        if results:
            self.seq += 1
            frame.results.extend(results)
            frame.seq = self.seq
            self.unacked[self.seq] = results
        now = time.monotonic()
        if now - self.last_snapshot >= SNAPSHOT_EVERY:
            self.last_snapshot = now
            frame.snapshot = msgpack.packb(self.link.status(), default=str)
        # An empty frame after an idle wait is the heartbeat.
        if results or credits or leaving or not entries or frame.snapshot:
            return frame
        return None

    def _ack(self, upto: int) -> None:
        held = self.link._held
        for seq in [s for s in self.unacked if s <= upto]:
            for item in self.unacked.pop(seq):
                held.pop(item.token_id, None)
