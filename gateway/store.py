"""The gateway's way to Redis: ledger calls run on threads of their own, never on the loop.

The gateway's owners live on one asyncio event loop. A ledger call blocks (a Redis round
trip, or a minute of retrying a submission whose reply was lost), so the loop hands it to a
:class:`Lane`: one thread, one FIFO queue, the sync Redis client. The caller awaits the
future it gets back; the loop serves every other stream meanwhile.

Two lanes, for two kinds of call:

- ``writes``: everything that changes the ledger (submit, claim, start, complete, give-back,
  loss, join, kill, forget, lease, drains, audit). One thread runs them in the order the loop
  made them, which is the order Redis runs them. That order is the gateway's ordering
  barrier: a submission sent before its calls' reports is stored before them, because the
  loop queued it first (the agent could not have reported on a call it was not yet sent).
- ``reads``: what only looks (records for watches and token detail, status figures, queue
  lengths, the audit log), so a status page never waits behind a flood of submissions.

Why a thread and the sync client rather than ``redis.asyncio`` on the loop: see
docs/cluster.md, "Redis off the loop" (measured by ``benchmarks/redis_loop_bench.py``).

Replicas: with ``--redis-replicas N`` the write lane, once a batch's replies are read, asks the
ledger to confirm them (``confirm_writes``: one ``WAIT N`` for the whole batch) before it
settles a single future: no client is told a call was accepted, no result is pushed and no
claimed call dispatched that a failover could still take back. A batch Redis could not confirm
fails with RedisUnavailable, as if Redis had been away (docs/redis-failover.md).

Batching: the write lane takes every job waiting when it wakes. Hot-path scripts (submit,
claim, start, complete) come as *pipelined* jobs: each is sent at once behind the others on
the lane's one connection, and their replies are read afterwards in the same order (one
write and one read for many scripts, in the order they were queued, which is the order Redis
runs them). A plain job first waits for the replies sent before it. The futures of one
batch are settled with one ``loop.call_soon_threadsafe`` (one wake-up of the loop). A
future whose awaiting task was cancelled is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from tokengate.gateway.ledger import NewToken, SubmitStatus, TokenLedger

logger = logging.getLogger(__name__)

T = TypeVar("T")

_STOP = object()
MAX_BATCH = 256  # jobs taken in one go: their replies are read before more are sent


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


def _settle_all(done: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in done:
        _settle(future, value, error)


class Lane:
    """One thread running blocking calls in the order they were queued."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop,
                 confirm: Callable[[], None] | None = None) -> None:
        self.name = name
        self._loop = loop
        self._confirm = confirm  # run after each batch, before its futures are settled
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)``; a future (of the loop) for its value. Loop only."""
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((future, fn, args, False))
        return future

    def pipelined(self, begin: Callable[..., Callable[[], T]], *args: Any,
                  ) -> asyncio.Future[T]:
        """Queue ``begin(*args)``, which sends and returns the reader of its reply; a
        future for what the reader returns. Loop only."""
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((future, begin, args, True))
        return future

    def stop(self, timeout: float = 5.0) -> None:
        self._jobs.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        jobs = self._jobs
        while True:
            batch = [jobs.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            done: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            readers: list[tuple[asyncio.Future[Any], Callable[[], Any]]] = []
            for job in batch:
                if job is _STOP:
                    break
                future, fn, args, pipelined = job
                if not pipelined:
                    _read_all(readers, done)
                try:
                    if pipelined:
                        readers.append((future, fn(*args)))
                    else:
                        done.append((future, fn(*args), None))
                except BaseException as exc:  # handed to the awaiting task, raised there
                    done.append((future, None, exc))
            _read_all(readers, done)
            if self._confirm is not None and done:
                done = _confirmed(self._confirm, done)
            try:
                self._loop.call_soon_threadsafe(_settle_all, done)
            except RuntimeError:  # the loop closed: nobody waits any more
                return
            if stop:
                return


def _read_all(readers: list[tuple[asyncio.Future[Any], Callable[[], Any]]],
              done: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Read the replies of the pipelined jobs sent so far, in order."""
    for future, read in readers:
        try:
            done.append((future, read(), None))
        except BaseException as exc:
            done.append((future, None, exc))
    readers.clear()


def _confirmed(confirm: Callable[[], None],
               done: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
               ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
    """``done`` once ``confirm`` vouched for the batch; if it raised, every job that
    succeeded fails with its error instead (those that failed keep their own)."""
    try:
        confirm()
    except BaseException as exc:
        logger.warning("a batch of %d Redis writes is failed: %s", len(done), exc)
        return [(future, None, error or exc) for future, _, error in done]
    return done


def _submit(ledger: TokenLedger, tokens: list[NewToken], forget: list[str],
            sent: Callable[[bool], None]) -> Callable[[], list[SubmitStatus]]:
    """Send a submission and the receipts of results its client has (pipelined); ``sent``
    is told whether the script went out. A reply lost on the way is waited for by running
    the script again (the ledger's ``_finish_submit``). Runs on the write lane."""
    try:
        finish = ledger.submit_begin(tokens, forget)
    except BaseException:
        sent(False)
        raise
    sent(True)
    return finish


class Store:
    """The ledger behind two lanes; owned by the gateway, used from the loop."""

    def __init__(self, ledger: TokenLedger, loop: asyncio.AbstractEventLoop) -> None:
        self.ledger = ledger
        self._loop = loop
        self.writes = Lane("tg-redis", loop, confirm=ledger.confirm_writes)
        self.reads = Lane("tg-redis-read", loop)

    def write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return self.writes.call(fn, *args)

    def read(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return self.reads.call(fn, *args)

    def submit(self, tokens: list[NewToken], forget: list[str],
               ) -> tuple[asyncio.Future[bool], asyncio.Future[list[SubmitStatus]]]:
        """Queue a submission: a future told once its script went out to Redis (True) or
        could not (False: nothing was stored), and one for the statuses Redis answered."""
        loop = self._loop
        sent: asyncio.Future[bool] = loop.create_future()

        def tell(went: bool) -> None:
            loop.call_soon_threadsafe(_settle, sent, went, None)
        return sent, self.writes.pipelined(_submit, self.ledger, tokens, forget, tell)

    def pipelined(self, begin: Callable[..., Callable[[], T]], *args: Any,
                  ) -> asyncio.Future[T]:
        """A hot-path script on the write lane, pipelined with its neighbours."""
        return self.writes.pipelined(begin, *args)

    def stop(self) -> None:
        self.writes.stop()
        self.reads.stop()
