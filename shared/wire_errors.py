"""Errors across the wire: one table between TokenGate errors and gRPC status codes.

Also rebuilds a task's exception on the client from its type name and message: builtin
exception types and TokenGate's own are re-raised as themselves, anything else as
:class:`TaskFailed` carrying the original type name and traceback text. No class is ever
looked up outside those two namespaces.
"""

from __future__ import annotations

import builtins

import grpc
from tokengate.shared import errors

STATUS_OF: dict[type[errors.TokenGateError], grpc.StatusCode] = {
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.BadArguments: grpc.StatusCode.INVALID_ARGUMENT,
    errors.UnknownTask: grpc.StatusCode.NOT_FOUND,
    errors.UnknownToken: grpc.StatusCode.NOT_FOUND,
    errors.PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.GatewayBusy: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.RedisUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.GatewayUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.AgentRejected: grpc.StatusCode.ALREADY_EXISTS,
    errors.ConfigurationError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PlacementTimeout: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_for(error: BaseException) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        code = STATUS_OF.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def error_from_rpc(exc: grpc.RpcError, what: str) -> errors.TokenGateError:
    """Map a failed RPC to the TokenGate error a caller should see."""
    code = exc.code() if hasattr(exc, "code") else None
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return errors.Unauthenticated(f"{what}: the gateway refused the token ({detail})")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED):
        return errors.GatewayUnavailable(f"{what}: gateway unavailable ({detail})")
    for cls, status in STATUS_OF.items():
        if status == code and detail and detail.startswith(errors.wire_name(cls) + ":"):
            return cls(detail.partition(": ")[2])
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return errors.BadRequest(f"{what}: {detail}")
    if code == grpc.StatusCode.NOT_FOUND:
        return errors.UnknownToken(f"{what}: {detail}")
    return errors.ClusterError(f"{what}: {code} {detail}")


def abort_details(error: BaseException) -> str:
    """The status details for a domain error: ``"ClassName: message"``."""
    return f"{errors.wire_name(error)}: {error}"


def rebuild_exception(error_type: str, message: str, traceback_text: str = "") -> Exception:
    """The exception a client re-raises for a task that failed remotely."""
    own = errors.by_wire_name(error_type)
    if own is not None and own is not errors.TaskFailed:
        try:
            return own(message)
        except TypeError:
            pass
    cls = getattr(builtins, error_type, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except TypeError:
            pass
    return errors.TaskFailed(f"{error_type}: {message}", error_type=error_type,
                             traceback_text=traceback_text)
