"""HTTP routes: the login form, logout, the page, and the open ``/metrics`` and ``/healthz``.

The page itself carries no data: everything arrives over Socket.IO after login. The login
form is protected like any form (a CSRF token bound to a login cookie, checked by
:mod:`~tokengate.dashboard.security`), and failed logins back off per client address.
``/metrics`` (the dashboard's own metrics, no cluster data) and ``/healthz`` need no login.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from flask import Blueprint, Response, make_response, redirect, render_template, request
from tokengate.dashboard import security
from tokengate.dashboard.auth import LoginThrottle, SessionStore, password_matches
from tokengate.dashboard.config import DashboardConfig
from tokengate.dashboard.metrics import CONTENT_TYPE, DashboardMetrics

COOKIE = {"httponly": True, "samesite": "Strict", "path": "/"}
LOGIN_COOKIE_AGE = 3600


def build_routes(config: DashboardConfig, store: SessionStore, throttle: LoginThrottle,
                 metrics: DashboardMetrics,
                 end_session: Callable[[str], None]) -> Blueprint:
    """The blueprint; ``end_session(sid)`` disconnects a session's pages at logout."""
    routes = Blueprint("dashboard", __name__)

    def login_page(error: str = "", status: int = 200) -> Response:
        token = request.cookies.get(security.LOGIN_COOKIE) or secrets.token_urlsafe(32)
        response = make_response(render_template("login.html", csrf=token, error=error),
                                 status)
        response.set_cookie(security.LOGIN_COOKIE, token, max_age=LOGIN_COOKIE_AGE,
                            secure=request.is_secure, **COOKIE)
        return response

    @routes.get("/")
    def index() -> Response:
        session = security.current_session(store)
        if session is None:
            return redirect("/login", 303)
        return make_response(render_template(
            "index.html", csrf=session.csrf, actor=session.actor,
            show_payloads=config.show_payloads))

    @routes.get("/login")
    def login_form() -> Response:
        if security.current_session(store) is not None:
            return redirect("/", 303)
        return login_page()

    @routes.post("/login")
    def login() -> Response:
        address = request.remote_addr or "?"
        now = time.time()
        wait = throttle.wait_for(address, now)
        if wait > 0:
            metrics.logins.labels("throttled").inc()
            response = login_page(f"Too many failed logins: try again in {wait:.0f} s.", 429)
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        if not password_matches(request.form.get("password", ""), config.password):
            delay = throttle.failed(address, now)
            metrics.logins.labels("failed").inc()
            return login_page(f"Wrong password. The next try is possible in {delay:.0f} s.",
                              401)
        throttle.succeeded(address)
        metrics.logins.labels("ok").inc()
        session = store.create(request.form.get("user", ""), now)
        response = redirect("/", 303)
        response.set_cookie(security.SESSION_COOKIE, session.sid, secure=request.is_secure,
                            **COOKIE)
        response.delete_cookie(security.LOGIN_COOKIE, path="/")
        return response

    @routes.post("/logout")
    def logout() -> Response:
        session = security.current_session(store, touch=False)
        if session is not None:
            store.remove(session.sid)
            end_session(session.sid)
        response = redirect("/login", 303)
        response.delete_cookie(security.SESSION_COOKIE, path="/")
        return response

    @routes.get("/metrics")
    def metrics_page() -> Response:
        return Response(metrics.render(), content_type=CONTENT_TYPE)

    @routes.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", content_type="text/plain")

    return routes
