"""Worker threads: each drains one mailbox, pinned to its core's CPU.

A worker takes tokens in FIFO order, claims each (after the start gate opens), hands the
claimed ones to the :class:`~node_agent.runner.TaskRunner` and acts on the
:class:`~node_agent.outcome.Outcome` it returns; those it cannot claim (killed, or already
run inline by a waiting parent) end as SKIPPED. What happens to the mailbox's run counters it
reports to the scheduler's :class:`~node_agent.accounting.Accounts` (``took``, ``started``,
``finished``), which alone writes them.

A thread-mode call past its time limit abandons its worker (the accounts set ``abandoned``
when the watchdog expires the call): the :class:`Crew` starts a fresh worker on the same
mailbox, and the abandoned one, once its outermost call returns at last, reports
``returned_late`` instead of ``finished``, hands that token to the crew and exits without
touching the mailbox again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from tokengate.node_agent.accounting import Accounts
from tokengate.node_agent.mailbox import STOP, Mailbox
from tokengate.node_agent.outcome import Outcome
from tokengate.node_agent.runner import TaskRunner
from tokengate.node_agent.watchdog import Watch
from tokengate.shared.token import TaskToken, set_inline_runner

logger = logging.getLogger(__name__)

AfterFinish = Callable[[TaskToken[Any], Outcome], None]


def pin_current_thread(cpu: int) -> bool:
    """Pin the calling thread (by its native id) to ``cpu``; False where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(threading.get_native_id(), {cpu})
    except OSError:
        logger.warning("could not pin thread to cpu %d", cpu, exc_info=True)
        return False
    return True


class Worker(threading.Thread):
    """One pinned worker thread draining one mailbox."""

    def __init__(
        self,
        mailbox: Mailbox,
        worker_id: str,
        cpu: int,
        runner: TaskRunner,
        accounts: Accounts,
        *,
        pin: bool,
        after_take: Callable[[Mailbox], None],
        after_finish: AfterFinish,
        on_abandoned: Callable[[Worker, TaskToken[Any], Outcome], None],
    ) -> None:
        super().__init__(name=worker_id, daemon=True)
        self.mailbox = mailbox
        self.worker_id = worker_id
        self.cpu = cpu
        self.pinned = False
        self.abandoned = False  # written by the accounts only; it only ever turns True
        self.inline_depth = 0   # tokens run inline on top of the outermost one (this thread)
        self.exited = False
        self._pin = pin
        self._runner = runner
        self._accounts = accounts
        self._after_take = after_take
        self._after_finish = after_finish
        self._on_abandoned = on_abandoned

    def run(self) -> None:
        if self._pin:
            self.pinned = pin_current_thread(self.cpu)
        set_inline_runner(self.run_inline)
        mailbox = self.mailbox
        core_id, worker_id = mailbox.core_id, self.worker_id
        runner = self._runner
        after_take, after_finish = self._after_take, self._after_finish
        took, started, finished = self._accounts.took, self._accounts.started, \
            self._accounts.finished
        try:
            while True:
                token = mailbox.take()
                if token is STOP:
                    break
                after_take(mailbox)
                took(mailbox)
                if runner.start_gate is not None:  # (no call at all without a gate)
                    runner.wait_for_gate()
                # Not claimable: killed while queued, or already run inline by a waiting parent.
                if token.claim(core_id, worker_id):
                    started(mailbox)
                    outcome = self._run_claimed(token)
                    if self.abandoned:  # a fresh worker serves the mailbox now
                        self._on_abandoned(self, token, outcome)
                        break
                else:
                    outcome = Outcome.SKIPPED
                finished(mailbox)
                after_finish(token, outcome)
        finally:
            set_inline_runner(None)
            self.exited = True

    def run_inline(self, token: TaskToken[Any]) -> bool:
        """Run a queued token on this thread: a parent waiting on its child, or a worker
        submitting while every mailbox is full (the caller runs it).

        Returns True when the token is final afterwards (run here, or finished meanwhile).
        """
        self._runner.wait_for_gate()
        if not token.claim(self.mailbox.core_id, self.worker_id):
            return token.done()
        logger.debug("worker %s runs %s inline", self.worker_id, token.token_id)
        self.inline_depth += 1
        try:
            outcome = self._run_claimed(token)
        finally:
            self.inline_depth -= 1
        self._after_finish(token, outcome)
        return token.done()

    def _run_claimed(self, token: TaskToken[Any]) -> Outcome:
        try:
            return self._runner.run(token, self)
        except Exception as exc:  # a bug in TokenGate itself: fail the token visibly
            logger.exception("worker %s could not run %s", self.worker_id, token.token_id)
            token.set_error(exc)
            return Outcome.FAILED


class Crew:
    """The worker threads of one scheduler: the one serving each mailbox, and those abandoned
    to a call past its time limit that are still running.

    Owned by the scheduler. ``_lock`` guards ``_serving`` (each mailbox's current worker, by
    position), ``_replaced`` (replacements per position), ``_abandoned`` and ``_closing``.
    The mailboxes' run accounting is the accounts' (see :mod:`node_agent.accounting`).
    """

    def __init__(self, boxes: list[Mailbox], cpu_for_core: Callable[[int], int],
                 runner: TaskRunner, accounts: Accounts, *, pin: bool,
                 after_take: Callable[[Mailbox], None], after_finish: AfterFinish) -> None:
        self._boxes = boxes
        self._cpu_for_core = cpu_for_core
        self._runner = runner
        self._accounts = accounts
        self._pin = pin
        self._after_take = after_take
        self._after_finish = after_finish
        self._lock = threading.Lock()
        self._serving: list[Worker] = []
        self._replaced = [0] * len(boxes)
        self._abandoned: list[Worker] = []
        self._closing = False

    def start(self) -> None:
        with self._lock:
            self._serving = [self._new_worker(position, box)
                             for position, box in enumerate(self._boxes)]
            for worker in self._serving:
                worker.start()

    def _new_worker(self, position: int, box: Mailbox) -> Worker:
        again = self._replaced[position]
        worker_id = (f"worker_{position}r{again}_core_{box.core_id}" if again
                     else f"worker_{position}_core_{box.core_id}")
        return Worker(box, worker_id, self._cpu_for_core(box.core_id), self._runner,
                      self._accounts, pin=self._pin, after_take=self._after_take,
                      after_finish=self._after_finish, on_abandoned=self._on_abandoned)

    def workers(self) -> list[Worker]:
        """The worker serving each mailbox now."""
        with self._lock:
            return list(self._serving)

    def close(self) -> list[Worker]:
        """Start no more replacements; the workers serving the mailboxes now (to join)."""
        with self._lock:
            self._closing = True
            return list(self._serving)

    def stuck(self) -> list[Worker]:
        """Abandoned workers whose late call (or outermost token) is still running."""
        with self._lock:
            self._abandoned = [worker for worker in self._abandoned if not worker.exited]
            return list(self._abandoned)

    # -- time limits (watchdog thread) ---------------------------------------------------

    def on_time_limit(self, watch: Watch, abandon: bool, close_outer: bool) -> None:
        """A thread-mode call ran past its limit (as the accounts decided the expiry): fail
        it, close what it closes, and replace its worker the first time."""
        worker = watch.worker
        # Handed over before the token fails (a reader woken by its failure sees the mailbox
        # free and the worker stuck) and before a fresh worker starts on the mailbox.
        self._accounts.close_expired(worker.mailbox, abandon=abandon, close_outer=close_outer)
        if abandon:
            with self._lock:
                self._abandoned.append(worker)
        how = ("the call goes on running on its worker thread, which was abandoned; a fresh "
               "worker took over its mailbox" if abandon else
               "the call goes on running on an abandoned worker thread")
        finished = self._runner.expire(watch, how)
        logger.warning("time limit: %s", watch.token.error_message if finished else how)
        # DISCARDED: the token was final already, so this expiry did not finish it.
        self._after_finish(watch.token, Outcome.TIMED_OUT if finished else Outcome.DISCARDED)
        if abandon:
            self._replace(worker)

    def _replace(self, worker: Worker) -> None:
        with self._lock:
            if self._closing:
                return
            position = self._serving.index(worker)
            self._replaced[position] += 1
            fresh = self._new_worker(position, worker.mailbox)
            self._serving[position] = fresh
            fresh.start()
        logger.info("worker %s abandoned to a call past its time limit; %s serves its mailbox",
                    worker.worker_id, fresh.worker_id)

    def _on_abandoned(self, worker: Worker, token: TaskToken[Any], outcome: Outcome) -> None:
        """The abandoned worker's outermost call returned (its own thread, which then exits)."""
        self._accounts.returned_late(worker)
        self._after_finish(token, outcome)
        logger.info("abandoned worker %s: its call returned late; the thread ends",
                    worker.worker_id)
