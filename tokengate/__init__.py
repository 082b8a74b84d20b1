"""TokenGate: plain function calls as task tokens on core-pinned workers.

Embedded mode::

    from tokengate import OperationsCoordinator, task_token_guard

    @task_token_guard(operation_type="resize", tags={"weight": "medium"})
    def resize(path): ...

    with OperationsCoordinator():
        token = resize("a.png")
        token.get(timeout=10)
"""

from node_agent.guards.retry import RetryableError, RetryPolicy
from node_agent.guards.settings import GuardsConfig
from shared.errors import (
    AdmissionTimeout,
    AsyncFunctionRefused,
    ConfigurationError,
    InvalidTags,
    MethodBlockedException,
    NoBackend,
    SchedulerStopped,
    TokenGateError,
    TokenKilled,
    TokenQuarantined,
    TokenTimeout,
    UnknownTask,
)
from shared.lifecycle import TokenState
from shared.tags import ExecutionMode, StorageTier, TaskTags, Weight
from shared.token import TaskToken
from tokengate.chain import chain
from tokengate.coordinator import OperationsCoordinator
from tokengate.decorator import task_token_guard

__all__ = [
    "AdmissionTimeout",
    "AsyncFunctionRefused",
    "ConfigurationError",
    "ExecutionMode",
    "GuardsConfig",
    "InvalidTags",
    "MethodBlockedException",
    "NoBackend",
    "OperationsCoordinator",
    "RetryPolicy",
    "RetryableError",
    "SchedulerStopped",
    "StorageTier",
    "TaskTags",
    "TaskToken",
    "TokenGateError",
    "TokenKilled",
    "TokenQuarantined",
    "TokenState",
    "TokenTimeout",
    "UnknownTask",
    "Weight",
    "chain",
    "task_token_guard",
]
