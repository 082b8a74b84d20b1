"""The dashboard, composed: Flask app, Socket.IO (threading mode), poller, controls, routes.

``Dashboard(config)`` builds every part and wires them; ``start()`` serves HTTP and
WebSocket on ``config.listen`` (port 0 picks one: see ``port``) from a threaded Werkzeug
server and starts the poller; ``stop()`` ends both. Tests use ``dashboard.app`` and
``dashboard.socketio`` with Flask's and Flask-SocketIO's test clients instead of serving.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask
from flask_socketio import SocketIO
from tokengate.dashboard import security
from tokengate.dashboard.auth import Clock, LoginThrottle, SessionStore
from tokengate.dashboard.config import DashboardConfig
from tokengate.dashboard.controls import Controls
from tokengate.dashboard.events import LiveEvents
from tokengate.dashboard.memory import ViewMemory
from tokengate.dashboard.metrics import DashboardMetrics
from tokengate.dashboard.poller import Poller
from tokengate.dashboard.routes import Routes
from tokengate.dashboard.source import ClusterSource, Source
from tokengate.shared.client_config import ClientConfig
from werkzeug.serving import BaseWSGIServer, make_server

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_EVENT_BYTES = 256 * 1024  # largest message a page may send (a launch's arguments)


class CompactJson:
    """The JSON Socket.IO packets are written in: no spaces (smaller pushes)."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("separators", (",", ":"))
        return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return json.loads(text, **kwargs)


def client_config(config: DashboardConfig, token: str | None = None) -> ClientConfig:
    return ClientConfig(address=config.gateway, token=token or config.gateway_token,
                        tls=config.tls, connect_timeout=3.0)


class Dashboard:
    """Every part of one dashboard process. ``clock`` (seconds, ``time.time`` unless a test
    passes its own) is what sessions expire and failed logins back off by."""

    def __init__(self, config: DashboardConfig, source: Source | None = None, *,
                 clock: Clock = time.time) -> None:
        self.config = config.validate(needs_gateway=source is None or source.remote)
        self.metrics = DashboardMetrics()
        if source is None:
            operator = client_config(config, config.operator_token) \
                if config.operator_token else None
            source = ClusterSource(client_config(config), operator)
        self.source: Source = source
        self.store = SessionStore(config.session_idle, config.session_max)
        self.throttle = LoginThrottle(config.login_backoff, config.login_backoff_max)
        self.app = Flask(__name__, static_folder=str(HERE / "static"),
                         template_folder=str(HERE / "templates"))
        self.app.config.update(MAX_CONTENT_LENGTH=64 * 1024, TEMPLATES_AUTO_RELOAD=False)
        self.socketio = SocketIO(self.app, async_mode="threading", manage_session=False,
                                 json=CompactJson, max_http_buffer_size=MAX_EVENT_BYTES,
                                 cors_allowed_origins=None, logger=False,
                                 engineio_logger=False)
        memory = ViewMemory(show_payloads=config.show_payloads,
                            feed_per_push=config.feed_per_push,
                            gateway=config.gateway if source.remote else source.label)
        self.poller = Poller(self.source, memory, self.socketio.emit,
                             interval=config.poll_interval, metrics=self.metrics,
                             watchers=lambda: len(self.events.pages), on_tick=self._tick)
        self.controls = Controls(self.source, self.poller, self.metrics,
                                 show_payloads=config.show_payloads)
        self.events = LiveEvents(self.socketio, config, self.store, self.poller,
                                 self.controls, self.metrics, clock)
        self.controls.on_outcome = self.events.send_outcome
        security.install(self.app, config, self.store, clock)
        self.app.register_blueprint(Routes(config, self.store, self.throttle, self.metrics,
                                           self.events.disconnect_session, clock).blueprint())
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _tick(self) -> None:
        self.events.sweep()

    @property
    def port(self) -> int:
        return self._server.server_port if self._server is not None else 0

    @property
    def url(self) -> str:
        host = self.config.listen_host
        shown = "127.0.0.1" if host in security.WILDCARDS else host
        return f"http://{'[' + shown + ']' if ':' in shown else shown}:{self.port}/"

    def start(self) -> Dashboard:
        access_log = logging.getLogger("werkzeug")
        if access_log.level == logging.NOTSET:  # one line per request only when asked for
            access_log.setLevel(logging.WARNING)
        self._server = make_server(self.config.listen_host, self.config.listen_port, self.app,
                                   threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="tg-dashboard-http", daemon=True)
        self._thread.start()
        self.poller.start()
        logger.info("dashboard on %s reading %s", self.url,
                    f"gateway {self.config.gateway}" if self.source.remote else "this process")
        return self

    def stop(self) -> None:
        self.poller.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self.source.close()
