"""The Python cluster client: decorated calls travel through the gateway to the agents.

``connect("host:50051", token=...)`` returns a :class:`ClusterClient` installed as the
current backend, so ``token = my_task(1)`` submits through the gateway and ``token.get()``
works as in embedded mode. Results are pushed down one long-lived stream, never polled.

Threads: callers of ``submit`` encode their call and put it on the current stream's queue;
the gRPC request thread turns whatever is queued into one frame (sent at once when idle,
coalesced under load); one session thread reads acks and results and resolves tokens, and
reconnects (resubmitting every unfinished call: the gateway ignores duplicates) when the
gateway goes away. ``_lock`` guards ``_outstanding``, ``_unacked``, ``_offered_until`` and
``_stream``.

A call the gateway refuses because it could not store it (``RedisUnavailable``: Redis is
restarting, or stalled) was not stored, so offering it again is safe and its id makes it the
same call if it was stored after all. Like a call refused with ``GatewayBusy``, it keeps its
window slot (backpressure) and is offered again, until ``submit_timeout`` seconds after its
first refusal (``UNAVAILABLE_LIMIT`` when there is none); only then does it fail.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from tokengate.shared import codec, framing, wire
from tokengate.shared.auth import call_metadata
from tokengate.shared.call_options import CallOptions
from tokengate.shared.channel import addresses, open_channel, speaks_tls
from tokengate.shared.client_calls import GatewayCalls
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.client_frames import MAX_FRAME_ITEMS, RECEIVED, frames, watch_frames
from tokengate.shared.client_items import call_item, follow, same_call
from tokengate.shared.errors import (
    AdmissionTimeout,
    BadArguments,
    GatewayBusy,
    GatewayUnavailable,
    TokenGateError,
    Unauthenticated,
    UnknownTask,
    UnknownToken,
)
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.parking import ParkingLot, running_loop
from tokengate.shared.registry import TaskSpec, lookup
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc
from tokengate.shared.tags import TaskTags, parse_tags
from tokengate.shared.token import TaskToken
from tokengate.shared.wire_errors import error_from_rpc, rebuild_exception

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 200  # the gateway's limit on a token id
BUSY_RETRY = 0.1  # seconds before calls refused with GatewayBusy are offered again
UNAVAILABLE_RETRY = 0.25  # seconds before calls refused while Redis is away are offered again
AWAY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)  # try another gateway
UNAVAILABLE_LIMIT = 60.0  # how long those are offered again when submit_timeout is none
CANCEL_UNACKED_WAIT = 5.0  # how long cancel() asks again for a call the gateway has not acked


class ClusterClient(GatewayCalls):
    """A connection to the gateway; implements the backend the decorator submits to."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._codec = codec.codec_id(config.codec)
        self._metadata = call_metadata(config.token, config.client_id)
        # Gateways to try, from a random one (clients spread over them) unless told to start
        # at the first; the session moves to the next when it is lost. Channels are made
        # once per address, closed at close.
        self._addresses = addresses(config.address)
        self._at = random.randrange(len(self._addresses)) if config.spread else 0
        self._channels: dict[str, grpc.Channel] = {}
        self._stub = self._stub_at(self._addresses[self._at])
        self.shard = ""  # the shard of this client's calls, once a gateway named it
        if config.shard:
            self._learn_shard(((wire.SHARD, config.shard),))
        self._lock = threading.Lock()
        self._outstanding: dict[str, tuple[TaskToken, pb.TaskItem]] = {}
        self._unacked: set[str] = set()
        self._offered_until: dict[str, float] = {}  # refused as unavailable: retried until
        # Tokens fetched by id (result(), fetch()): id -> (token, watched as an operator).
        self._fetched: dict[str, tuple[TaskToken, bool]] = {}
        self._window = threading.Semaphore(config.window)
        self._stream: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = threading.Event()
        self.connected = threading.Event()
        self._opened = threading.Event()  # the first session was opened, or refused
        self._refused: GatewayBusy | None = None  # why the first one was refused
        self._call: Any = None
        self._thread: threading.Thread | None = None
        self.close_hooks: list[Any] = []  # called with the client when it closes
        self._received: list[str] = []  # results resolved, not yet reported (under _lock)
        self.parking = ParkingLot(f"client-{config.client_id[:8]}", self._admit_parked,
                                   timeout=config.submit_timeout, capacity=config.park_capacity,
                                   closed_error=_closed_error, lead=config.submit_lead)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The gateway this client talks to now."""
        return self._addresses[self._at]

    def _stub_at(self, address: str) -> rpc.GatewayStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address, self.config.tls,
                                                                self.config.keepalive)
        return rpc.GatewayStub(channel)

    def _next_gateway(self) -> None:
        """Move to the next address (a no-op with one)."""
        if len(self._addresses) > 1:
            self._at = (self._at + 1) % len(self._addresses)
            self._stub = self._stub_at(self.address)
            logger.info("trying gateway %s", self.address)

    def _learn_shard(self, headers: Any) -> None:
        """A gateway named the shard of this client's session: name it from now on, so a
        gateway that adopts the shard after its own died takes this client's session."""
        for key, value in headers or ():
            if key == wire.SHARD and value and value != self.shard:
                self.shard = str(value)
                self._metadata = (*call_metadata(self.config.token, self.config.client_id),
                                  (wire.SHARD, self.shard))

    def connect(self) -> ClusterClient:
        """Check a gateway answers and accepts our token, then open the session."""
        try:
            self.ping(timeout=self.config.connect_timeout)
        except GatewayUnavailable as exc:
            address = self.address
            if not self.config.tls.enabled and speaks_tls(address):
                raise GatewayUnavailable(
                    f"{exc}; the gateway at {address} speaks TLS and this client does not "
                    "(the likely cause): pass its CA with --tls-ca or TOKENGATE_TLS_CA") from None
            raise
        self._thread = threading.Thread(target=self._session_loop, name="tg-client",
                                        daemon=True)
        self._thread.start()
        self._opened.wait(self.config.connect_timeout)
        refused = self._refused
        if refused is not None:  # the gateway serves as many sessions as it may: say so
            self.close()
            raise refused
        return self

    def close(self) -> None:
        for hook in self.close_hooks:
            hook(self)
        self._closed.set()
        self.parking.close()
        self._window.release()  # wakes the parking lot's admitter if it waits for a slot
        with self._lock:
            self._stream.put(None)
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join(5)
        for channel in list(self._channels.values()):
            channel.close()
        self._fail_all(GatewayUnavailable("the cluster client was closed before this token's "
                                          "result arrived"))

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submitting ----------------------------------------------------------------------

    def submit(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: CallOptions | None = None) -> TaskToken:
        """Backend: one decorated call becomes one token submitted through the gateway
        (``options.key``: an idempotency key, see docs/cluster.md "Submit once")."""
        return self._submit(spec.name, spec.operation_type, spec.tags, args, kwargs, spec.func,
                            options.key if options is not None else None)

    def submit_by_name(self, task: str, args: tuple[Any, ...] = (),
                       kwargs: dict[str, Any] | None = None, *, tags: dict[str, Any] | None = None,
                       operation_type: str | None = None, key: str | None = None) -> TaskToken:
        """Submit a task registered on the agents, without importing it here.

        Without ``tags``, a task also registered in this process keeps its own tags. ``key``:
        an idempotency key, as ``fn.options(key=...)`` gives.
        """
        if key is not None:
            CallOptions(key=key)  # checks it
        parsed = parse_tags(tags)
        if tags is None:
            with contextlib.suppress(UnknownTask):
                parsed = lookup(task).tags
        return self._submit(task, operation_type or task.rpartition(":")[2], parsed, args,
                            kwargs or {}, None, key)

    def _submit(self, name: str, operation_type: str, tags: TaskTags, args: tuple[Any, ...],
                kwargs: dict[str, Any], func: Any, key: str | None = None) -> TaskToken:
        """One call: sent when the window has room; else it waits for room here, or, on a
        thread that must not wait, parked (see :meth:`_must_not_wait`, :mod:`shared.parking`)."""
        token, item = self._prepare(name, operation_type, tags, args, kwargs, func, key)
        if not self._must_not_wait():
            return self._admit(token, item, self.config.submit_timeout)
        parked = self._parked_twin(token, item)
        if parked is not None:
            return parked
        if not len(self.parking):
            sent = self._try_admit(token, item)
            if sent is not None:
                return sent
        self.parking.park(token, item)
        return token

    def _must_not_wait(self) -> bool:
        """Whether this thread must never wait for the window: an event loop's (its other
        coroutines would stop), or the session thread, which runs the done callbacks of the
        tokens it resolves (a chain's next step is submitted there): only it frees window
        slots, by reading acks, so waiting there for a slot would stall the client."""
        return running_loop() is not None or threading.current_thread() is self._thread

    def _prepare(self, name: str, operation_type: str, tags: TaskTags, args: tuple[Any, ...],
                 kwargs: dict[str, Any], func: Any,
                 key: str | None) -> tuple[TaskToken, pb.TaskItem]:
        token, item = call_item(name, operation_type, tags, args, kwargs, func, key,
                                self._codec, self.config.max_payload)
        token.canceller = self._cancel
        return token, item

    async def submit_async(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                           options: CallOptions | None = None) -> TaskToken:
        """Backend, awaitable: return the token once the window took the call, or parked
        within ``submit_lead`` (its coroutine waits, the loop does not); see
        :meth:`ParkingLot.submit`."""
        token, item = self._prepare(spec.name, spec.operation_type, spec.tags, args, kwargs,
                                    spec.func, options.key if options is not None else None)
        parked = self._parked_twin(token, item)
        if parked is not None:
            return parked
        if not len(self.parking):
            sent = self._try_admit(token, item)
            if sent is not None:
                await self.parking.pause()
                return sent
        return await self.parking.submit(token, item)

    def _parked_twin(self, token: TaskToken, item: pb.TaskItem) -> TaskToken | None:
        """A keyed call whose key waits parked already: that call's token (or the conflict)."""
        if not item.key:
            return None
        parked = self.parking.find(token.token_id)
        return None if parked is None else same_call(parked, item)

    def _admit(self, token: TaskToken, item: pb.TaskItem, timeout: float | None) -> TaskToken:
        """Wait up to ``timeout`` for a window slot, then send the call; the call's token."""
        if self._closed.is_set():
            raise GatewayUnavailable("the cluster client is closed")
        if not self._window.acquire(timeout=timeout):
            raise AdmissionTimeout(f"{self.config.window} submissions still unacknowledged by "
                                   f"the gateway after {self.config.submit_timeout}s")
        return self._send(token, item)

    def _admit_parked(self, token: TaskToken, item: pb.TaskItem, timeout: float | None) -> None:
        """The parking lot's admission: a keyed call whose key went out meanwhile follows the
        outcome of the call in flight."""
        sent = self._admit(token, item, timeout)
        if sent is not token:
            token.advance(TokenState.WAITING)
            sent.add_done_callback(functools.partial(follow, token))

    def _try_admit(self, token: TaskToken, item: pb.TaskItem) -> TaskToken | None:
        """Send the call if a window slot is free now (its token), else None; never waits."""
        if self._closed.is_set():
            raise GatewayUnavailable("the cluster client is closed")
        if not self._window.acquire(blocking=False):
            return None
        return self._send(token, item)

    def _send(self, token: TaskToken, item: pb.TaskItem) -> TaskToken:
        """Queue a call that holds a window slot on the session's stream; the call's token
        (a keyed call already in flight from this client: that one, or the conflict)."""
        with self._lock:
            if self._closed.is_set():  # close() fails what is outstanding after setting it
                raise GatewayUnavailable("the cluster client is closed")
            kept = self._outstanding.get(token.token_id) if item.key else None
            if kept is None:
                token.advance(TokenState.WAITING)
                self._outstanding[token.token_id] = (token, item)
                self._unacked.add(token.token_id)
                self._stream.put(item)
        if kept is not None:  # the same key, in flight from this client: the same token
            self._window.release()
            return same_call(kept, item)
        return token

    # -- results by id -------------------------------------------------------------------

    def fetch(self, token_id: str, *, any_owner: bool = False) -> TaskToken:
        """A token for a call submitted earlier (by a client of this client id, e.g. this
        process before it restarted; any client's with ``any_owner``, an operator's right),
        resolved when the gateway pushes its stored outcome: within the result TTL (a
        keyed call's: its key TTL). An id the shard does not know, or no longer keeps, fails
        with UnknownToken. A fetch is a read: it does not drop the stored outcome."""
        if not isinstance(token_id, str) or not 0 < len(token_id) <= MAX_ID_LENGTH:
            raise BadArguments(f"a token id is a str of 1 to {MAX_ID_LENGTH} characters")
        if self._closed.is_set():
            raise GatewayUnavailable("the cluster client is closed")
        with self._lock:
            entry = self._outstanding.get(token_id) or self._fetched.get(token_id)
            if entry is not None:
                return entry[0]
            token: TaskToken = TaskToken(None, (), {}, operation_type="result",
                                         tags=parse_tags(None), token_id=token_id)
            token.remote = True
            token.advance(TokenState.WAITING)
            self._fetched[token_id] = (token, any_owner)
            self._stream.put(pb.ClientFrame(watch=[token_id], watch_any=any_owner))
        return token

    def result(self, token_id: str, timeout: float | None = None, *,
               any_owner: bool = False) -> Any:
        """The outcome of a token by its id (see :meth:`fetch`): its result, or its error
        raised (the task's, TokenKilled, UnknownToken, PermissionDenied); TokenTimeout if
        it is not final within ``timeout`` seconds."""
        return self.fetch(token_id, any_owner=any_owner).get(timeout)

    # -- session thread ------------------------------------------------------------------

    def _session_loop(self) -> None:
        backoff = 0.05
        while not self._closed.is_set():
            stream: queue.SimpleQueue[Any] = queue.SimpleQueue()
            with self._lock:
                old, self._stream = self._stream, stream
                old.put(None)
                resend = [item for _, item in self._outstanding.values()]
                fetched = [(i, any_owner) for i, (_, any_owner) in self._fetched.items()]
            for chunk in framing.split(resend, count=MAX_FRAME_ITEMS):
                stream.put(pb.ClientFrame(submit=chunk, resubmit=True))
            for frame in watch_frames(fetched):  # fetches not answered yet: asked again
                stream.put(frame)
            try:
                if self._received:
                    stream.put(RECEIVED)
                self._call = self._stub.Session(frames(stream, self._take_received),
                                                metadata=self._metadata)
                # The gateway says it took the session in its first headers; a refused one
                # has none, and ends as the first reply is read.
                headers = tuple(self._call.initial_metadata() or ())
                if (wire.SESSION_OPEN, "1") in headers:
                    self._learn_shard(headers)
                    self.connected.set()
                    self._opened.set()
                for reply in self._call:
                    backoff = 0.05
                    self._on_reply(reply)
            except grpc.RpcError as exc:
                error = error_from_rpc(exc, "session")
                if isinstance(error, Unauthenticated):
                    self._fail_all(error)
                    self._opened.set()  # connect() waits no longer
                    return
                if isinstance(error, GatewayBusy) and not self._opened.is_set():
                    self._refused = error
                    self._opened.set()
                    return
                if not self._closed.is_set():
                    logger.warning("gateway session lost (%s); reconnecting", error)
                    self._next_gateway()
            except Exception:  # a bug must not strand every waiter: log it, reconnect
                logger.exception("gateway session failed; reconnecting")
            finally:
                self.connected.clear()
            self._closed.wait(backoff)
            backoff = min(1.0, backoff * 2)

    def _on_reply(self, reply: pb.ClientReply) -> None:
        finished: list[tuple[TaskToken, pb.ResultItem]] = []
        with self._lock:
            released = sum(self._ack(token_id) for token_id in reply.accepted)
            busy, unstored, rejected, freed = self._sort_rejections(reply.rejected)
            released += freed
            receipts = []
            for result in reply.results:
                entry = self._outstanding.pop(result.token_id, None)
                if entry is None and self._fetched and result.token_id in self._fetched:
                    continue  # a read by id (below): its outcome stays stored
                if entry is not None:
                    finished.append((entry[0], result))
                receipts.append(result.token_id)
                released += self._ack(result.token_id)  # a result may beat its ack
            if self._fetched:
                self._answer_fetches(reply, finished, rejected)
            receipt_due = bool(receipts) and not self._received
            self._received.extend(receipts)
            stream = self._stream
        # Waiters first: resolving a token wakes whoever is in get(); the bookkeeping below
        # need not stand in their way.
        for token, result in finished:
            self._resolve(token, result)
        for token, rej in rejected:
            message = rej.error_message
            if rej.error_type in wire.NOT_STORED:
                message += f" (offered again for {self._unavailable_limit():.0f}s)"
            token.set_error(rebuild_exception(rej.error_type, message), "")
        for _ in range(released):
            self._window.release()
        if busy:
            self._retry_later(busy, BUSY_RETRY)
        if unstored:
            self._retry_later(unstored, UNAVAILABLE_RETRY)
        if receipt_due:
            stream.put(RECEIVED)

    def _answer_fetches(self, reply: pb.ClientReply,
                        finished: list[tuple[TaskToken, pb.ResultItem]],
                        rejected: list[tuple[TaskToken, pb.Rejected]]) -> None:
        """The outcomes and refusals of tokens fetched by id; holds _lock."""
        for result in reply.results:
            fetched = self._fetched.pop(result.token_id, None)
            if fetched is not None:
                finished.append((fetched[0], result))
        again: list[str] = []
        for rej in reply.rejected:
            if rej.token_id in self._fetched and rej.error_type in wire.NOT_STORED:
                again.append(rej.token_id)  # the gateway could not read Redis: ask again
                continue
            fetched = self._fetched.pop(rej.token_id, None)
            if fetched is not None:
                rejected.append((fetched[0], rej))
        if again:
            self._fetch_later(again, UNAVAILABLE_RETRY)

    def _fetch_later(self, ids: list[str], delay: float) -> None:
        """Ask again for the outcomes of fetched ids the gateway could not look up."""
        self._send_later(delay, lambda: watch_frames(
            (i, self._fetched[i][1]) for i in ids if i in self._fetched))

    def _sort_rejections(self, rejections: Iterable[pb.Rejected]) -> tuple[
            list[pb.TaskItem], list[pb.TaskItem], list[tuple[TaskToken, pb.Rejected]], int]:
        """Calls to offer again (GatewayBusy; not stored), calls refused for good, and the
        window slots those free; holds _lock."""
        busy: list[pb.TaskItem] = []
        unstored: list[pb.TaskItem] = []
        rejected: list[tuple[TaskToken, pb.Rejected]] = []
        released = 0
        now = time.monotonic()
        for rej in rejections:
            entry = self._outstanding.get(rej.token_id)
            if entry is not None and rej.error_type == wire.GATEWAY_BUSY:
                busy.append(entry[1])  # backpressure: offered again, keeps its slot
                continue
            if entry is not None and rej.error_type in wire.NOT_STORED and \
                    self._offer_again(rej.token_id, now):
                unstored.append(entry[1])  # not stored: offered again, keeps its slot
                continue
            self._outstanding.pop(rej.token_id, None)
            released += self._ack(rej.token_id)
            if entry is not None:
                rejected.append((entry[0], rej))
        return busy, unstored, rejected, released

    def _offer_again(self, token_id: str, now: float) -> bool:
        """Whether a call refused as unstored is offered again (not past its limit, counted
        from its first refusal); holds _lock."""
        until = self._offered_until.setdefault(token_id, now + self._unavailable_limit())
        if now < until:
            return True
        del self._offered_until[token_id]
        return False

    def _unavailable_limit(self) -> float:
        limit = self.config.submit_timeout
        return UNAVAILABLE_LIMIT if limit is None else limit

    def _take_received(self) -> list[str]:
        with self._lock:
            received, self._received = self._received, []
        return received

    def _ack(self, token_id: str) -> int:
        """1 if this frees a window slot (first ack of an unacknowledged id); holds _lock."""
        if self._offered_until:
            self._offered_until.pop(token_id, None)
        if token_id in self._unacked:
            self._unacked.discard(token_id)
            return 1
        return 0

    def _retry_later(self, items: list[pb.TaskItem], delay: float) -> None:
        """The gateway is full, or could not store these: offer them again shortly. They keep
        their window slots, so ``submit`` waits (backpressure) instead of memory growing
        anywhere."""
        def resubmit() -> list[pb.ClientFrame]:  # resubmit: a reconnection may have sent them
            live = [item for item in items if item.token_id in self._outstanding]
            return [pb.ClientFrame(submit=live, resubmit=True)] if live else []
        self._send_later(delay, resubmit)

    def _send_later(self, delay: float, frames_of: Callable[[], list[pb.ClientFrame]]) -> None:
        """In ``delay`` seconds, queue the frames ``frames_of`` gives then (under _lock), unless
        the client closed meanwhile."""
        def send() -> None:
            with self._lock:
                if self._closed.is_set():
                    return
                for frame in frames_of():
                    self._stream.put(frame)
        timer = threading.Timer(delay, send)
        timer.daemon = True
        timer.start()

    def _resolve(self, token: TaskToken, result: pb.ResultItem) -> None:
        try:
            self._settle(token, result)
        except Exception as exc:  # whatever the reply held, its waiter hears of it
            logger.exception("the result of %s could not be read", token.token_id)
            token.set_error(exc, "")

    def _settle(self, token: TaskToken, result: pb.ResultItem) -> None:
        state, value, error = wire.final_state(result.state), None, None
        if state is TokenState.COMPLETED:
            try:
                value = codec.decode_result(result.payload, result.codec,
                                            allow_pickle=self._codec == codec.PICKLE)
            except Exception as exc:  # not what it claims to be: the call failed to return
                state, error = TokenState.FAILED, exc
        elif state is TokenState.FAILED or result.error_type:  # KILLED: killed or cancelled
            error = rebuild_exception(result.error_type, result.error_message, result.traceback)
        token.settle_remote(state, value=value, error=error, traceback_text=result.traceback,
                            attempt=result.attempt, node=result.node or None,
                            core=result.core or None, worker=result.worker or None,
                            started_at=result.started_at)

    def _fail_all(self, error: TokenGateError) -> None:
        with self._lock:
            entries = [*self._outstanding.values(), *self._fetched.values()]
            self._outstanding.clear()
            self._fetched.clear()
        for token, _ in entries:
            token.set_error(error, "")

    # -- operator calls ------------------------------------------------------------------

    def _unary(self, method: str, request: Any, timeout: float = 10.0) -> Any:
        """One call to the current gateway; on UNAVAILABLE, once to each other address
        (the first answer that is not UNAVAILABLE counts)."""
        deadline = time.monotonic() + timeout
        for tries_left in range(len(self._addresses) - 1, -1, -1):
            stub = self._stub
            try:
                return getattr(stub, method)(
                    request, metadata=self._metadata, wait_for_ready=True,
                    timeout=max(0.1, (deadline - time.monotonic()) / (tries_left + 1)))
            except grpc.RpcError as exc:
                if not tries_left or exc.code() not in AWAY:
                    raise error_from_rpc(exc, method) from None
                if stub is self._stub:
                    self._next_gateway()
        raise AssertionError("unreachable")

    def kill(self, token: TaskToken | str, *, actor: str = "") -> pb.ControlReply:
        token_id = token if isinstance(token, str) else token.token_id
        return self._unary("Kill", pb.KillRequest(token_id=token_id, actor=actor))

    def _cancel(self, token: TaskToken) -> bool:
        """``token.cancel()`` of one of our tokens: the gateway's Kill (see docs/cancel.md);
        True if it killed the token or asked its running call to stop."""
        parked = self.parking.withdraw(token.token_id)
        if parked is not None:  # not sent yet: it never runs
            return parked.kill()
        deadline = time.monotonic() + CANCEL_UNACKED_WAIT
        while not token.done():
            try:
                return bool(self.kill(token).ok)
            except UnknownToken:
                # Not stored yet (its ack has not come back): ask again once it is, briefly.
                if token.token_id not in self._unacked or time.monotonic() > deadline:
                    raise
            self._closed.wait(0.02)
        return False

    def outstanding(self) -> int:
        return len(self._outstanding)


def _closed_error() -> GatewayUnavailable:
    return GatewayUnavailable("the cluster client was closed before this call was sent")


def open_client(address: str | None = None, *, token: str | None = None,
                **options: Any) -> ClusterClient:
    """Connect to a gateway (``TOKENGATE_GATEWAY``/``TOKENGATE_TOKEN`` by default).

    Raises :class:`GatewayUnavailable` or :class:`Unauthenticated` when it cannot.
    ``tokengate.connect`` wraps this and installs the client as the current backend.
    """
    config = ClientConfig.from_env(address=address, token=token, **options)
    return ClusterClient(config).connect()
