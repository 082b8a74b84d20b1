"""Socket.IO: who may connect, and the events a page sends.

A page may connect only with a live session (its cookie), the session's CSRF token in the
handshake's ``auth``, an allowed Host and our own Origin; otherwise the connect handler
refuses it. Every event then checks again that the session lives (it may have expired or
logged out: the page is told and disconnected) and carries the session's CSRF token; only
then does :class:`~tokengate.dashboard.controls.Controls` run it. Answers go back as the
event's acknowledgement.

:class:`Pages` owns the open pages (socket id -> session id); ``_pages_lock`` guards them.
The poller's tick sweeps them: pages of expired sessions are disconnected, the sessions of
open pages count as in use.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import request
from flask_socketio import SocketIO, join_room
from tokengate.dashboard import security
from tokengate.dashboard.auth import Clock, Session, SessionStore, csrf_matches
from tokengate.dashboard.config import DashboardConfig
from tokengate.dashboard.controls import ACTIONS, Controls
from tokengate.dashboard.metrics import DashboardMetrics
from tokengate.dashboard.poller import ROOM, Poller

logger = logging.getLogger(__name__)


class Pages:
    """Open pages and the sessions they belong to."""

    def __init__(self) -> None:
        self._pages_lock = threading.Lock()  # guards _pages
        self._pages: dict[str, str] = {}      # socket sid -> session sid

    def add(self, sid: str, session_sid: str) -> None:
        with self._pages_lock:
            self._pages[sid] = session_sid

    def remove(self, sid: str) -> None:
        with self._pages_lock:
            self._pages.pop(sid, None)

    def session_of(self, sid: str) -> str | None:
        with self._pages_lock:
            return self._pages.get(sid)

    def of_session(self, session_sid: str) -> list[str]:
        with self._pages_lock:
            return [sid for sid, owner in self._pages.items() if owner == session_sid]

    def items(self) -> list[tuple[str, str]]:
        with self._pages_lock:
            return list(self._pages.items())

    def __len__(self) -> int:
        return len(self._pages)


class LiveEvents:
    """Registers the connect, disconnect, resync and control handlers on ``socketio``;
    ``clock`` is the time sessions are judged by."""

    def __init__(self, socketio: SocketIO, config: DashboardConfig, store: SessionStore,
                 poller: Poller, controls: Controls, metrics: DashboardMetrics,
                 clock: Clock) -> None:
        self.socketio = socketio
        self.config = config
        self.store = store
        self.clock = clock
        self.poller = poller
        self.controls = controls
        self.metrics = metrics
        self.pages = Pages()
        socketio.on_event("connect", self.on_connect)
        socketio.on_event("disconnect", self.on_disconnect)
        socketio.on_event("resync", self.on_resync)
        for action in ACTIONS:
            socketio.on_event(action, self._handler(action))

    # -- connection --------------------------------------------------------------------

    def on_connect(self, auth: Any = None) -> bool:
        session = security.current_session(self.store, self.clock())
        csrf = auth.get("csrf") if isinstance(auth, dict) else None
        if not security.request_allowed(request, self.config, needs_origin=True) \
                or session is None or not csrf_matches(csrf, session):
            logger.info("refused a page from %s (no session, CSRF, Host or Origin)",
                        request.remote_addr)
            return False
        sid = request.sid  # type: ignore[attr-defined]
        self.pages.add(sid, session.sid)
        self.metrics.pages.set(len(self.pages))
        self.poller.send_full(sid, lambda: join_room(ROOM, sid=sid))
        return True

    def on_disconnect(self, reason: Any = None) -> None:
        self.pages.remove(request.sid)  # type: ignore[attr-defined]
        self.metrics.pages.set(len(self.pages))

    def on_resync(self, payload: Any = None) -> None:
        if self._session() is not None:
            self.poller.send_full(request.sid, lambda: None)  # type: ignore[attr-defined]

    # -- events ------------------------------------------------------------------------

    def _session(self) -> Session | None:
        """The live session of the page sending this event; a dead one is disconnected."""
        sid = request.sid  # type: ignore[attr-defined]
        session = self.store.get(self.pages.session_of(sid), self.clock())
        if session is None:
            self.socketio.emit("expired", {}, to=sid)
            self.socketio.server.disconnect(sid)
        return session

    def _handler(self, action: str) -> Any:
        def handle(payload: Any = None) -> dict[str, Any]:
            session = self._session()
            if session is None:
                return {"ok": False, "message": "your session expired: log in again",
                        "login": True}
            presented = payload.get("csrf") if isinstance(payload, dict) else None
            if not csrf_matches(presented, session):
                return {"ok": False, "message": "missing or wrong CSRF token"}
            return self.controls.run(action, session, payload)
        handle.__name__ = f"on_{action}"
        return handle

    # -- the poller's tick and the controls' outcomes ----------------------------------

    def sweep(self) -> None:
        """Disconnect pages whose session ended; keep the others' sessions in use."""
        now = self.clock()
        alive: set[str] = set()
        for sid, session_sid in self.pages.items():
            if self.store.get(session_sid, now, touch=False) is None:
                self.socketio.emit("expired", {}, to=sid)
                self.socketio.server.disconnect(sid)
                self.pages.remove(sid)
            else:
                alive.add(session_sid)
        self.store.touch_all(alive, now)
        self.metrics.pages.set(len(self.pages))

    def disconnect_session(self, session_sid: str) -> None:
        for sid in self.pages.of_session(session_sid):
            self.socketio.emit("expired", {}, to=sid)
            self.socketio.server.disconnect(sid)
            self.pages.remove(sid)

    def send_outcome(self, session: Session, outcome: dict[str, Any]) -> None:
        for sid in self.pages.of_session(session.sid):
            self.socketio.emit("launched", outcome, to=sid)
