"""TokenGate: plain function calls as task tokens on core-pinned workers.

Embedded mode::

    from tokengate import OperationsCoordinator, task_token_guard

    @task_token_guard(operation_type="resize", tags={"weight": "medium"})
    def resize(path): ...

    with OperationsCoordinator():
        token = resize("a.png")
        token.get(timeout=10)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokengate.chain import chain
from tokengate.coordinator import OperationsCoordinator
from tokengate.decorator import task_token_guard
from tokengate.node_agent.guards.retry import RetryPolicy
from tokengate.node_agent.guards.settings import GuardsConfig
from tokengate.shared.call_options import CallOptions
from tokengate.shared.errors import (
    AdmissionTimeout,
    AgentLost,
    AgentRejected,
    AsyncFunctionRefused,
    BadArguments,
    BadRequest,
    ClusterError,
    ConfigurationError,
    Fenced,
    GatewayBusy,
    GatewayUnavailable,
    HistoryUnreadable,
    IdempotencyConflict,
    IllegalTransition,
    InvalidTags,
    InvalidTransition,
    LedgerError,
    MethodBlockedException,
    NoBackend,
    NotReplayable,
    OrderingTimeout,
    PayloadTooLarge,
    PermissionDenied,
    PlacementTimeout,
    QuarantineRecordNotFound,
    RedisUnavailable,
    ResultNotReportable,
    RetryableError,
    SchedulerStopped,
    SnapshotError,
    TaskFailed,
    TaskTimeLimit,
    TokenCancelled,
    TokenGateError,
    TokenKilled,
    TokenQuarantined,
    TokenTimeout,
    Unauthenticated,
    UnknownTask,
    UnknownToken,
    WorkerProcessError,
)
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import ExecutionMode, StorageTier, TaskTags, Weight
from tokengate.shared.token import TaskToken, current_token
from tokengate.waiting import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, as_completed, wait

if TYPE_CHECKING:
    from tokengate.shared.client import ClusterClient


def connect(
    address: str | None = None, *, token: str | None = None, **options: Any
) -> ClusterClient:
    """Cluster mode: decorated calls travel through the gateway at ``address``.

    Defaults come from ``TOKENGATE_GATEWAY`` and ``TOKENGATE_TOKEN``; see
    :func:`tokengate.cluster.connect` for the options. Imported on first use, so embedded
    mode never loads gRPC.
    """
    from tokengate.cluster import connect as connect_cluster

    return connect_cluster(address, token=token, **options)


def __getattr__(name: str) -> Any:
    if name == "ClusterClient":
        from tokengate.shared.client import ClusterClient

        return ClusterClient
    raise AttributeError(f"module 'tokengate' has no attribute {name!r}")

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "AdmissionTimeout",
    "AgentLost",
    "AgentRejected",
    "AsyncFunctionRefused",
    "BadArguments",
    "BadRequest",
    "CallOptions",
    "ClusterClient",
    "ClusterError",
    "ConfigurationError",
    "ExecutionMode",
    "Fenced",
    "GatewayBusy",
    "GatewayUnavailable",
    "GuardsConfig",
    "HistoryUnreadable",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidTags",
    "InvalidTransition",
    "LedgerError",
    "MethodBlockedException",
    "NoBackend",
    "NotReplayable",
    "OperationsCoordinator",
    "OrderingTimeout",
    "PayloadTooLarge",
    "PermissionDenied",
    "PlacementTimeout",
    "QuarantineRecordNotFound",
    "RedisUnavailable",
    "ResultNotReportable",
    "RetryPolicy",
    "RetryableError",
    "SchedulerStopped",
    "SnapshotError",
    "StorageTier",
    "TaskFailed",
    "TaskTags",
    "TaskTimeLimit",
    "TaskToken",
    "TokenCancelled",
    "TokenGateError",
    "TokenKilled",
    "TokenQuarantined",
    "TokenState",
    "TokenTimeout",
    "Unauthenticated",
    "UnknownTask",
    "UnknownToken",
    "Weight",
    "WorkerProcessError",
    "as_completed",
    "chain",
    "connect",
    "current_token",
    "task_token_guard",
    "wait",
]
