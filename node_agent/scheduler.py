"""The local core-affinity mailbox scheduler: tokens in, results out.

Owner of all its mutable state; other code acts on it only through the public methods.

- ``_queues`` (:class:`node_agent.queues.AdmissionQueues`) owns every queue a token waits in
  before its mailbox (held, priority, backlog, the retry delay line) and the drain flag; it
  alone places tokens into mailboxes. Every entry point (``submit``, ``try_submit``,
  ``enqueue``, ``resubmit``) goes through its ``admit``; what is placed next and where is the
  pure :func:`node_agent.placement.next_to_place`, routed by :func:`node_agent.policy.choose_route`.
- Each mailbox guards its own queue (see :mod:`node_agent.mailbox`).
- The crew (:class:`node_agent.workers.Crew`) owns the worker threads, and the watchdog
  (:mod:`node_agent.watchdog`) the time limits of running thread-mode calls.
- ``_accounts`` (:class:`node_agent.accounting.Accounts`) is the one writer of the mailboxes'
  run counters (busy, started_at, finished) and of what abandoned workers still owe, fed by
  the events the workers and the watchdog report; the runner hands back an
  :class:`node_agent.outcome.Outcome` for each run.
- ``_idle`` (a Condition) wakes callers of :meth:`wait_idle`.
- ``_stats_lock`` guards the outcome counters.
- ``_live`` maps token id to unfinished token (single dict operations only).

A worker whose call has run longer than ``stuck_after`` blocks its mailbox (see
:mod:`node_agent.mailbox`): :meth:`reclaim_blocked`, which an agent's link calls about once a
heartbeat, marks it so, takes back what waits behind it (and the backlog that no unblocked
mailbox could take) and returns those tokens, none of them started, for the link to hand
back to the gateway. Routing and free capacity pass blocked mailboxes by.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from tokengate.node_agent import topology as topo
from tokengate.node_agent.accounting import Accounts
from tokengate.node_agent.config import SchedulerConfig
from tokengate.node_agent.mailbox import Mailbox
from tokengate.node_agent.nowait import no_waiting
from tokengate.node_agent.outcome import Outcome, final_state
from tokengate.node_agent.placement import Decision, Entry, Limits
from tokengate.node_agent.policy import build_policy
from tokengate.node_agent.procpool import CoreProcesses
from tokengate.node_agent.queues import AdmissionQueues
from tokengate.node_agent.runner import Hooks, StartGate, TaskRunner
from tokengate.node_agent.throttle import StorageThrottle
from tokengate.node_agent.watchdog import Watch, Watchdog
from tokengate.node_agent.workers import Crew, Worker
from tokengate.shared import snapshot as snap
from tokengate.shared.errors import (
    InvalidTransition,
    SchedulerStopped,
    TokenGateError,
)
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import Weight
from tokengate.shared.token import TaskToken, inline_runner

logger = logging.getLogger(__name__)

_UNSET: Any = object()
# Hot path: enum members read through module names (see node_agent.queues).
_SUBMIT, _ENQUEUE, _PLACED = Entry.SUBMIT, Entry.ENQUEUE, Decision.PLACED
_REFUSED = frozenset({Decision.STOPPED, Decision.HOLD_FULL, Decision.BACKLOG_FULL,
                      Decision.TIMED_OUT})


class LocalScheduler:
    """One host's scheduler: cores x workers_per_core pinned workers, one mailbox each."""

    def __init__(
        self, config: SchedulerConfig | None = None, topology: topo.CpuTopology | None = None
    ) -> None:
        self.config = config or SchedulerConfig()
        if topology is None:
            cores = self.config.cores
            topology = topo.for_cores(cores) if cores else topo.detect()
        self.topology = topology
        self.num_cores = self.config.cores or topology.usable_cores
        self.policy = build_policy(self.num_cores)
        self._chains = {weight: pref.allowed_cores for weight, pref in self.policy.items()}
        wpc, capacity = self.config.workers_per_core, self.config.mailbox_capacity
        self.mailboxes: dict[int, list[Mailbox]] = {
            core: [Mailbox(core, i, capacity) for i in range(wpc)]
            for core in range(1, self.num_cores + 1)
        }
        self._all_boxes = [box for boxes in self.mailboxes.values() for box in boxes]
        self.core_patterns: dict[int, int] = dict.fromkeys(self.mailboxes, wpc)
        total = len(self._all_boxes) * capacity
        backlog = self.config.backlog_capacity
        self._queues = AdmissionQueues(
            self.config.node_name, self.mailboxes, self._chains,
            Limits(hold=self.config.hold_capacity or total,
                   backlog=total if backlog is None else backlog),
            self.config.processes_per_core)
        self.throttle = StorageThrottle()
        self.processes = CoreProcesses(topology.cpu_for_core, self.config.processes_per_core)
        self._hooks = Hooks()
        self._accounts = Accounts()  # the mailboxes' run counters and abandoned workers' debts
        self._watchdog = Watchdog(f"tokengate-time-limits-{self.config.node_name}",
                                  self._on_time_limit, self._accounts)
        self._runner = TaskRunner(self.throttle, self.processes, self._hooks, self._retry_later,
                                  self._watchdog)
        self._crew = Crew(self._all_boxes, topology.cpu_for_core, self._runner, self._accounts,
                          pin=self.config.pin_threads, after_take=self._after_take,
                          after_finish=self._after_finish)
        self.drain_reason = ""
        self._idle = threading.Condition()
        self._idle_waiters = 0
        self._stats_lock = threading.Lock()
        # Outcomes; "submitted" is the queues' count of tokens taken in (see counts()).
        self._counts = {"completed": 0, "failed": 0, "killed": 0, "retried": 0, "reclaimed": 0}
        self._live: dict[str, TaskToken] = {}
        self._running = False
        self._stopped = False
        self.started_at: float | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalScheduler:
        if self._running or self._stopped:
            raise SchedulerStopped("a scheduler starts once; create a new one to restart")
        self._crew.start()
        self._queues.open()
        self._running = True
        self.started_at = time.time()
        logger.info("scheduler %s started: %d cores x %d workers, mailbox capacity %d",
                    self.config.node_name, self.num_cores, self.config.workers_per_core,
                    self.config.mailbox_capacity)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop admitting, let admitted work finish (up to ``timeout``), then stop workers.

        Tokens not started by then (queued, held, backlogged, or waiting to retry) fail with
        ``SchedulerStopped``; a task still running is left to finish on its daemon thread
        (its time limit, if it has one, still fails it at the deadline).
        """
        if not self._queues.stop_accepting():
            return
        self._running = False
        wait = self.config.stop_timeout if timeout is None else timeout
        if not self.wait_idle(wait):
            logger.warning("scheduler %s: work still running after %.1fs; stopping anyway",
                           self.config.node_name, wait)
        self._stopped = True
        leftovers = self._queues.close()
        workers = self._crew.close()
        for box in self._all_boxes:
            leftovers.extend(box.drain_nowait())
            box.post_stop()
        deadline = time.monotonic() + max(0.1, min(wait, 5.0))
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        for token in leftovers:
            self._fail_stopped(token)
        self.processes.shutdown()
        self._watchdog.close()
        logger.info("scheduler %s stopped", self.config.node_name)

    def _fail_stopped(self, token: TaskToken) -> None:
        self._refused(token, SchedulerStopped(f"scheduler stopped before {token.token_id} ran"))

    @property
    def running(self) -> bool:
        return self._running

    def workers(self) -> list[Worker]:
        """The worker thread serving each mailbox now (abandoned ones are in ``snapshot``)."""
        return self._crew.workers()

    def set_start_gate(self, gate: StartGate | None) -> None:
        """Tokens start only while ``gate`` is open (an agent's work lease); None: always."""
        self._runner.start_gate = gate

    def add_observer(self, observer: Any) -> None:
        """Add execution hooks (see :class:`node_agent.runner.Observer`)."""
        self._hooks.add(observer)

    # -- admission -----------------------------------------------------------------------

    def submit(self, token: TaskToken, timeout: float | None = _UNSET) -> None:
        """Admit a CREATED token; wait for room under backpressure.

        Waits at most ``timeout`` seconds (default: the config's ``submit_timeout``) and then
        raises ``AdmissionTimeout``. During a drain the token is held (WAITING) and admitted
        on resume. A worker thread that finds no room runs the token itself.
        """
        if not self._running:
            raise SchedulerStopped(f"scheduler {self.config.node_name} is not running")
        if token.state is not TokenState.CREATED:
            raise InvalidTransition(f"submit takes a new token; {token} was submitted before")
        admit_hooks = self._hooks.on_admit
        if admit_hooks:
            for hook in admit_hooks:
                hook(token)  # may refuse the call with a TokenGateError
            if token.done():
                return  # an observer finished it at admission (quarantined): nothing to queue
        wait = self.config.submit_timeout if timeout is _UNSET else timeout
        self._live[token.token_id] = token
        try:
            decision = self._queues.admit(token, _SUBMIT, wait)
        except BaseException as exc:  # interrupted while waiting for room
            self._refused(token, exc)
            raise
        if decision is not _PLACED:
            self._submit_not_placed(token, decision, wait)

    def _submit_not_placed(self, token: TaskToken, decision: Decision,
                           wait: float | None) -> None:
        """Raise a refusal, or run the token here (a worker thread with no room)."""
        if decision in _REFUSED:
            error = self._queues.refusal(decision, token, wait)
            self._refused(token, error)
            raise error
        if decision is Decision.RUN_INLINE:
            runner = inline_runner()
            if runner is not None:
                runner(token)

    def try_submit(self, token: TaskToken) -> bool:
        """Admit a CREATED token only if there is room now; never waits, never holds."""
        if not self._running:
            return False
        self._live[token.token_id] = token
        if self._queues.admit(token, Entry.TRY) is Decision.PLACED:
            return True
        self._live.pop(token.token_id, None)
        return False

    def enqueue(self, token: TaskToken) -> None:
        """Admit a CREATED token without ever blocking the caller (the agent's link).

        The token goes into a mailbox at once if there is room (the routing of ``submit``);
        otherwise to the end of the backlog, a FIFO placed in order as room frees (after the
        priority lane of retries, before held and new submissions). During a drain it is held
        (WAITING), like a submission, and admitted on resume.

        Observers' ``on_admit`` hooks run as in ``submit``, but may not wait
        (:mod:`tokengate.node_agent.nowait`: the overflow guard reserves at once). What
        ``submit`` would raise finishes the token instead, and ``enqueue``
        returns normally: a hook's refusal (that error), a stopped scheduler
        (``SchedulerStopped``), a full backlog or a full drain hold (``AdmissionTimeout``). A
        token killed before it got here is left as it is. A token admitted before raises
        ``InvalidTransition``: that is a bug in the caller.
        """
        if token.state is not TokenState.CREATED:
            if token.state is TokenState.KILLED:
                return
            raise InvalidTransition(f"enqueue takes a new token; {token} was submitted before")
        if not self._running:
            token.set_error(SchedulerStopped(
                f"scheduler {self.config.node_name} is not running"), "")
            return
        if self._hooks.on_admit and not self._admit_hooks_allow(token):
            return
        self._live[token.token_id] = token
        decision = self._queues.admit(token, _ENQUEUE)
        if decision is not _PLACED and decision in _REFUSED:
            self._refused(token, self._queues.refusal(decision, token))

    def _admit_hooks_allow(self, token: TaskToken) -> bool:
        """Run the on_admit hooks for ``enqueue``; False once the token is final."""
        previous = no_waiting(True)
        try:
            for hook in self._hooks.on_admit:
                hook(token)  # may refuse the call with a TokenGateError
        except Exception as exc:
            if not isinstance(exc, TokenGateError):
                logger.exception("an on_admit hook failed on %s", token.token_id)
            token.set_error(exc, "")
        finally:
            no_waiting(previous)
        return not token.done()

    def resubmit(self, token: TaskToken) -> None:
        """Re-enter a WAITING token (a retry or a requeue) ahead of new submissions."""
        self._live[token.token_id] = token
        if self._queues.admit(token, Entry.RETRY) is Decision.STOPPED:
            self._fail_stopped(token)

    def _refused(self, token: TaskToken, error: BaseException) -> None:
        """A token the queues took and then refused (or a stopped scheduler left): it fails
        with ``error`` and counts as failed, the same on every path."""
        self._live.pop(token.token_id, None)
        if token.set_error(error, ""):
            self._count("failed")

    def _after_take(self, box: Mailbox) -> None:
        self._queues.on_take(box)

    def _after_finish(self, token: TaskToken, outcome: Outcome) -> None:
        final = final_state(outcome)  # None: not finalised by this run (retry, dropped, skipped)
        if final is not None:
            self._live.pop(token.token_id, None)
            self._count(final.value)
        if self._idle_waiters:
            with self._idle:
                self._idle.notify_all()

    def _on_time_limit(self, watch: Watch, abandon: bool, close_outer: bool) -> None:
        self._crew.on_time_limit(watch, abandon, close_outer)

    def _retry_later(self, token: TaskToken, delay: float) -> None:
        self._count("retried")
        if not self._queues.retry_later(delay, self.resubmit, token):
            self._fail_stopped(token)

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self._counts[key] += 1

    def _counts_add(self, key: str, n: int) -> None:
        with self._stats_lock:
            self._counts[key] += n

    # -- control -------------------------------------------------------------------------

    def drain(self, reason: str = "") -> None:
        """Stop admitting: new submissions are held; admitted work runs to its end."""
        self._queues.drain()
        self.drain_reason = reason
        logger.info("scheduler %s draining%s", self.config.node_name,
                    f": {reason}" if reason else "")

    def resume(self) -> None:
        """Admit again, held submissions first, without a restart."""
        self.drain_reason = ""
        self._queues.resume()
        logger.info("scheduler %s resumed", self.config.node_name)

    @property
    def draining(self) -> bool:
        return self._queues.draining

    def kill(self, token_id: str) -> bool:
        """Kill a queued, held or backlogged token (it never runs); a running one is untouched."""
        token = self._live.get(token_id)
        if token is None or not token.kill():
            return False
        self._live.pop(token_id, None)
        self._count("killed")
        self._queues.remove(token)  # frees its place at once (a mailbox skips it at dequeue)
        logger.info("killed queued token %s", token_id)
        if self._idle_waiters:
            with self._idle:
                self._idle.notify_all()
        return True

    def cancel(self, token: TaskToken) -> bool:
        """Kill a queued token (as ``kill``), or ask a running one to stop (see
        :meth:`TaskToken.cancel`); False if it was final already."""
        if self.kill(token.token_id):
            return True
        if not token.request_cancel():  # killed if queued elsewhere; asked if running
            return False
        logger.info("cancel asked of token %s (%s)", token.token_id, token.state.value)
        return True

    def token(self, token_id: str) -> TaskToken | None:
        return self._live.get(token_id)

    def reclaim_blocked(self) -> list[TaskToken]:
        """Block the mailboxes whose worker has run one call for longer than ``stuck_after``
        and take back every token waiting behind them, and the backlogged tokens of weights
        that no unblocked mailbox serves. None of them has started (a worker claims a token
        only after taking it from its mailbox); they leave this scheduler, for the caller to
        give to someone else."""
        taken = self._queues.reclaim(self.config.stuck_after)
        for token in taken:
            self._live.pop(token.token_id, None)
        self._counts_add("reclaimed", len(taken))
        return taken

    def blocked(self) -> int:
        """Workers blocked now (their call judged too long)."""
        return sum(1 for box in self._all_boxes if box.blocked)

    def set_core_pattern(self, core_id: int, active: int) -> int:
        """Set how many of a core's mailboxes take new tokens (1..workers_per_core)."""
        active = max(1, min(self.config.workers_per_core, int(active)))
        self.core_patterns[core_id] = active
        self._queues.set_active(core_id, active)
        return active

    # -- observation ---------------------------------------------------------------------

    def in_flight(self) -> int:
        """Admitted tokens not yet finished, plus retries waiting to re-enter."""
        finished = sum(box.finished + box.reclaimed for box in self._all_boxes) + \
            self._accounts.late_finished
        enqueued = sum(box.enqueued for box in self._all_boxes)  # read after finished
        return enqueued - finished + self._queues.retries

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no admitted work is queued or running; held submissions don't count."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            self._idle_waiters += 1
            try:
                while self.in_flight() > 0:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._idle.wait(remaining)
            finally:
                self._idle_waiters -= 1
        return True

    def free_capacity(self) -> dict[Weight, int]:
        """Tokens each weight class could place now: free slots of its cores' active, unblocked
        mailboxes (cores overlap between classes) less the whole backlog and the retries due
        back (a token of either may take any class's slot), never below 0."""
        return self._queues.free_capacity()

    def state_name(self) -> str:
        if not self._running:
            return "stopped" if self._stopped or self.started_at else "new"
        if self._queues.draining:
            return "draining" if self.in_flight() else "drained"
        return "running"

    def counts(self) -> dict[str, int]:
        with self._stats_lock:
            counts = {"submitted": self._queues.entered, **self._counts}
        queued = sum(box.depth() for box in self._all_boxes)
        held, backlog = self._queues.held, self._queues.backlog
        # An abandoned worker's token is FAILED; its outermost one may still run (owed).
        counts["executing"] = sum(box.busy for box in self._all_boxes) + self._accounts.owed()
        counts["waiting"] = queued + held + self._queues.retries + backlog
        counts["held"] = held
        counts["backlog"] = backlog
        return counts

    def snapshot(self) -> dict[str, Any]:
        """Plain data for status panels: :meth:`status_snapshot` as its wire map."""
        return self.status_snapshot().to_wire()

    def status_snapshot(self) -> snap.AgentSnapshot:
        """State, counts, per-core mailboxes and routing, and the observers' panels (the
        guards' Guard House...), as the schema of :mod:`tokengate.shared.snapshot` states them.

        ``stuck`` counts worker threads abandoned to a call past its time limit that are still
        running (per core: per mailbox); fresh workers serve their mailboxes meanwhile.
        ``blocked`` counts workers whose call has run past ``stuck_after`` (see
        :meth:`reclaim_blocked`; per core: per mailbox).
        """
        stuck = self._crew.stuck()
        stuck_by_box = {id(box): 0 for box in self._all_boxes}
        for worker in stuck:
            stuck_by_box[id(worker.mailbox)] += 1
        cores = tuple(
            snap.CoreStatus(
                core=core, cpu=self.topology.cpu_for_core(core),
                active_mailboxes=self.core_patterns[core],
                depths=tuple(box.depth() for box in boxes),
                busy=tuple(box.busy for box in boxes),
                stuck=tuple(stuck_by_box[id(box)] for box in boxes),
                blocked=tuple(int(box.blocked) for box in boxes),
                peak_depths=tuple(box.peak for box in boxes),
                routed={w.value: sum(box.routed[w] for box in boxes) for w in Weight})
            for core, boxes in self.mailboxes.items())
        status = snap.AgentSnapshot(
            node=self.config.node_name, state=self.state_name(),
            drain_reason=self.drain_reason,
            uptime=0.0 if self.started_at is None else time.time() - self.started_at,
            shape=snap.NodeShape(
                topology=snap.HostTopology.from_wire(self.topology.describe()),
                workers=len(self._all_boxes), workers_per_core=self.config.workers_per_core,
                mailbox_capacity=self.config.mailbox_capacity,
                policy={w.value: tuple(p.allowed_cores) for w, p in self.policy.items()}),
            stuck=len(stuck), blocked=self.blocked(),
            tokens=snap.TokenCounts.from_wire(self.counts()), cores=cores,
            storage={tier: snap.TierLoad(**load) for tier, load in self.throttle.stats().items()})
        for observer in self._hooks.observers:  # e.g. the guards add their panels (Guard House...)
            panels = getattr(observer, "snapshot_panels", None)
            if panels is not None:
                status = status.with_panels(panels())
        return status
