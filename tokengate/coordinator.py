"""Embedded mode: the local runtime in this process, behind ``OperationsCoordinator``."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from tokengate import _backend
from tokengate.node_agent.config import SchedulerConfig
from tokengate.node_agent.guards.settings import GuardsConfig
from tokengate.node_agent.runtime import LocalRuntime
from tokengate.shared.call_options import CallOptions
from tokengate.shared.errors import ConfigurationError, SchedulerStopped
from tokengate.shared.parking import ParkingLot, running_loop
from tokengate.shared.registry import TaskSpec
from tokengate.shared.token import TaskToken

if TYPE_CHECKING:
    from tokengate.dashboard import Dashboard, DashboardConfig

logger = logging.getLogger(__name__)


class OperationsCoordinator:
    """Runs the core-affinity scheduler in this process and receives decorated calls.

    ``OperationsCoordinator(workers_per_core=4, mailbox_capacity=120, ...)`` takes any
    :class:`SchedulerConfig` field as a keyword (``TOKENGATE_*`` environment variables
    give the defaults), or a whole ``config=``. Use ``start()``/``stop()`` or ``with``.

    The guards take any :class:`GuardsConfig` field as a keyword too
    (``auto_block=True``, ``metrics_port=0``, ``quarantine_dir=...``, ``spike_detection=True``,
    ``convergence=True``, ...), or a whole ``guards=GuardsConfig(...)``.

    A decorated call made on a thread that runs an asyncio event loop never waits there: it
    returns its token at once and the call waits, parked, for room (see
    :mod:`tokengate.shared.parking`); ``await fn.submit_async(...)`` waits (the coroutine
    only) until its call is admitted, once ``submit_lead`` calls wait before it.

    ``dashboard=DashboardConfig(password=...)`` serves the live dashboard for this process
    from ``start()`` to ``stop()`` (or call :meth:`serve_dashboard` once started): the
    cluster's pages and controls, reading and driving this coordinator in-process.
    """

    def __init__(self, config: SchedulerConfig | None = None, *,
                 guards: GuardsConfig | None = None, dashboard: DashboardConfig | None = None,
                 **options: Any) -> None:
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
        self.parking = ParkingLot(self.config.node_name, self._admit_parked,
                                  timeout=self.config.submit_timeout,
                                  capacity=self.config.park_capacity,
                                  closed_error=_stopped_error, lead=self.config.submit_lead)
        self._dashboard_config = dashboard
        self.dashboard: Dashboard | None = None

    def start(self) -> OperationsCoordinator:
        self.runtime.start()
        _backend.install(self)
        if self._dashboard_config is not None:
            try:
                self.serve_dashboard(self._dashboard_config)
            except BaseException:
                self.stop(0)
                raise
        return self

    def serve_dashboard(self, config: DashboardConfig | None = None,
                        **options: Any) -> Dashboard:
        """Serve the dashboard for this coordinator (until :meth:`stop`); its URL is
        ``coord.dashboard.url``. ``options`` are :class:`DashboardConfig` fields
        (``password=``, ``listen="127.0.0.1:0"``, ...), over ``TOKENGATE_DASHBOARD_*``; it
        listens on loopback unless told otherwise, and refuses to start without a password."""
        from tokengate.dashboard import Dashboard, DashboardConfig
        from tokengate.dashboard.embedded import EmbeddedSource

        if self.dashboard is not None:
            raise ConfigurationError(f"this coordinator already serves {self.dashboard.url}")
        if config is not None and options:
            raise TypeError("pass either a DashboardConfig or keyword options, not both")
        config = config or DashboardConfig.from_env(**options)
        self.dashboard = Dashboard(config, EmbeddedSource(self)).start()
        logger.info("embedded dashboard on %s", self.dashboard.url)
        return self.dashboard

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking calls, let admitted work finish (up to ``timeout``), stop workers.

        Calls parked by an event loop are admitted first, within the same ``timeout``; those
        still parked then fail with ``SchedulerStopped``.
        """
        if self.dashboard is not None:
            self.dashboard.stop()
            self.dashboard = None
        _backend.uninstall(self)
        wait = self.config.stop_timeout if timeout is None else timeout
        started = time.monotonic()
        self.parking.close(wait)
        self.runtime.stop(max(0.0, wait - (time.monotonic() - started)))

    def __enter__(self) -> OperationsCoordinator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def submit(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: CallOptions | None = None) -> TaskToken:
        """Backend: where decorated calls arrive (``options``: an idempotency key; this
        process keeps keys in memory, ``key_ttl`` seconds after their call finished). On an
        event loop's thread the call is parked and its token returned at once; elsewhere it
        waits for room here."""
        if running_loop() is None:
            return self.runtime.submit(spec, args, kwargs, options)
        return self.runtime.submit(spec, args, kwargs, options, enqueue=self.parking.park)

    async def submit_async(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                           options: CallOptions | None = None) -> TaskToken:
        """Backend, awaitable: return the token once the call is admitted, or parked within
        ``submit_lead`` (its coroutine waits, the loop does not); see
        :meth:`ParkingLot.submit`. A key already kept gives its token at once."""
        loop = asyncio.get_running_loop()
        promised: list[asyncio.Future[None] | None] = []

        def park(token: TaskToken) -> None:
            promised.append(self.parking.park_for(token, None, loop))

        token = self.runtime.submit(spec, args, kwargs, options, enqueue=park)
        return await self.parking.admitted(token, promised[0] if promised else None)

    def _admit_parked(self, token: TaskToken, _item: Any, timeout: float | None) -> None:
        self.scheduler.submit(token, timeout)

    # Control and observation, delegated to the scheduler that owns the state.
    def drain(self, reason: str = "") -> None:
        self.scheduler.drain(reason)

    def resume(self) -> None:
        self.scheduler.resume()

    def kill(self, token: TaskToken | str) -> bool:
        token_id = token if isinstance(token, str) else token.token_id
        parked = self.parking.withdraw(token_id)
        if parked is not None:
            return parked.kill()
        return self.scheduler.kill(token_id)

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

    def drop_quarantined(self, quarantine_id: str) -> None:
        """Delete a quarantined call without running it."""
        self.runtime.drop_quarantined(quarantine_id)

    def guard_report(self) -> str:
        """The seed's Guard House report of this process: functions by health class
        ("EXCELLENT PERFORMERS (>95% success)", ...), with rates, counts and mean times."""
        from tokengate.guard_report import snapshot_report

        return snapshot_report(self.guards.guard_house.snapshot(), scope="embedded")

    def banner(self) -> list[str]:
        """The start-up banner's lines (logged at INFO by ``start()``)."""
        return self.runtime.banner()

    def dump_history(self, path: str | None = None) -> str:
        """Write the execution history ring buffer to JSON (``dumps/`` by default)."""
        return self.runtime.dump_history(path)

    @property
    def metrics_port(self) -> int | None:
        return self.guards.metrics_port


def _stopped_error() -> SchedulerStopped:
    return SchedulerStopped("the coordinator stopped before this call was admitted")
