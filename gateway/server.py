"""The gateway's gRPC face: thin servicers over :class:`Gateway`, auth, server lifecycle.

``create_server(config)`` returns ``(server, port, gateway)``; ``listen`` may use port 0.
Domain errors become gRPC status codes through :mod:`shared.wire_errors`.
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
from tokengate.gateway.control import Gateway
from tokengate.gateway.ledger import RedisLedger
from tokengate.shared.auth import TokenAuthInterceptor
from tokengate.shared.channel import MAX_MESSAGE_BYTES, server_credentials
from tokengate.shared.errors import RedisUnavailable, TokenGateError
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


class GatewayServicer(rpc.GatewayServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    # -- streams ---------------------------------------------------------------------------

    def Session(self, request_iterator: Iterator[pb.ClientFrame],
                context: grpc.ServicerContext) -> Iterator[pb.ClientReply]:
        conn = ClientConn(context.peer())
        gateway = self.gateway

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
            conn.close()

        def closed() -> None:
            conn.close()
            gateway.drop_session(conn)

        context.add_callback(closed)
        threading.Thread(target=read, name="tg-client-reader", daemon=True).start()
        return conn.frames()

    def AgentLink(self, request_iterator: Iterator[pb.AgentFrame],
                  context: grpc.ServicerContext) -> Iterator[pb.DispatchFrame]:
        gateway = self.gateway
        try:
            first = next(request_iterator)
        except (StopIteration, grpc.RpcError):
            return iter(())
        if not first.HasField("hello"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "BadRequest: first frame must be hello")
        conn = _unary(context, lambda: gateway.register_agent(first.hello, list(first.credits)))

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
                gateway.agent_disconnected(conn)

        context.add_callback(conn.close)
        conn.send_ack(0)  # tells the agent it is registered
        threading.Thread(target=read, name=f"tg-agent-{conn.name}", daemon=True).start()
        return conn.frames()

    # -- operator calls --------------------------------------------------------------------

    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusReply:
        return _unary(context, self.gateway.status)

    def Drain(self, request: pb.DrainRequest, context: grpc.ServicerContext) -> pb.ControlReply:
        message = _unary(context, lambda: self.gateway.drain(request.node, request.reason))
        return pb.ControlReply(ok=True, message=message)

    def Resume(self, request: pb.DrainRequest, context: grpc.ServicerContext) -> pb.ControlReply:
        message = _unary(context, lambda: self.gateway.resume(request.node))
        return pb.ControlReply(ok=True, message=message)

    def Kill(self, request: pb.KillRequest, context: grpc.ServicerContext) -> pb.ControlReply:
        outcome, message = _unary(context, lambda: self.gateway.kill(request.token_id))
        return pb.ControlReply(ok=outcome in ("killed", "forwarded"), message=message,
                               outcome=outcome)

    def Ping(self, request: pb.PingRequest, context: grpc.ServicerContext) -> pb.PingReply:
        return self.gateway.ping()


def create_server(config: GatewayConfig, ledger: RedisLedger | None = None,
                  ) -> tuple[grpc.Server, int, Gateway]:
    """Build and start the gateway and its gRPC server; ``config.listen`` may use port 0."""
    config.validate()
    ledger = ledger or RedisLedger.from_url(config.redis_url, prefix=config.key_prefix,
                                            result_ttl=config.result_ttl)
    gateway = Gateway(config, ledger).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers,
                                                    thread_name_prefix="tg-grpc"),
                         interceptors=[TokenAuthInterceptor(config.token)],
                         options=SERVER_OPTIONS,
                         # Beyond this, a call is refused (RESOURCE_EXHAUSTED) instead of
                         # waiting for a thread that a long-lived stream holds.
                         maximum_concurrent_rpcs=config.workers)
    rpc.add_GatewayServicer_to_server(GatewayServicer(gateway), server)
    if config.tls.enabled:
        port = server.add_secure_port(config.listen, server_credentials(config.tls))
    else:
        port = server.add_insecure_port(config.listen)
    if not port:
        gateway.stop()
        raise TokenGateError(f"cannot listen on {config.listen}")
    server.start()
    logger.info("gateway listening on %s (port %d), redis %s", config.listen, port,
                _redacted(config.redis_url))
    return server, port, gateway


def stop_server(server: grpc.Server, gateway: Gateway, grace: float = 2.0) -> None:
    gateway.stop()
    server.stop(grace).wait(grace + 1)


def _redacted(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    return f"{head.split('//')[0]}//***@{tail}" if sep else url


def serve_forever(config: GatewayConfig, stop: threading.Event, on_ready: Any = None) -> None:
    server, port, gateway = create_server(config)
    if on_ready is not None:
        on_ready(port)
    try:
        stop.wait()
    finally:
        stop_server(server, gateway)
