"""Embedded mode: the local runtime in this process, behind ``OperationsCoordinator``."""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any

from tokengate import _backend
from tokengate.node_agent.config import SchedulerConfig
from tokengate.node_agent.guards.settings import GuardsConfig
from tokengate.node_agent.runtime import LocalRuntime
from tokengate.shared.call_options import CallOptions
from tokengate.shared.registry import TaskSpec
from tokengate.shared.token import TaskToken

logger = logging.getLogger(__name__)


class OperationsCoordinator:
    """Runs the core-affinity scheduler in this process and receives decorated calls.

    ``OperationsCoordinator(workers_per_core=4, mailbox_capacity=120, ...)`` takes any
    :class:`SchedulerConfig` field as a keyword (``TOKENGATE_*`` environment variables
    give the defaults), or a whole ``config=``. Use ``start()``/``stop()`` or ``with``.

    The guards take any :class:`GuardsConfig` field as a keyword too
    (``auto_block=True``, ``metrics_port=0``, ``quarantine_dir=...``, ``spike_detection=True``,
    ``convergence=True``, ...), or a whole ``guards=GuardsConfig(...)``.
    """

    def __init__(self, config: SchedulerConfig | None = None, *,
                 guards: GuardsConfig | None = None, **options: Any) -> None:
        guard_names = {item.name for item in fields(GuardsConfig)}
        guard_options = {k: v for k, v in options.items() if k in guard_names}
        options = {k: v for k, v in options.items() if k not in guard_names}
        if config is not None and options:
            raise TypeError("pass either config= or keyword options, not both")
        if guards is not None and guard_options:
            raise TypeError("pass either guards= or guard keyword options, not both")
        self.runtime = LocalRuntime(config or SchedulerConfig.from_env(**options),
                                    guards or GuardsConfig.from_env(**guard_options))
        self.config = self.runtime.config
        self.scheduler = self.runtime.scheduler
        self.guards = self.runtime.guards

    def start(self) -> OperationsCoordinator:
        self.runtime.start()
        _backend.install(self)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking calls, let admitted work finish (up to ``timeout``), stop workers."""
        _backend.uninstall(self)
        self.runtime.stop(timeout)

    def __enter__(self) -> OperationsCoordinator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def submit(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: CallOptions | None = None) -> TaskToken:
        """Backend: where decorated calls arrive (``options``: an idempotency key; this
        process keeps keys in memory, ``key_ttl`` seconds after their call finished)."""
        return self.runtime.submit(spec, args, kwargs, options)

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

    # Guards: status, operator actions, quarantine and history.
    def status(self) -> dict[str, Any]:
        """Every status panel in one plain dict (see :mod:`tokengate.node_agent.guards.status`)."""
        return self.runtime.status()

    def reenable(self, function: Any) -> bool:
        """Unblock a function the Guard House blocked (by task name or the function)."""
        return self.runtime.reenable(function)

    def replay_quarantined(self, quarantine_id: str, *, drop: bool = True) -> TaskToken:
        """Run a quarantined call again (skipping the spike check); drop it once it succeeds."""
        return self.runtime.replay(quarantine_id, drop=drop)

    def dump_history(self, path: str | None = None) -> str:
        """Write the execution history ring buffer to JSON (``dumps/`` by default)."""
        return self.runtime.dump_history(path)

    @property
    def metrics_port(self) -> int | None:
        return self.guards.metrics_port
