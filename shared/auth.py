"""The cluster's shared token: reading it, sending it, checking it in constant time.

Every RPC carries ``authorization: Bearer <token>``. The gateway's interceptor refuses any
call without the right token with ``UNAUTHENTICATED`` before a servicer sees it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from tokengate.shared.errors import ConfigurationError

METADATA_KEY = "authorization"
TOKEN_ENV = "TOKENGATE_TOKEN"
TOKEN_FILE_ENV = "TOKENGATE_TOKEN_FILE"
AGENT_METHOD = "/AgentLink"  # the one method the agent token opens


def new_token() -> str:
    return secrets.token_urlsafe(24)


def read_token(token: str | None = None, token_file: str | None = None) -> str:
    """The token given, else the one in ``token_file``, ``TOKENGATE_TOKEN`` or its file."""
    if token:
        return token.strip()
    path = token_file or os.environ.get(TOKEN_FILE_ENV, "")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the token file {path}: {exc}") from None
    return os.environ.get(TOKEN_ENV, "").strip()


def call_metadata(token: str, client_id: str = "") -> tuple[tuple[str, str], ...]:
    bearer = (METADATA_KEY, f"Bearer {token}")
    return (bearer, ("tokengate-client", client_id)) if client_id else (bearer,)


def token_matches(expected: str, metadata: Any) -> bool:
    """Constant-time check of the bearer token among a call's invocation metadata."""
    presented = ""
    for key, value in metadata or ():
        if key == METADATA_KEY:
            presented = value
            break
    candidate = presented[7:] if presented.startswith("Bearer ") else ""
    return hmac.compare_digest(candidate.encode(), f"{expected}".encode()) and bool(expected)


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _abort_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    async def deny(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong TokenGate token")

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


class Credentials:
    """The gateway's tokens: the cluster's, the operator's and the agents' (both optional).

    Without an operator token, the cluster token carries operator rights too. Without an
    agent token, the cluster token lets an agent join; with one, only the agent token does,
    and it opens nothing but the agent link (so a client holding the cluster token cannot
    join as an agent and be sent other clients' calls).
    """

    def __init__(self, token: str, operator_token: str = "", agent_token: str = "") -> None:
        if not token:
            raise ConfigurationError("the gateway needs a shared token (TOKENGATE_TOKEN)")
        self.token = token
        self.operator_token = operator_token
        self.agent_token = agent_token

    def admits(self, metadata: Any, method: str = "") -> bool:
        if token_matches(self.token, metadata):
            return True
        if self.operator_token and token_matches(self.operator_token, metadata):
            return True
        return bool(self.agent_token) and method.endswith(AGENT_METHOD) and \
            token_matches(self.agent_token, metadata)

    def is_operator(self, metadata: Any) -> bool:
        return token_matches(self.operator_token or self.token, metadata)

    def may_join(self, metadata: Any) -> bool:
        return token_matches(self.agent_token or self.token, metadata)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuse every call whose bearer token is missing or wrong, before any servicer runs
    (on the gateway's ``grpc.aio`` server)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    # grpc-stubs say the continuation always finds a handler; grpc gives None for a method no
    # servicer has, and this passes that None on
    async def intercept_service(  # type: ignore[override]
        self, continuation: Callable[[grpc.HandlerCallDetails],
                                     Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or self._credentials.admits(
                handler_call_details.invocation_metadata, handler_call_details.method):
            return handler
        return _abort_handler(handler)


CLIENT_ID_KEY = "tokengate-client"
MAX_CLIENT_ID = 128


def client_id_of(metadata: Any) -> str:
    """The client id a session names itself with (empty if none, or not a plain id)."""
    for key, value in metadata or ():
        if key == CLIENT_ID_KEY:
            text = str(value)
            if 0 < len(text) <= MAX_CLIENT_ID and text.replace("-", "").replace("_", "").isalnum():
                return text
            return ""
    return ""
