"""The poller: one thread per dashboard reads the gateway and pushes what changed.

About once a second (``poll_interval``) while at least one page is open, and at once when a
control was just applied (:meth:`Poller.kick`), it reads the gateway (status, series, Guard
House, audit), builds the next view with its :class:`ViewMemory`, diffs it against the last
one and emits the patch to the room of logged-in pages. With no page open it reads nothing:
an unwatched dashboard costs the gateway nothing.

State and its owners: the memory belongs to the poller thread. ``view_lock`` guards
``view`` and ``version``; it is held while a patch is emitted and while a newly connected
page gets the full view and joins the room, so every page sees full(v) then patch(v -> v+1),
in order, with no gap. Emitting only queues the packets (the socket's writer sends them).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tokengate.dashboard import diff
from tokengate.dashboard.memory import ViewMemory
from tokengate.dashboard.metrics import DashboardMetrics
from tokengate.dashboard.source import Reading, Source
from tokengate.shared.backoff import Backoff

logger = logging.getLogger(__name__)

ROOM = "live"
Emit = Callable[..., None]  # emit(event, data, to=room_or_sid)


def encoded_size(data: Any) -> int:
    """Bytes of ``data`` as the page receives it (compact JSON)."""
    return len(json.dumps(data, separators=(",", ":")))


class Poller:
    """Reads the gateway and pushes patches; start() once, stop() to end."""

    def __init__(self, source: Source, memory: ViewMemory, emit: Emit, *,
                 interval: float = 1.0, metrics: DashboardMetrics | None = None,
                 watchers: Callable[[], int] = lambda: 1,
                 on_tick: Callable[[], None] | None = None) -> None:
        self.source = source
        self.memory = memory
        self.emit = emit
        self.interval = interval
        self.metrics = metrics or DashboardMetrics()
        self.watchers = watchers        # how many pages are open
        self.on_tick = on_tick          # e.g. the session sweep, once per loop
        self.view_lock = threading.Lock()
        self.view: dict[str, Any] | None = None
        self.version = 0
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Poller:
        self._thread = threading.Thread(target=self._loop, name="tg-dashboard-poller",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(15)

    def kick(self) -> None:
        """Poll now (a control was applied, or a page just opened)."""
        self._kick.set()

    def _loop(self) -> None:
        next_at = 0.0
        backoff = Backoff()
        while not self._stop.is_set():
            self._kick.wait(max(0.0, next_at - time.monotonic()))
            if self._stop.is_set():
                return
            kicked = self._kick.is_set()
            self._kick.clear()
            started = time.monotonic()
            try:
                self._tick(kicked)
                backoff.succeeded()
            except Exception:  # a bug in one poll must not end the live view
                logger.exception("dashboard poll failed; polling goes on")
                started += backoff.failed()
            next_at = started + self.interval

    def _tick(self, kicked: bool) -> None:
        """One turn of the loop: the tick hook, then a poll if a page watches or asked."""
        if self.on_tick is not None:
            self.on_tick()
        if kicked or self.watchers():
            self.poll_once()

    def poll_once(self) -> dict[str, Any]:
        """Read, build, diff and push once; returns the patch (also for tests)."""
        with self.metrics.poll_seconds.time():
            reading = self.source.read(self.memory.series_since)
        for name in reading.errors:
            self.metrics.source_errors.labels(name).inc()
        return self.publish(reading)

    def publish(self, reading: Reading) -> dict[str, Any]:
        view = self.memory.step(reading)
        with self.view_lock:
            patch = diff.diff(self.view, view)
            patch["base"], patch["v"] = self.version, self.version + 1
            self.view, self.version = view, self.version + 1
            self.emit("patch", patch, to=ROOM)
        size = encoded_size(patch)
        self.metrics.pushes.inc()
        self.metrics.push_bytes.inc(size)
        self.metrics.last_push_bytes.set(size)
        return patch

    def send_full(self, sid: str, join: Callable[[], None]) -> None:
        """Give one page the whole current view, then let it join the room (atomically)."""
        with self.view_lock:
            if self.view is not None:
                full = dict(self.view, v=self.version)
                self.emit("full", full, to=sid)
            join()
        if self.view is None or time.time() - self.view["now"] > self.interval * 2:
            self.kick()

    def note_control(self, entry: dict[str, Any]) -> None:
        """Record a dashboard-only control; it shows at the poll this kick starts."""
        self.memory.note_control(entry)
        self.kick()
