"""Embedded mode: the local scheduler in this process, behind ``OperationsCoordinator``."""

from __future__ import annotations

import logging
from typing import Any

from node_agent.config import SchedulerConfig
from node_agent.scheduler import LocalScheduler
from shared.registry import TaskSpec
from shared.token import TaskToken
from tokengate import _backend

logger = logging.getLogger(__name__)


class OperationsCoordinator:
    """Runs the core-affinity scheduler in this process and receives decorated calls.

    ``OperationsCoordinator(workers_per_core=4, mailbox_capacity=120, ...)`` takes any
    :class:`SchedulerConfig` field as a keyword (``TOKENGATE_*`` environment variables
    give the defaults), or a whole ``config=``. Use ``start()``/``stop()`` or ``with``.
    """

    def __init__(self, config: SchedulerConfig | None = None, **options: Any) -> None:
        if config is not None and options:
            raise TypeError("pass either config= or keyword options, not both")
        self.config = config or SchedulerConfig.from_env(**options)
        self.scheduler = LocalScheduler(self.config)

    def start(self) -> OperationsCoordinator:
        self.scheduler.start()
        _backend.install(self)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking calls, let admitted work finish (up to ``timeout``), stop workers."""
        _backend.uninstall(self)
        self.scheduler.stop(timeout)

    def __enter__(self) -> OperationsCoordinator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Backend: where decorated calls arrive.
    def submit(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskToken:
        token: TaskToken = TaskToken(
            spec.func, args, kwargs, operation_type=spec.operation_type, tags=spec.tags
        )
        self.scheduler.submit(token)
        return token

    # Control and observation, delegated to the scheduler that owns the state.
    def drain(self, reason: str = "") -> None:
        self.scheduler.drain(reason)

    def resume(self) -> None:
        self.scheduler.resume()

    def kill(self, token: TaskToken | str) -> bool:
        return self.scheduler.kill(token if isinstance(token, str) else token.token_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self.scheduler.wait_idle(timeout)

    def snapshot(self) -> dict[str, Any]:
        return self.scheduler.snapshot()
