"""The gateway's gRPC face: thin servicers over :class:`Gateway`, auth, server lifecycle.

The server is ``grpc.aio``: every client session and agent link is a pair of coroutines (a
reader handing frames to the gateway, a writer draining the connection's outbox), not a
thread, so a gateway holds thousands of sessions. Its event loop runs on a thread of its own
(:class:`GatewayServer`), so the process's main thread stays free for signals and for tests
that start a gateway in-process.

``create_server(config)`` returns ``(server, port, gateway)``; ``listen`` may use port 0.
Domain errors become gRPC status codes through :mod:`tokengate.shared.wire_errors`. Limits
a person can reason about: at most ``max_sessions`` client sessions and ``max_agents`` agent
links at once, refused past that with ``GatewayBusy``; unary calls (Ping, Status, the
controls) are never refused for lack of room.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import grpc
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import AgentConn, ClientConn
from tokengate.gateway.control import KILL_OK
from tokengate.gateway.directory import Directory
from tokengate.gateway.gateway import Gateway
from tokengate.gateway.ledger import RedisLedger, TokenLedger
from tokengate.gateway.metrics import serve_metrics
from tokengate.gateway.shards import Shards
from tokengate.shared import wire
from tokengate.shared.auth import Credentials, TokenAuthInterceptor, client_id_of
from tokengate.shared.channel import (
    MAX_MESSAGE_BYTES,
    MIN_KEEPALIVE,
    Keepalive,
    server_credentials,
)
from tokengate.shared.errors import (
    AgentRejected,
    GatewayBusy,
    PermissionDenied,
    RedisUnavailable,
    TokenGateError,
)
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc
from tokengate.shared.wire_errors import abort_details, status_for

logger = logging.getLogger(__name__)

T = TypeVar("T")

STARTUP_TIMEOUT = 120.0  # the lease may take a TTL to pass from a dead predecessor
SLOW_QUIET = 0.5  # a session cut off as too slow ends once its client sent nothing this long
SLOW_GRACE = 10.0  # ... or after this long in all
# What a stream's reader meets when the stream is over: the peer went away (an error, a
# cancellation), or this side finished it while the reader waited for the next frame (a lost
# agent's link retired by the registry: "RPC already finished").
STREAM_OVER = (grpc.RpcError, asyncio.InvalidStateError, grpc.aio.UsageError)


def server_options(keepalive: Keepalive) -> list[tuple[str, int]]:
    """The server pings its peers too (``keepalive``): an agent or client whose host went
    silent is dropped, and its stream ends, in bounded time, not after TCP's retries. It
    takes its peers' pings as often as the shortest interval they may be set to."""
    return [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            *keepalive.options(),
            ("grpc.http2.min_ping_interval_without_data_ms", round(MIN_KEEPALIVE * 1000)),
            ("grpc.so_reuseport", 0)]


async def _unary(context: grpc.aio.ServicerContext, call: Awaitable[T]) -> T:
    try:
        return await call
    except TokenGateError as exc:
        await context.abort(status_for(exc), abort_details(exc))
        raise  # unreachable: abort raises


class _Streams:
    """Live streams against their limits (loop-owned counts)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.limits = {"session": config.max_sessions, "agent": config.max_agents}
        self.live = {"session": 0, "agent": 0}

    def enter(self, kind: str) -> None:
        if self.live[kind] >= self.limits[kind]:
            flag = "--max-sessions" if kind == "session" else "--max-agents"
            raise GatewayBusy(f"the gateway serves at most {self.limits[kind]} {kind}s at once "
                              f"({self.live['session']} sessions, {self.live['agent']} agents "
                              f"now); try again later, or raise {flag}")
        self.live[kind] += 1

    def leave(self, kind: str) -> None:
        self.live[kind] -= 1


class GatewayServicer(rpc.GatewayServicer):
    """Each call is served by the gateway of the shard its headers name (``wire.SHARD``;
    none: this gateway's own shard), see :mod:`.shards`."""

    def __init__(self, shards: Shards, credentials: Credentials) -> None:
        self.shards = shards
        self.credentials = credentials
        self.streams = _Streams(shards.home.config)

    async def _shard(self, context: grpc.aio.ServicerContext) -> Gateway:
        name = ""
        for key, value in context.invocation_metadata() or ():
            if key == wire.SHARD:
                name = str(value)
        return await _unary(context, self.shards.get(name))

    async def _token_shard(self, context: grpc.aio.ServicerContext, token_id: str) -> Gateway:
        """The gateway of the shard that holds ``token_id``: the one the headers name, or,
        if the token is in another shard, that shard's (adopted here if nobody serves it;
        UNAVAILABLE if another gateway does: a client tries its next address)."""
        gateway = await self._shard(context)
        found = await _unary(context, self.shards.shard_of(token_id))
        if found is None or found == gateway.config.shard:
            return gateway
        return await _unary(context, self.shards.get(found))

    async def _operator(self, context: grpc.aio.ServicerContext) -> None:
        if not self.credentials.is_operator(context.invocation_metadata()):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, abort_details(
                PermissionDenied("this control needs the operator token")))

    async def _enter(self, context: grpc.aio.ServicerContext, kind: str) -> None:
        try:
            self.streams.enter(kind)
        except GatewayBusy as exc:
            await context.abort(status_for(exc), abort_details(exc))

    # -- streams -------------------------------------------------------------------------------

    async def Session(self, request_iterator: AsyncIterator[pb.ClientFrame],
                      context: grpc.aio.ServicerContext) -> None:
        gateway = await self._shard(context)
        await self._enter(context, "session")
        try:
            await self._session(gateway, request_iterator, context)
        finally:
            self.streams.leave("session")

    async def _session(self, gateway: Gateway, request_iterator: AsyncIterator[pb.ClientFrame],
                       context: grpc.aio.ServicerContext) -> None:
        await context.send_initial_metadata((
            (wire.SESSION_OPEN, "1"), (wire.SHARD, gateway.config.shard)))  # taken: say so
        metadata = context.invocation_metadata()
        conn = ClientConn(context.peer(), client_id_of(metadata),
                          operator=self.credentials.is_operator(metadata),
                          max_bytes=gateway.config.session_outbox_bytes)
        gateway.open_session(conn)
        # The reader is never cancelled: a frame it took is handled to its end (an admission
        # between its store and its answer must not be cut in half by the client leaving);
        # it ends with the stream's requests. The gateway keeps it until then.
        gateway.background.spawn(self._read_session(gateway, conn, request_iterator),
                                 f"tg-session-{conn.peer}")
        try:
            await _write(conn.frames(), context)
            if conn.too_slow:
                await _until_quiet(conn)
        finally:
            gateway.close_session(conn)
        if conn.too_slow:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, conn.too_slow_message())

    async def _read_session(self, gateway: Gateway, conn: ClientConn,
                            frames: AsyncIterator[pb.ClientFrame]) -> None:
        try:
            clock = asyncio.get_running_loop().time
            async for frame in frames:
                conn.last_frame_at = clock()
                await gateway.on_client_frame(conn, frame)
                await gateway.gate.room_for(conn)  # too much held: read no more for now
                conn.last_frame_at = clock()  # idle counts from the end of its handling
            conn.finish_requests()
            return
        except STREAM_OVER:
            pass  # the client went away
        except Exception:  # a bug must not leave the client waiting on a dead stream
            logger.exception("client session %s failed", conn.peer)
        conn.close(discard=True)

    async def AgentLink(self, request_iterator: AsyncIterator[pb.AgentFrame],
                        context: grpc.aio.ServicerContext) -> None:
        gateway = await self._shard(context)
        await self._enter(context, "agent")
        try:
            await self._serve_agent(gateway, request_iterator, context)
        finally:
            self.streams.leave("agent")

    async def _serve_agent(self, gateway: Gateway,
                           request_iterator: AsyncIterator[pb.AgentFrame],
                           context: grpc.aio.ServicerContext) -> None:
        if not self.credentials.may_join(context.invocation_metadata()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, abort_details(AgentRejected(
                "this gateway takes agents with its agent token only")))
        try:
            first = await anext(aiter(request_iterator))
        except (StopAsyncIteration, *STREAM_OVER):
            return
        if not first.HasField("hello"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                abort_details(AgentRejected("the first frame must be a hello")))
        conn = await _unary(context, gateway.join(first))
        await context.send_initial_metadata(((wire.SHARD, gateway.config.shard),))
        gateway.background.spawn(self._read_agent(gateway, conn, request_iterator),
                                 f"tg-link-{conn.name}")  # never cancelled
        try:
            await _write(conn.frames(), context)
        finally:
            self._link_ended(gateway, conn)

    async def _read_agent(self, gateway: Gateway, conn: AgentConn,
                          frames: AsyncIterator[pb.AgentFrame]) -> None:
        try:
            async for frame in frames:
                await gateway.on_agent_frame(conn, frame)
        except STREAM_OVER:
            pass  # the stream ended (UsageError: the gateway ended it: a reconnect, a loss)
        except RedisUnavailable as exc:
            logger.error("agent %s link dropped (it will resend): %s", conn.name, exc)
        except Exception:
            logger.exception("agent %s link failed", conn.name)
        self._link_ended(gateway, conn)

    @staticmethod
    def _link_ended(gateway: Gateway, conn: AgentConn) -> None:
        """The link is over (either side ended it): once, retire it in the background, out
        of reach of the cancellation that may be ending this stream's coroutines."""
        if not conn.left:
            conn.left = True
            gateway.background.spawn(gateway.agent_left(conn), f"tg-left-{conn.name}")

    # -- views ---------------------------------------------------------------------------------

    async def Status(self, request: pb.StatusRequest,
                     context: grpc.aio.ServicerContext) -> pb.StatusReply:
        return await _unary(context, (await self._shard(context)).views.status())

    async def Token(self, request: pb.TokenRequest,
                    context: grpc.aio.ServicerContext) -> pb.TokenDetail:
        metadata = context.invocation_metadata()
        viewer = None if self.credentials.is_operator(metadata) else client_id_of(metadata)
        views = (await self._token_shard(context, request.token_id)).views
        return await _unary(context, views.token(request.token_id, viewer))

    async def Guards(self, request: pb.GuardsRequest,
                     context: grpc.aio.ServicerContext) -> pb.GuardsReply:
        return (await self._shard(context)).views.guards()

    async def Series(self, request: pb.SeriesRequest,
                     context: grpc.aio.ServicerContext) -> pb.SeriesReply:
        views = (await self._shard(context)).views
        return views.series_points(request.seconds or 600, request.since)

    async def Audit(self, request: pb.AuditRequest,
                    context: grpc.aio.ServicerContext) -> pb.AuditReply:
        return await _unary(context, (await self._shard(context)).views.audit(request.limit or 200))

    async def History(self, request: pb.HistoryRequest,
                      context: grpc.aio.ServicerContext) -> pb.HistoryReply:
        await self._operator(context)  # token ids and where they ran, of every client
        return await _unary(context, (await self._shard(context)).control.history(
            request.node, request.limit))

    async def Ping(self, request: pb.PingRequest,
                   context: grpc.aio.ServicerContext) -> pb.PingReply:
        return (await self._shard(context)).views.ping()

    # -- controls (operator rights) ------------------------------------------------------------

    async def Drain(self, request: pb.DrainRequest,
                    context: grpc.aio.ServicerContext) -> pb.ControlReply:
        await self._operator(context)
        if request.node:
            control = (await self._shard(context)).control
            message = await _unary(context, control.drain(request.node, request.reason,
                                                          request.actor))
        else:
            message = await _unary(context, self.shards.drain(request.reason, request.actor))
        return pb.ControlReply(ok=True, message=message)

    async def Resume(self, request: pb.DrainRequest,
                     context: grpc.aio.ServicerContext) -> pb.ControlReply:
        await self._operator(context)
        if request.node:
            control = (await self._shard(context)).control
            message = await _unary(context, control.resume(request.node, request.actor))
        else:
            message = await _unary(context, self.shards.drain(None, request.actor))
        return pb.ControlReply(ok=True, message=message)

    async def Kill(self, request: pb.KillRequest,
                   context: grpc.aio.ServicerContext) -> pb.ControlReply:
        metadata = context.invocation_metadata()
        gateway = await self._token_shard(context, request.token_id)
        if not self.credentials.is_operator(metadata):  # a client may stop its own tokens
            detail = await _unary(context, gateway.views.token(request.token_id,
                                                              client_id_of(metadata)))
            if detail.redacted:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, abort_details(
                    PermissionDenied("a client may kill or cancel only its own tokens; "
                                     "others need the operator token")))
        outcome, message = await _unary(context, gateway.control.kill(request.token_id,
                                                                      request.actor))
        return pb.ControlReply(ok=outcome in KILL_OK, message=message, outcome=outcome)

    async def Reenable(self, request: pb.ReenableRequest,
                       context: grpc.aio.ServicerContext) -> pb.ControlReply:
        await self._operator(context)
        return await _unary(context, (await self._shard(context)).control.reenable(request.function,
                                                                   request.actor))

    async def Quarantine(self, request: pb.QuarantineRequest,
                         context: grpc.aio.ServicerContext) -> pb.ControlReply:
        await self._operator(context)
        return await _unary(context, (await self._shard(context)).control.quarantine(
            request.id, request.action, request.node, request.actor))


async def _until_quiet(conn: ClientConn) -> None:
    """A session over its outbox bound stopped growing at once (its replies are dropped);
    what its client already sent is still admitted before the stream ends: until the client
    has sent nothing for ``SLOW_QUIET`` seconds (or ``SLOW_GRACE`` in all). Ending at once
    dropped the frames gRPC had buffered, never acknowledged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SLOW_GRACE
    while not conn.requests_done and loop.time() < deadline:
        idle = loop.time() - conn.last_frame_at
        if idle >= SLOW_QUIET:
            return
        await asyncio.sleep(SLOW_QUIET - idle)


async def _write(frames: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
    async for frame in frames:
        await context.write(frame)


class GatewayServer:
    """A running gateway: its event loop on a thread of its own, the ``grpc.aio`` server and
    the :class:`Gateway` on that loop. Started and stopped from any other thread."""

    def __init__(self, config: GatewayConfig, ledger: TokenLedger | None = None) -> None:
        self.config = config.validate()
        self._ledger = ledger
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tg-loop",
                                        daemon=True)
        self._server: grpc.aio.Server | None = None
        self.gateway: Gateway | None = None  # the home shard's
        self.shards: Shards | None = None
        self.port = 0

    def start(self, lease_wait: float | None = None) -> GatewayServer:
        self._thread.start()
        try:
            self._call(self._start(lease_wait), STARTUP_TIMEOUT)
        except BaseException:
            self._close_loop()
            raise
        return self

    def stop(self, grace: float = 2.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self._stop(grace), grace + 10)
        finally:
            self._close_loop()

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _close_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()

    async def _start(self, lease_wait: float | None) -> None:
        config = self.config
        ledger = self._ledger or _ledger_for(config)
        gateway = await Gateway(config, ledger).start(lease_wait)
        # Adopting other shards needs ledgers of their own: on Redis, not on a given ledger.
        if self._ledger is None:
            directory = await asyncio.to_thread(Directory, config.redis_url, config.key_prefix)
            await asyncio.to_thread(directory.add, config.shard)  # before it serves
            self.shards = Shards(gateway, _ledger_for, directory)
        else:
            self.shards = Shards(gateway, None)
        credentials = Credentials(config.token, config.operator_token, config.agent_token)
        server = grpc.aio.server(interceptors=[TokenAuthInterceptor(credentials)],
                                 options=server_options(config.keepalive))
        rpc.add_GatewayServicer_to_server(GatewayServicer(self.shards, credentials), server)
        try:
            if config.tls.enabled:
                port = server.add_secure_port(config.listen, server_credentials(config.tls))
            else:
                port = server.add_insecure_port(config.listen)
        except RuntimeError:
            port = 0
        if not port:
            await self.shards.stop()
            await gateway.stop()
            raise TokenGateError(f"cannot listen on {config.listen}")
        await server.start()
        self._server, self.gateway, self.port = server, gateway, port

    async def _stop(self, grace: float) -> None:
        if self._server is not None:
            await self._server.stop(grace)
        if self.shards is not None:
            await self.shards.stop()
        if self.gateway is not None:
            await self.gateway.stop()


def _ledger_for(config: GatewayConfig) -> RedisLedger:
    return RedisLedger.from_url(
        config.redis_url, prefix=config.ledger_prefix, result_ttl=config.result_ttl,
        key_ttl=config.key_ttl, replicas=config.redis_replicas,
        replica_timeout=config.redis_replica_timeout)


def create_server(config: GatewayConfig, ledger: TokenLedger | None = None,
                  lease_wait: float | None = None) -> tuple[GatewayServer, int, Gateway]:
    """Build and start the gateway and its gRPC server; ``config.listen`` may use port 0."""
    server = GatewayServer(config, ledger).start(lease_wait)
    gateway = server.gateway
    assert gateway is not None
    if config.metrics_port is not None:
        serve_metrics(gateway, config.metrics_port)
    logger.info("gateway listening on %s (port %d), redis %s", config.listen, server.port,
                redacted(config.redis_url))
    return server, server.port, gateway


def stop_server(server: GatewayServer, gateway: Gateway, grace: float = 2.0) -> None:
    server.stop(grace)


def redacted(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    return f"{head.split('//')[0]}//***@{tail}" if sep else url


def serve_forever(config: GatewayConfig, stop: threading.Event, on_ready: Any = None) -> None:
    server, port, gateway = create_server(config)
    if on_ready is not None:
        on_ready(port)
    try:
        while not stop.wait(0.5):
            if gateway.lost_lease.is_set():
                raise TokenGateError("another gateway took this gateway's Redis prefix")
    finally:
        stop_server(server, gateway)
