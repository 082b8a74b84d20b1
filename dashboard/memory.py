"""What the view remembers between polls, and the whole view built from it.

:class:`ViewMemory` is owned by one thread (the poller, or ``tokengate top``'s loop); it has
no lock. It keeps the last good reading of each source (a source that fails keeps showing
its last data, marked with the error), the charts' last ten minutes, the executions feed
(sampled) and the audit entries, and :meth:`ViewMemory.step` turns a new reading into the
next view: plain data, laid out for :mod:`tokengate.dashboard.diff`::

    {"now": t,
     "panels": {"gateway", "sources", "cluster", "pool", "tasks", "options"},
     "keyed":   {"nodes": {name: card}, "functions": {name: row}, "quarantine": {id: row}},
     "streams": {"series", "pool_series", "feed", "audit"}}    # lists, oldest first

Dashboard-made controls that the gateway does not audit (launching a task) are kept here
too: :meth:`ViewMemory.note_control` (any thread) hands them over through a queue, and the
owner's next :meth:`ViewMemory.step` adds them to the audit stream.
"""

from __future__ import annotations

import queue
from collections import deque
from typing import Any

from tokengate.dashboard import model
from tokengate.dashboard.source import Reading

SERIES_KEEP = 600     # points: ten minutes at one a second
FEED_KEEP = 200
AUDIT_KEEP = 200
SEEN_KEEP = 5_000     # feed keys remembered, so an outcome is shown once
STREAM_KEYS = {"series": "t", "pool_series": "t", "feed": "key", "audit": "key"}
STREAM_ORDER = {"series": "t", "pool_series": "t", "feed": "at", "audit": "at"}
STREAM_LIMITS = {"series": SERIES_KEEP, "pool_series": SERIES_KEEP, "feed": FEED_KEEP,
                 "audit": AUDIT_KEEP}
SOURCES = ("status", "series", "guards", "audit")


def merge_stream(name: str, items: list[dict[str, Any]],
                 added: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The one rule of a stream: by key, an added item replaces the one it names or joins;
    the list stays sorted by its order field (stably) and keeps the newest ``limit`` items.
    The view and the page (and :func:`diff.apply`) follow it alike."""
    key, order = STREAM_KEYS[name], STREAM_ORDER[name]
    by_key = {item[key]: item for item in items}
    by_key.update((item[key], item) for item in added)
    return sorted(by_key.values(), key=lambda item: item[order])[-STREAM_LIMITS[name]:]


class ViewMemory:
    """The view's state across polls; :meth:`step` builds the next view."""

    def __init__(self, *, show_payloads: bool = False, feed_per_push: int = 25,
                 gateway: str = "") -> None:
        self.show_payloads = show_payloads
        self.feed_per_push = feed_per_push
        self.gateway = gateway
        self.last: dict[str, Any] = {}           # source -> its last good value
        self.streams: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAM_KEYS}
        self.seen: deque[str] = deque(maxlen=SEEN_KEEP)
        self._seen_set: set[str] = set()
        self.local_audit: deque[dict[str, Any]] = deque(maxlen=AUDIT_KEEP)
        self._noted: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.status_at = 0.0

    @property
    def series_since(self) -> float:
        """The newest chart second we hold (0: none): the next Series read starts there."""
        series = self.streams["series"]
        return float(series[-1]["t"]) if series else 0.0

    def _merge(self, name: str, added: list[dict[str, Any]]) -> None:
        if added:
            self.streams[name] = merge_stream(name, self.streams[name], added)

    def note_control(self, entry: dict[str, Any]) -> None:
        """A control the dashboard applied that the gateway's audit log does not record.
        Any thread may call this; the entry joins at the next :meth:`step`."""
        self._noted.put(model.audit_item(entry, source="dashboard"))

    def step(self, reading: Reading) -> dict[str, Any]:
        while not self._noted.empty():
            self.local_audit.append(self._noted.get_nowait())
        for name in SOURCES:
            value = getattr(reading, name)
            if value is not None:
                self.last[name] = value
        if reading.status is not None:
            self.status_at = reading.at
            self._remember_status(reading.status, reading.at)
        if reading.series is not None:
            self._remember_series(reading.series, reading.at)
        return self.view(reading)

    def _remember_status(self, status: dict[str, Any], at: float) -> None:
        self._merge("pool_series", [model.pool_point(status, at)])
        fresh = [model.feed_item(o) for o in status.get("recent", [])]
        fresh = [item for item in fresh if item["key"] not in self._seen_set]
        for item in fresh:
            if len(self.seen) == self.seen.maxlen:
                self._seen_set.discard(self.seen[0])
            self.seen.append(item["key"])
            self._seen_set.add(item["key"])
        self._merge("feed", model.sample_feed(fresh, self.feed_per_push))

    def _remember_series(self, points: list[dict[str, Any]], at: float) -> None:
        oldest = at - SERIES_KEEP
        self._merge("series", [model.series_point(p) for p in points if p["t"] >= oldest])

    def view(self, reading: Reading) -> dict[str, Any]:
        status = self.last.get("status", {})
        guards = self.last.get("guards", {})
        at = self.status_at or reading.at
        return {
            "now": round(reading.at, 3),
            "panels": {
                "gateway": {"address": self.gateway, "ok": reading.status is not None,
                            "error": reading.errors.get("status", "")},
                "sources": {name: reading.errors.get(name, "") for name in SOURCES},
                "cluster": model.cluster_panel(status, at) if status else {},
                "pool": model.pool_panel(status) if status else {},
                "tasks": model.task_choices(status),
                "guard_house": model.guard_house_panel(guards),
                "options": {"show_payloads": self.show_payloads},
            },
            "keyed": {
                "nodes": {n["name"]: model.node_card(n, at) for n in status.get("nodes", [])},
                "functions": model.function_rows(guards),
                "quarantine": model.quarantine_rows(guards, self.show_payloads),
            },
            "streams": {
                "series": list(self.streams["series"]),
                "pool_series": list(self.streams["pool_series"]),
                "feed": list(self.streams["feed"]),
                "audit": self._audit(),
            },
        }

    def _audit(self) -> list[dict[str, Any]]:
        entries = [model.audit_item(e) for e in self.last.get("audit", [])]
        return merge_stream("audit", entries, list(self.local_audit))
