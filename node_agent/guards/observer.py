"""The guards as one scheduler observer: admission checks, execution records, retries.

:class:`Guards` plugs into :class:`~node_agent.scheduler.LocalScheduler` through its observer
hooks, so an embedded coordinator and every cluster agent run the same guards:

- ``on_admit`` (submitting thread): Guard House refusal, spike check (quarantine), overflow
  budget reservation (may wait: backpressure).
- ``on_start`` (worker): release the reservation, record the queue wait.
- ``on_finish`` (worker, before the token is final): Guard House reputation, history record,
  metrics, and the retry decision (a delay, which the scheduler turns into a ``resubmit``).

Each guard owns its own state; this class owns only the per-function info cache and wiring.
"""

from __future__ import annotations

import inspect
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from tokengate.node_agent.guards.convergence import (
    ConvergenceBounds,
    ConvergenceLoop,
    CorePressure,
    WaitMeter,
)
from tokengate.node_agent.guards.guard_house import GuardHouse, GuardPolicy
from tokengate.node_agent.guards.history import ExecutionHistory, ExecutionRecord
from tokengate.node_agent.guards.inspector import ComplexityLevel, inspect_function
from tokengate.node_agent.guards.metrics import SchedulerMetrics
from tokengate.node_agent.guards.options import FunctionOptions, function_options
from tokengate.node_agent.guards.overflow import SMALL_TOKEN_BYTES, OverflowGuard, estimate_bytes
from tokengate.node_agent.guards.quarantine import (
    QuarantineRecordNotFound,
    QuarantineStore,
    build_record,
)
from tokengate.node_agent.guards.retry import NO_RETRY, RetryPolicy, policy_for, retry_delay
from tokengate.node_agent.guards.settings import GuardsConfig
from tokengate.node_agent.guards.spikes import SpikeDetector, SpikePolicy
from tokengate.node_agent.guards.status import guard_panels
from tokengate.node_agent.nowait import may_wait
from tokengate.shared.errors import TokenQuarantined
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.registry import lookup, task_name
from tokengate.shared.token import TaskToken, inline_runner

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """What the guards know about one function, computed once."""

    name: str
    score: float
    level: ComplexityLevel
    options: FunctionOptions
    retry: RetryPolicy
    spike_check: bool


def name_of(func: Callable[..., Any]) -> str:
    """The Guard House key of a function: its task name ``"<module>:<qualname>"``."""
    return task_name(inspect.unwrap(func))


class Guards:
    """Every guard of one scheduler, and the hooks that drive them."""

    def __init__(self, config: GuardsConfig | None = None, *, enforce_blocks: bool = True,
                 ) -> None:
        self.config = cfg = config or GuardsConfig()
        self.guard_house = GuardHouse(GuardPolicy(
            auto_block=cfg.auto_block, failure_threshold=cfg.failure_threshold,
            min_attempts=cfg.min_attempts), enforce=enforce_blocks)
        self.spikes = SpikeDetector(SpikePolicy(threshold=cfg.spike_threshold,
                                                warmup=cfg.spike_warmup))
        self.quarantine = QuarantineStore(cfg.quarantine_dir)
        self.overflow = OverflowGuard(cfg.memory_budget_bytes) if cfg.memory_budget_bytes else None
        self.history = ExecutionHistory(cfg.history_size)
        self.waits = WaitMeter()
        self._scheduler: Any = None
        self.metrics = SchedulerMetrics(self._gauges)
        self.convergence: ConvergenceLoop | None = None
        self.metrics_port: int | None = None
        self._rng = random.Random()
        self._auto_block = cfg.auto_block
        self._info_lock = threading.Lock()  # guards _info inserts, _replays
        self._info: dict[Callable[..., Any], FunctionInfo] = {}
        self._replays: set[str] = set()
        self._children: dict[tuple[str, ...], Any] = {}  # metric children (dict ops only)

    # -- wiring ----------------------------------------------------------------------------

    def attach(self, scheduler: Any) -> None:
        """Observe ``scheduler``; start convergence and the metrics server if configured."""
        self._scheduler = scheduler
        scheduler.add_observer(self)
        cfg = self.config
        if cfg.convergence:
            wpc = scheduler.config.workers_per_core
            bounds = ConvergenceBounds(min_active=min(cfg.convergence_min_active, wpc),
                                       max_active=wpc)
            self.convergence = ConvergenceLoop(self._read_pressure, scheduler.set_core_pattern,
                                               bounds, interval=cfg.convergence_interval)
            self.convergence.start()
        if cfg.metrics_port is not None:
            self.metrics_port = self.metrics.serve(cfg.metrics_port, cfg.metrics_addr)
        logger.info(
            "guards: Guard House %s; spike detection %s (quarantine in %s); retries %s; "
            "overflow budget %s; convergence %s; metrics %s",
            "auto-block" if cfg.auto_block else "passive (observation only)",
            "on" if cfg.spike_detection else "off", self.quarantine.directory,
            "on" if cfg.retries else "off",
            f"{cfg.memory_budget_bytes / 2**20:.0f} MB" if cfg.memory_budget_bytes else "off",
            f"every {cfg.convergence_interval}s" if cfg.convergence else "off",
            f"on port {self.metrics_port}" if self.metrics_port is not None else "not served")

    def close(self) -> None:
        if self.convergence is not None:
            self.convergence.stop()
        self.metrics.close()

    def info(self, func: Callable[..., Any]) -> FunctionInfo:
        info = self._info.get(func)
        if info is None:
            metrics = inspect_function(func)
            name = name_of(func)
            options = function_options(name)
            policy = options.retry or (policy_for(metrics.level) if self.config.retries
                                       else NO_RETRY)
            spike = (self.config.spike_detection if options.spike_check is None
                     else options.spike_check)
            info = FunctionInfo(name, metrics.score, metrics.level, options, policy, spike)
            with self._info_lock:
                self._info[func] = info
        return info

    def functions(self) -> list[FunctionInfo]:
        """Every function seen so far, with its complexity and retry policy."""
        with self._info_lock:
            return list(self._info.values())

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (str(id(metric)), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- hooks -----------------------------------------------------------------------------

    def on_admit(self, token: TaskToken) -> None:
        func = token.func
        if func is None:
            return
        info = self._info.get(func) or self.info(func)
        if self._auto_block and self.guard_house.is_blocked(info.name):
            self._child(self.metrics.guard_refusals, token.operation_type).inc()
            self.guard_house.check_allowed(info.name)
        if info.spike_check and self._not_a_replay(token):
            self._check_spike(token, info)
            if token.done():
                return
        if self.overflow is not None and (token.args or token.kwargs):
            self._reserve(token)

    def _not_a_replay(self, token: TaskToken) -> bool:
        if token.token_id in self._replays:
            with self._info_lock:
                self._replays.discard(token.token_id)
            return False
        return True

    def _check_spike(self, token: TaskToken, info: FunctionInfo) -> None:
        verdict = self.spikes.assess(info.name, info.score, token.args, token.kwargs)
        if not verdict.spike:
            return
        reason = (f"predicted cost {verdict.predicted:.1f} is {verdict.deviation * 100:.0f}% "
                  f"above the mean {verdict.historical_mean:.1f} of its history")
        record = build_record(
            quarantine_id=token.token_id, task=info.name, operation_type=token.operation_type,
            predicted=verdict.predicted, mean=verdict.historical_mean,
            deviation=verdict.deviation, reason=reason, args=token.args, kwargs=token.kwargs)
        path = self.quarantine.save(record)
        self._child(self.metrics.quarantined, token.operation_type).inc()
        qid = token.token_id
        how = (f"replay it with coordinator.replay_quarantined({qid!r}) or `tokengate "
               f"quarantine replay {qid} --dir {path.parent}`" if record.replayable
               else "its arguments could not be stored for replay")
        token.set_error(TokenQuarantined(
            f"{info.name} call {token.token_id} was quarantined: {reason}; it is kept in "
            f"{path}; {how}"), "")

    def _reserve(self, token: TaskToken) -> None:
        assert self.overflow is not None
        size = estimate_bytes(token.args, token.kwargs)
        if size <= SMALL_TOKEN_BYTES:
            return  # bounded by the mailboxes already: capacity x SMALL_TOKEN_BYTES
        # A worker thread (a nested submit) never waits: it could be waiting on itself; nor
        # does the agent's link (enqueue), which must stay free for kills and revocations.
        on_worker = inline_runner() is not None or not may_wait()
        timeout = getattr(getattr(self._scheduler, "config", None), "submit_timeout", None)
        self.overflow.reserve(token.token_id, size, timeout, force=on_worker)
        token.add_done_callback(self._release)

    def _release(self, token: TaskToken) -> None:
        if self.overflow is not None:
            self.overflow.release(token.token_id)

    def on_start(self, token: TaskToken) -> None:
        if self.overflow is not None and self.overflow.holds(token.token_id):
            self.overflow.release(token.token_id)
        stamps = token.timestamps
        queued_at = stamps.get(TokenState.ADMITTED) or stamps.get(TokenState.WAITING)
        if queued_at is not None:
            wait = max(0.0, time.time() - queued_at)
            core = token.core_id or 0
            if self.convergence is not None:
                self.waits.add(core, wait)
            self.metrics.queue_waited(core, wait)

    def on_finish(self, token: TaskToken, error: BaseException | None,
                  seconds: float) -> float | None:
        func = token.func
        if func is None:
            return None
        info = self._info.get(func) or self.info(func)
        self.history.append(ExecutionRecord(
            token.token_id, token.operation_type, error is None, seconds, token.core_id,
            token.worker_id, info.score, token.attempt,
            "" if error is None else type(error).__name__, time.time()))
        delay = None
        if error is not None and token.tags.idempotent:
            delay = retry_delay(info.retry, token.attempt, error, self._rng)
        op = token.operation_type
        if delay is not None:
            # A retried attempt is not the call's outcome: the Guard House judges outcomes.
            self.guard_house.record_retry(info.name, seconds)
            self.metrics.token_finished(op, "retried", seconds)
            self._child(self.metrics.retries, op).inc()
            logger.info("retrying %s (attempt %d of %d) in %.3fs after %s: %s",
                        token.token_id, token.attempt + 1, info.retry.max_attempts, delay,
                        type(error).__name__, error)
            return delay
        success = error is None
        error_text = "" if error is None else f"{type(error).__name__}: {error}"
        if self.guard_house.record(info.name, success, seconds, error_text):
            self.metrics.guard_blocks.inc()
        self.metrics.token_finished(op, "completed" if success else "failed", seconds)
        return None

    # -- operator actions ------------------------------------------------------------------

    def allow_replay(self, token_id: str) -> None:
        """Let ``token_id`` skip the spike check once (a replay of a quarantined call)."""
        with self._info_lock:
            self._replays.add(token_id)

    def replay(self, quarantine_id: str, submit: Callable[[TaskToken], None], *,
               drop: bool = True) -> TaskToken:
        """Submit a quarantined call again, skipping the spike check; returns its new token.

        The function is found by task name in the registry (its module must be imported).
        With ``drop``, the record is deleted once the replay completes successfully.
        """
        record = self.quarantine.load(quarantine_id)
        args, kwargs = record.arguments()
        spec = lookup(record.task)
        token: TaskToken = TaskToken(spec.func, args, kwargs,
                                     operation_type=spec.operation_type, tags=spec.tags)
        self.allow_replay(token.token_id)
        if drop:
            token.add_done_callback(partial(self._drop_if_completed, quarantine_id))
        logger.info("replaying quarantined %s as %s", quarantine_id, token.token_id)
        submit(token)
        return token

    def _drop_if_completed(self, quarantine_id: str, token: TaskToken) -> None:
        if token.state is TokenState.COMPLETED:
            try:
                self.quarantine.drop(quarantine_id)
            except QuarantineRecordNotFound:
                logger.info("quarantined %s was already dropped", quarantine_id)

    # -- observation -----------------------------------------------------------------------

    def _read_pressure(self) -> list[CorePressure]:
        waits = self.waits.take()
        sched = self._scheduler
        return [CorePressure(core, sched.core_patterns[core],
                             sum(box.depth() for box in boxes), waits.get(core, 0.0))
                for core, boxes in sched.mailboxes.items()]

    def snapshot_panels(self) -> dict[str, Any]:
        """The guards' status panels; the scheduler adds them to its ``snapshot()``."""
        return guard_panels(self)

    def _gauges(self) -> dict[str, Any]:
        sched = self._scheduler
        data: dict[str, Any] = {
            "overflow_used_bytes": self.overflow.used if self.overflow else 0,
            "blocked_functions": len(self.guard_house.snapshot()["blocked"]),
        }
        if sched is not None:
            data["queue_depth"] = {core: sum(box.depth() for box in boxes)
                                   for core, boxes in sched.mailboxes.items()}
            data["active_pattern"] = dict(sched.core_patterns)
        return data
