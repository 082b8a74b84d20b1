"""The gateway's gRPC face: thin servicers over :class:`Gateway`, auth, server lifecycle.

``create_server(config)`` returns ``(server, port, gateway)``; ``listen`` may use port 0.
Domain errors become gRPC status codes through :mod:`tokengate.shared.wire_errors`. Each
long-lived stream holds a server thread, so streams are capped below the thread count
(``GatewayConfig.session_cap`` / ``stream_cap``): agents and control calls always find one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.conns import ClientConn
from tokengate.gateway.gateway import Gateway
from tokengate.gateway.ledger import RedisLedger, TokenLedger
from tokengate.gateway.metrics import serve_metrics
from tokengate.shared.auth import Credentials, TokenAuthInterceptor, client_id_of
from tokengate.shared.channel import MAX_MESSAGE_BYTES, server_credentials
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

SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.so_reuseport", 0),
]


def _unary(context: grpc.ServicerContext, call: Callable[[], T]) -> T:
    try:
        return call()
    except TokenGateError as exc:
        context.abort(status_for(exc), abort_details(exc))
        raise  # unreachable: abort raises


class _Streams:
    """Counts live streams against the caps; ``_lock`` guards the counts."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.sessions = 0
        self.agents = 0

    def enter(self, kind: str) -> None:
        with self._lock:
            total = self.sessions + self.agents
            if total >= self.config.stream_cap or (
                    kind == "session" and self.sessions >= self.config.session_cap):
                raise GatewayBusy(f"the gateway serves as many {kind}s as it may "
                                  f"({self.sessions} sessions, {self.agents} agents); "
                                  "try again later or raise --workers")
            setattr(self, kind + "s", getattr(self, kind + "s") + 1)

    def leave(self, kind: str) -> None:
        with self._lock:
            setattr(self, kind + "s", getattr(self, kind + "s") - 1)


class GatewayServicer(rpc.GatewayServicer):
    def __init__(self, gateway: Gateway, credentials: Credentials) -> None:
        self.gateway = gateway
        self.credentials = credentials
        self.streams = _Streams(gateway.config)

    def _operator(self, context: grpc.ServicerContext) -> None:
        if not self.credentials.is_operator(context.invocation_metadata()):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, abort_details(PermissionDenied(
                "this control needs the operator token")))

    def _enter(self, context: grpc.ServicerContext, kind: str) -> None:
        _unary(context, lambda: self.streams.enter(kind))
        context.add_callback(lambda: self.streams.leave(kind))

    # -- streams -------------------------------------------------------------------------------

    def Session(self, request_iterator: Iterator[pb.ClientFrame],
                context: grpc.ServicerContext) -> Iterator[pb.ClientReply]:
        self._enter(context, "session")
        metadata = context.invocation_metadata()
        conn = ClientConn(context.peer(), client_id_of(metadata),
                          operator=self.credentials.is_operator(metadata),
                          max_bytes=self.gateway.config.session_outbox_bytes)
        gateway = self.gateway
        gateway.open_session(conn)

        def read() -> None:
            try:
                for frame in request_iterator:
                    gateway.on_client_frame(conn, frame)
                conn.finish_requests()
                return
            except grpc.RpcError:
                pass  # the client went away
            except Exception:  # a bug must not leave the client waiting on a dead stream
                logger.exception("client session %s failed", conn.peer)
            conn.close(discard=True)

        context.add_callback(lambda: gateway.close_session(conn))
        threading.Thread(target=read, name="tg-client-reader", daemon=True).start()
        return conn.frames(context)

    def AgentLink(self, request_iterator: Iterator[pb.AgentFrame],
                  context: grpc.ServicerContext) -> Iterator[pb.DispatchFrame]:
        self._enter(context, "agent")
        if not self.credentials.may_join(context.invocation_metadata()):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, abort_details(AgentRejected(
                "this gateway takes agents with its agent token only")))
        gateway = self.gateway
        try:
            first = next(request_iterator)
        except (StopIteration, grpc.RpcError):
            return iter(())
        if not first.HasField("hello"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          abort_details(AgentRejected("the first frame must be a hello")))
        conn = _unary(context, lambda: gateway.join(first))

        def read() -> None:
            try:
                for frame in request_iterator:
                    gateway.on_agent_frame(conn, frame)
            except grpc.RpcError:
                pass
            except RedisUnavailable as exc:
                logger.error("agent %s link dropped (it will resend): %s", conn.name, exc)
            except Exception:
                logger.exception("agent %s link failed", conn.name)
            finally:
                gateway.agent_left(conn)

        context.add_callback(conn.close)
        threading.Thread(target=read, name=f"tg-agent-{conn.name}", daemon=True).start()
        return conn.frames()

    # -- views ---------------------------------------------------------------------------------

    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusReply:
        return _unary(context, self.gateway.views.status)

    def Token(self, request: pb.TokenRequest, context: grpc.ServicerContext) -> pb.TokenDetail:
        metadata = context.invocation_metadata()
        viewer = None if self.credentials.is_operator(metadata) else client_id_of(metadata)
        return _unary(context, lambda: self.gateway.views.token(request.token_id, viewer))

    def Guards(self, request: pb.GuardsRequest, context: grpc.ServicerContext,
               ) -> pb.GuardsReply:
        return _unary(context, self.gateway.views.guards)

    def Series(self, request: pb.SeriesRequest, context: grpc.ServicerContext,
               ) -> pb.SeriesReply:
        return _unary(context, lambda: self.gateway.views.series_points(
            request.seconds or 600, request.since))

    def Audit(self, request: pb.AuditRequest, context: grpc.ServicerContext) -> pb.AuditReply:
        return _unary(context, lambda: self.gateway.views.audit(request.limit or 200))

    def Ping(self, request: pb.PingRequest, context: grpc.ServicerContext) -> pb.PingReply:
        return self.gateway.views.ping()

    # -- controls (operator rights) ------------------------------------------------------------

    def Drain(self, request: pb.DrainRequest, context: grpc.ServicerContext) -> pb.ControlReply:
        self._operator(context)
        control = self.gateway.control
        message = _unary(context, lambda: control.drain(request.node, request.reason,
                                                        request.actor))
        return pb.ControlReply(ok=True, message=message)

    def Resume(self, request: pb.DrainRequest, context: grpc.ServicerContext) -> pb.ControlReply:
        self._operator(context)
        message = _unary(context, lambda: self.gateway.control.resume(request.node,
                                                                      request.actor))
        return pb.ControlReply(ok=True, message=message)

    def Kill(self, request: pb.KillRequest, context: grpc.ServicerContext) -> pb.ControlReply:
        self._operator(context)
        outcome, message = _unary(context, lambda: self.gateway.control.kill(
            request.token_id, request.actor))
        return pb.ControlReply(ok=outcome in ("killed", "forwarded"), message=message,
                               outcome=outcome)

    def Reenable(self, request: pb.ReenableRequest, context: grpc.ServicerContext,
                 ) -> pb.ControlReply:
        self._operator(context)
        return _unary(context, lambda: self.gateway.control.reenable(request.function,
                                                                     request.actor))

    def Quarantine(self, request: pb.QuarantineRequest, context: grpc.ServicerContext,
                   ) -> pb.ControlReply:
        self._operator(context)
        return _unary(context, lambda: self.gateway.control.quarantine(
            request.id, request.action, request.node, request.actor))


def create_server(config: GatewayConfig, ledger: TokenLedger | None = None,
                  lease_wait: float | None = None) -> tuple[grpc.Server, int, Gateway]:
    """Build and start the gateway and its gRPC server; ``config.listen`` may use port 0."""
    config.validate()
    ledger = ledger or RedisLedger.from_url(config.redis_url, prefix=config.key_prefix,
                                            result_ttl=config.result_ttl)
    gateway = Gateway(config, ledger).start(lease_wait)
    credentials = Credentials(config.token, config.operator_token, config.agent_token)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers,
                                                    thread_name_prefix="tg-grpc"),
                         interceptors=[TokenAuthInterceptor(credentials)],
                         options=SERVER_OPTIONS, maximum_concurrent_rpcs=config.workers)
    rpc.add_GatewayServicer_to_server(GatewayServicer(gateway, credentials), server)
    if config.tls.enabled:
        port = server.add_secure_port(config.listen, server_credentials(config.tls))
    else:
        port = server.add_insecure_port(config.listen)
    if not port:
        gateway.stop()
        raise TokenGateError(f"cannot listen on {config.listen}")
    server.start()
    if config.metrics_port is not None:
        serve_metrics(gateway, config.metrics_port)
    logger.info("gateway listening on %s (port %d), redis %s", config.listen, port,
                redacted(config.redis_url))
    return server, port, gateway


def stop_server(server: grpc.Server, gateway: Gateway, grace: float = 2.0) -> None:
    gateway.stop()
    server.stop(grace).wait(grace + 1)


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
