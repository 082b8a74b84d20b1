"""HTTP routes: the login form, logout, the page, and the open ``/metrics`` and ``/healthz``.

The page itself carries no data: everything arrives over Socket.IO after login. The login
form is protected like any form (a CSRF token bound to a login cookie, checked by
:mod:`~tokengate.dashboard.security`), and failed logins back off per client address.
``/metrics`` (the dashboard's own metrics, no cluster data) and ``/healthz`` need no login.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from flask import Blueprint, Response, make_response, redirect, render_template, request
from tokengate.dashboard import security
from tokengate.dashboard.auth import Clock, LoginThrottle, SessionStore, password_matches
from tokengate.dashboard.config import DashboardConfig
from tokengate.dashboard.metrics import CONTENT_TYPE, DashboardMetrics
from werkzeug.wrappers import Response as WebResponse

LOGIN_COOKIE_AGE = 3600


def _set_cookie(response: WebResponse, name: str, value: str, *,
                max_age: int | None = None) -> None:
    """Every cookie of the dashboard: HTTP only, same site, secure over HTTPS."""
    response.set_cookie(name, value, max_age=max_age, secure=request.is_secure,
                        httponly=True, samesite="Strict", path="/")


class Routes:
    """The HTTP views; ``end_session(sid)`` disconnects a session's pages at logout;
    ``clock`` is the time sessions and the login backoff are judged by."""

    def __init__(self, config: DashboardConfig, store: SessionStore, throttle: LoginThrottle,
                 metrics: DashboardMetrics, end_session: Callable[[str], None],
                 clock: Clock) -> None:
        self.config = config
        self.store = store
        self.throttle = throttle
        self.metrics = metrics
        self.end_session = end_session
        self.clock = clock

    def blueprint(self) -> Blueprint:
        routes = Blueprint("dashboard", __name__)
        routes.add_url_rule("/", view_func=self.index, methods=["GET"])
        routes.add_url_rule("/login", view_func=self.login_form, methods=["GET"])
        routes.add_url_rule("/login", view_func=self.login, methods=["POST"])
        routes.add_url_rule("/logout", view_func=self.logout, methods=["POST"])
        routes.add_url_rule("/metrics", view_func=self.metrics_page, methods=["GET"])
        routes.add_url_rule("/healthz", view_func=self.healthz, methods=["GET"])
        return routes

    def _login_page(self, error: str = "", status: int = 200) -> WebResponse:
        token = request.cookies.get(security.LOGIN_COOKIE) or secrets.token_urlsafe(32)
        response = make_response(render_template("login.html", csrf=token, error=error),
                                 status)
        _set_cookie(response, security.LOGIN_COOKIE, token, max_age=LOGIN_COOKIE_AGE)
        return response

    def index(self) -> WebResponse:
        session = security.current_session(self.store, self.clock())
        if session is None:
            return redirect("/login", 303)
        return make_response(render_template("index.html", csrf=session.csrf,
                                             actor=session.actor))

    def login_form(self) -> WebResponse:
        if security.current_session(self.store, self.clock()) is not None:
            return redirect("/", 303)
        return self._login_page()

    def login(self) -> WebResponse:
        address = request.remote_addr or "?"
        now = self.clock()
        wait = self.throttle.wait_for(address, now)
        if wait > 0:
            self.metrics.logins.labels("throttled").inc()
            response = self._login_page(f"Too many failed logins: try again in {wait:.0f} s.",
                                        429)
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        if not password_matches(request.form.get("password", ""), self.config.password):
            delay = self.throttle.failed(address, now)
            self.metrics.logins.labels("failed").inc()
            return self._login_page(f"Wrong password. The next try is possible in {delay:.0f} s.",
                                    401)
        self.throttle.succeeded(address)
        self.metrics.logins.labels("ok").inc()
        session = self.store.create(request.form.get("user", ""), now)
        response = redirect("/", 303)
        _set_cookie(response, security.SESSION_COOKIE, session.sid)
        response.delete_cookie(security.LOGIN_COOKIE, path="/")
        return response

    def logout(self) -> WebResponse:
        session = security.current_session(self.store, self.clock(), touch=False)
        if session is not None:
            self.store.remove(session.sid)
            self.end_session(session.sid)
        response = redirect("/login", 303)
        response.delete_cookie(security.SESSION_COOKIE, path="/")
        return response

    def metrics_page(self) -> Response:
        return Response(self.metrics.render(), content_type=CONTENT_TYPE)

    def healthz(self) -> Response:
        return Response("ok\n", content_type="text/plain")
