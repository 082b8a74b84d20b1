"""One host's runtime: the core-affinity scheduler with its guards attached.

The embedded facade (:class:`tokengate.OperationsCoordinator`) and the cluster's node agent
(:class:`tokengate.node_agent.agent.NodeAgent`) both run one of these. It owns nothing the
scheduler and the guards do not already own; it wires them and offers the operator's
actions on them (status, re-enable, quarantine replay and drop); it logs the start-up banner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tokengate.node_agent.banner import banner_lines, facts_of
from tokengate.node_agent.config import SchedulerConfig
from tokengate.node_agent.guards.observer import Guards, name_of
from tokengate.node_agent.guards.settings import GuardsConfig
from tokengate.node_agent.guards.status import build_status
from tokengate.node_agent.keys import KeyTable
from tokengate.node_agent.scheduler import LocalScheduler
from tokengate.shared.call_options import CallOptions
from tokengate.shared.registry import TaskSpec
from tokengate.shared.token import TaskToken

logger = logging.getLogger(__name__)


class LocalRuntime:
    """The scheduler and its guards, started and stopped together."""

    def __init__(self, config: SchedulerConfig | None = None,
                 guards: GuardsConfig | None = None, *, enforce_blocks: bool = True) -> None:
        """``enforce_blocks=False``: the Guard House records and reports but blocks nothing
        (a node agent: the gateway blocks for the whole cluster)."""
        self.config = config or SchedulerConfig.from_env()
        self.scheduler = LocalScheduler(self.config)
        self.guards = Guards(guards or GuardsConfig.from_env(), enforce_blocks=enforce_blocks)
        self.keys = KeyTable(self.config.key_ttl)

    def start(self) -> LocalRuntime:
        self.scheduler.start()
        self.guards.attach(self.scheduler)
        for line in self.banner():
            logger.info("%s", line)
        return self

    def banner(self) -> list[str]:
        """The start-up banner: topology, recommended workers, overflow budget, Guard House
        mode, affinity chains, the core-to-worker map (see :mod:`.banner`)."""
        return banner_lines(facts_of(self.scheduler, self.guards.config))

    def stop(self, timeout: float | None = None) -> None:
        self.scheduler.stop(timeout)
        self.guards.close()

    def submit(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: CallOptions | None = None, *,
               enqueue: Callable[[TaskToken], None] | None = None) -> TaskToken:
        """A decorated call made on this host: a new token into the local scheduler (with an
        idempotency key: the key's token, new or kept, see :mod:`.keys`). ``enqueue`` hands
        a new token on instead of the scheduler's blocking ``submit`` (the embedded facade
        parks the calls made on an event loop's thread)."""
        enqueue = enqueue or self.scheduler.submit
        if options is not None and options.key is not None:
            token_id = options.token_id

            def make() -> TaskToken:
                return TaskToken(spec.func, args, kwargs, operation_type=spec.operation_type,
                                 tags=spec.tags, token_id=token_id)

            return self.keys.submit(options.key, (spec.name, args, kwargs), make, enqueue)
        token: TaskToken = TaskToken(
            spec.func, args, kwargs, operation_type=spec.operation_type, tags=spec.tags
        )
        token.canceller = self.scheduler.cancel
        enqueue(token)
        return token

    def status(self) -> dict[str, Any]:
        """Every status panel in one plain dict (see :mod:`.guards.status`)."""
        return build_status(self.scheduler.status_snapshot())  # the guards' panels ride in it

    def reenable(self, function: Callable[..., Any] | str) -> bool:
        """Unblock a function the Guard House blocked (by task name or the function)."""
        name = function if isinstance(function, str) else name_of(function)
        return self.guards.guard_house.reenable(name)

    def replay(self, quarantine_id: str, *, drop: bool = True,
               submit: Callable[[TaskToken], None] | None = None) -> TaskToken:
        """Run a quarantined call again (skipping the spike check); drop it once it succeeds."""
        return self.guards.replay(quarantine_id, submit or self.scheduler.submit, drop=drop)

    def drop_quarantined(self, quarantine_id: str) -> None:
        self.guards.quarantine.drop(quarantine_id)

    def dump_history(self, path: str | None = None) -> str:
        """Write the execution history ring buffer to JSON (``dumps/`` by default)."""
        return str(self.guards.history.dump(path, self.guards.config.dump_dir))
