"""The local core-affinity mailbox scheduler: tokens in, results out.

Owner of all its mutable state; other code acts on it only through the public methods.

- ``_admission`` (a Condition) guards the drain flag, the held queue (submissions during a
  drain), the priority lane (retries and requeues, placed ahead of new submissions), the
  backlog (tokens ``enqueue`` could not place at once, placed after the priority lane and
  before held and new submissions), the count of delayed retries and the count of submitters
  waiting for room.
- Each mailbox guards its own queue (see :mod:`node_agent.mailbox`).
- The crew (:class:`node_agent.workers.Crew`) owns the worker threads, and the watchdog
  (:mod:`node_agent.watchdog`) the time limits of running thread-mode calls.
- ``_idle`` (a Condition) wakes callers of :meth:`wait_idle`.
- ``_stats_lock`` guards the outcome counters.
- ``_live`` maps token id to unfinished token (single dict operations only).

The fast path of :meth:`submit` takes no scheduler lock: it routes with the pure policy and
offers the token to one mailbox under that mailbox's lock.

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
from collections import deque
from typing import Any

from tokengate.node_agent import topology as topo
from tokengate.node_agent.accounting import Accounts
from tokengate.node_agent.config import SchedulerConfig
from tokengate.node_agent.delayline import DelayLine
from tokengate.node_agent.mailbox import Mailbox
from tokengate.node_agent.nowait import no_waiting
from tokengate.node_agent.outcome import Outcome, final_state
from tokengate.node_agent.policy import build_policy, choose_route
from tokengate.node_agent.procpool import CoreProcesses
from tokengate.node_agent.runner import Hooks, StartGate, TaskRunner
from tokengate.node_agent.throttle import StorageThrottle
from tokengate.node_agent.watchdog import Watch, Watchdog
from tokengate.node_agent.workers import Crew, Worker
from tokengate.shared import snapshot as snap
from tokengate.shared.errors import (
    AdmissionTimeout,
    InvalidTransition,
    SchedulerStopped,
    TokenGateError,
)
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import ExecutionMode, Weight
from tokengate.shared.token import TaskToken, inline_runner

logger = logging.getLogger(__name__)

_UNSET: Any = object()
_CREATED_ONLY = frozenset({TokenState.CREATED})
_PLACE_ATTEMPTS = 3


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
        # Per core, the mailboxes that take new tokens (the first core_patterns[core] ones);
        # replaced whole, never edited, when a pattern changes.
        self._active_boxes: dict[int, list[Mailbox]] = {
            core: list(boxes) for core, boxes in self.mailboxes.items()}
        self._slots = self._execution_slots()
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
        self._admission = threading.Condition()
        self._held: deque[TaskToken] = deque()
        self._priority: deque[TaskToken] = deque()
        self._backlog: deque[TaskToken] = deque()
        self._draining = False
        self.drain_reason = ""
        self._delays = DelayLine(f"tokengate-retries-{self.config.node_name}")
        self._space_waiters = 0
        self._hold_capacity = self.config.hold_capacity or len(self._all_boxes) * capacity
        backlog = self.config.backlog_capacity
        self._backlog_capacity = len(self._all_boxes) * capacity if backlog is None else backlog
        self._low_water = capacity // 2
        self._idle = threading.Condition()
        self._idle_waiters = 0
        self._stats_lock = threading.Lock()
        self._counts = {"submitted": 0, "completed": 0, "failed": 0, "killed": 0, "retried": 0,
                        "reclaimed": 0}
        self._live: dict[str, TaskToken] = {}
        self._running = False
        self._stopped = False
        self.started_at: float | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalScheduler:
        if self._running or self._stopped:
            raise SchedulerStopped("a scheduler starts once; create a new one to restart")
        self._crew.start()
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
        with self._admission:
            if not self._running:
                return
            self._running = False
            self._admission.notify_all()
        wait = self.config.stop_timeout if timeout is None else timeout
        if not self.wait_idle(wait):
            logger.warning("scheduler %s: work still running after %.1fs; stopping anyway",
                           self.config.node_name, wait)
        with self._admission:
            self._stopped = True
            leftovers = [*self._priority, *self._backlog, *self._held, *self._delays.stop()]
            self._priority.clear()
            self._backlog.clear()
            self._held.clear()
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
        if token.set_error(SchedulerStopped(f"scheduler stopped before {token.token_id} ran"), ""):
            self._live.pop(token.token_id, None)
            self._count("failed")

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
        self._live[token.token_id] = token
        self._count("submitted")
        if not (self._draining or self._held or self._priority or self._backlog) and self._place(
                token):
            return
        try:
            self._admit_waiting(token, self.config.submit_timeout if timeout is _UNSET else timeout)
        except BaseException as exc:
            self._live.pop(token.token_id, None)
            token.set_error(exc, "")
            raise

    def try_submit(self, token: TaskToken) -> bool:
        """Admit a CREATED token only if there is room now; never waits, never holds."""
        if not self._running or self._draining or self._held or self._priority or self._backlog:
            return False
        self._live[token.token_id] = token
        if self._place(token):
            self._count("submitted")
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
        self._count("submitted")
        if not (self._draining or self._priority or self._backlog) and self._place(token):
            return
        with self._admission:
            refusal = self._enqueue_waiting(token)
        if refusal is not None:
            self._live.pop(token.token_id, None)
            if token.set_error(refusal, ""):
                self._count("failed")

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

    def _enqueue_waiting(self, token: TaskToken) -> BaseException | None:
        """Hold or backlog a token ``enqueue`` could not place; the refusal, if any. Holds
        ``_admission``."""
        if not self._running:
            return SchedulerStopped(f"scheduler {self.config.node_name} stopped")
        if self._draining:
            if len(self._held) >= self._hold_capacity:
                return AdmissionTimeout(
                    f"{token.operation_type}: agent over capacity: the scheduler is draining "
                    f"and its hold of {self._hold_capacity} tokens is full")
            if token.advance(TokenState.WAITING, expected=_CREATED_ONLY):
                self._held.append(token)
            return None  # or killed meanwhile: final already
        if not (self._priority or self._backlog) and self._place(token):
            return None
        if len(self._backlog) >= self._backlog_capacity:
            return AdmissionTimeout(
                f"{token.operation_type}: agent over capacity: every mailbox allowed for weight "
                f"{token.tags.weight.value} is full and the backlog holds its limit of "
                f"{self._backlog_capacity} tokens")
        if token.advance(TokenState.WAITING, expected=_CREATED_ONLY):
            self._backlog.append(token)
            # Place again after the append: a worker that took a token after our failed offer
            # may have looked at the backlog before the append, and will not pump it.
            self._pump()
        return None

    def resubmit(self, token: TaskToken) -> None:
        """Re-enter a WAITING token (a retry or a requeue) ahead of new submissions."""
        with self._admission:
            if not self._running and self._stopped:
                self._fail_stopped(token)
                return
            self._live[token.token_id] = token
            self._priority.append(token)
            self._pump()

    def _admit_waiting(self, token: TaskToken, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._admission:
            while True:
                if not self._running:
                    raise SchedulerStopped(f"scheduler {self.config.node_name} stopped")
                if self._draining or self._held:
                    if len(self._held) < self._hold_capacity:
                        token.advance(TokenState.WAITING, expected=_CREATED_ONLY)
                        self._held.append(token)
                        return
                elif not (self._priority or self._backlog) and self._place(token):
                    return
                if inline_runner() is not None:
                    break  # a worker thread: run it here rather than wait on ourselves
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise AdmissionTimeout(self._timeout_message(token, timeout))
                self._space_waiters += 1
                try:
                    self._admission.wait(remaining)
                finally:
                    self._space_waiters -= 1
        token.advance(TokenState.WAITING, expected=_CREATED_ONLY)
        runner = inline_runner()
        if runner is not None:
            runner(token)

    def _timeout_message(self, token: TaskToken, timeout: float | None) -> str:
        why = "the scheduler is draining and its hold is full" if self._draining else (
            f"every mailbox allowed for weight {token.tags.weight.value} is full")
        return (f"{token.operation_type}: no room after {timeout}s because {why} "
                f"(capacity {self.config.mailbox_capacity} per mailbox)")

    def _place(self, token: TaskToken) -> bool:
        """Route and offer; True once the token is queued (or found dead), False if full."""
        tags = token.tags
        chain = self._chains[tags.weight]
        for _ in range(_PLACE_ATTEMPTS):
            route = self._route(chain, tags.execution)
            if route is None:
                return False
            core, index = route
            if self.mailboxes[core][index].offer(token, tags.weight):
                return True
        return False

    def _route(self, chain: tuple[int, ...], mode: ExecutionMode) -> tuple[int, int] | None:
        active = self._active_boxes
        if mode is ExecutionMode.THREAD:
            # Shortcut of the policy's first rule: an idle mailbox on the preferred core.
            for box in active[chain[0]]:
                if not box.busy and not box.depth():
                    return chain[0], box.index
        return choose_route(chain, active, self._slots[mode], self.config.mailbox_capacity)

    def _pump(self) -> None:
        """Place waiting tokens into freed mailbox room: the priority lane, then the backlog,
        then held submissions (these two not while draining). Holds ``_admission``."""
        for lane in (self._priority, self._backlog, self._held):
            if lane is not self._priority and self._draining:
                break
            while lane:
                if not self._place(lane[0]):
                    break
                lane.popleft()
        if self._space_waiters:
            self._admission.notify_all()

    def _after_take(self, box: Mailbox) -> None:
        # Blocked submitters are woken once a mailbox is down to its low-water mark, not on
        # every take: one wake-up then refills many slots instead of one slot per wake-up.
        if self._priority or ((self._backlog or self._held) and not self._draining) or (
                self._space_waiters and box.depth() <= self._low_water):
            with self._admission:
                self._pump()

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
        if not self._delays.schedule(delay, self.resubmit, token):
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
        with self._admission:
            self._draining = True
            self.drain_reason = reason
        logger.info("scheduler %s draining%s", self.config.node_name,
                    f": {reason}" if reason else "")

    def resume(self) -> None:
        """Admit again, held submissions first, without a restart."""
        with self._admission:
            self._draining = False
            self.drain_reason = ""
            self._pump()
        logger.info("scheduler %s resumed", self.config.node_name)

    @property
    def draining(self) -> bool:
        return self._draining

    def kill(self, token_id: str) -> bool:
        """Kill a queued, held or backlogged token (it never runs); a running one is untouched."""
        token = self._live.get(token_id)
        if token is None or not token.kill():
            return False
        self._live.pop(token_id, None)
        self._count("killed")
        if self._backlog or self._held:
            with self._admission:  # free its place at once (a mailbox skips it at dequeue)
                for lane in (self._backlog, self._held):
                    if token in lane:
                        lane.remove(token)
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
        taken: list[TaskToken] = []
        with self._admission:
            if not self._running:
                return taken
            limit = time.monotonic() - self.config.stuck_after
            for box in self._all_boxes:
                began = box.started_at
                if began and began < limit and box.blocked_call != began:
                    box.blocked_call = began
                    logger.warning("scheduler %s: worker %d/%d has run one call for over %.0fs;"
                                   " nothing more goes to its mailbox", self.config.node_name,
                                   box.core_id, box.index, self.config.stuck_after)
                if box.blocked and box.depth():
                    queued = box.drain_nowait()
                    box.reclaimed += len(queued)
                    taken.extend(queued)
            taken.extend(self._reclaim_backlog())
            for token in taken:
                self._live.pop(token.token_id, None)
            self._counts_add("reclaimed", len(taken))
        return taken

    def _reclaim_backlog(self) -> list[TaskToken]:
        """Backlogged tokens of weights whose every active mailbox is blocked; holds
        ``_admission``."""
        if not self._backlog:
            return []
        active = self._active_boxes
        stuck = {weight for weight, chain in self._chains.items()
                 if all(box.blocked for core in chain for box in active[core])}
        if not stuck:
            return []
        taken = [t for t in self._backlog if t.tags.weight in stuck]
        self._backlog = deque(t for t in self._backlog if t.tags.weight not in stuck)
        return taken

    def blocked(self) -> int:
        """Workers blocked now (their call judged too long)."""
        return sum(1 for box in self._all_boxes if box.blocked)

    def set_core_pattern(self, core_id: int, active: int) -> int:
        """Set how many of a core's mailboxes take new tokens (1..workers_per_core)."""
        active = max(1, min(self.config.workers_per_core, int(active)))
        self.core_patterns[core_id] = active
        self._active_boxes = {**self._active_boxes, core_id: self.mailboxes[core_id][:active]}
        self._slots = self._execution_slots()
        return active

    def _execution_slots(self) -> dict[ExecutionMode, dict[int, int]]:
        """Per mode, how many tokens each core runs at once: its active worker threads, or
        its worker processes."""
        return {
            ExecutionMode.THREAD: {core: len(boxes) for core, boxes in self._active_boxes.items()},
            ExecutionMode.PROCESS: dict.fromkeys(self._active_boxes,
                                                 self.config.processes_per_core),
        }

    # -- observation ---------------------------------------------------------------------

    def in_flight(self) -> int:
        """Admitted tokens not yet finished, plus retries waiting to re-enter."""
        finished = sum(box.finished + box.reclaimed for box in self._all_boxes) + \
            self._accounts.late_finished
        enqueued = sum(box.enqueued for box in self._all_boxes)  # read after finished
        return enqueued - finished + len(self._priority) + len(self._delays)

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
        capacity = self.config.mailbox_capacity
        free = {core: sum(capacity - box.depth() for box in boxes if not box.blocked)
                for core, boxes in self._active_boxes.items()}
        backlog = len(self._backlog) + len(self._priority)
        return {weight: max(0, sum(free[core] for core in chain) - backlog)
                for weight, chain in self._chains.items()}

    def state_name(self) -> str:
        if not self._running:
            return "stopped" if self._stopped or self.started_at else "new"
        if self._draining:
            return "draining" if self.in_flight() else "drained"
        return "running"

    def counts(self) -> dict[str, int]:
        with self._stats_lock:
            counts = dict(self._counts)
        queued = sum(box.depth() for box in self._all_boxes)
        backlog = len(self._backlog)
        # An abandoned worker's token is FAILED; its outermost one may still run (owed).
        counts["executing"] = sum(box.busy for box in self._all_boxes) + self._accounts.owed()
        counts["waiting"] = (queued + len(self._held) + len(self._priority) + len(self._delays)
                             + backlog)
        counts["held"] = len(self._held)
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
