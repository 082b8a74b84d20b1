"""The dashboard's door: Host and Origin checks, CSRF, and the security headers.

Every HTTP request, whatever its method, must name an allowed Host (DNS rebinding) and, when
it carries an Origin, our own. A request that can change anything (any method but GET,
HEAD and OPTIONS) must also carry an Origin (or Referer) of ours and the CSRF token of its
session (the login form: the token of its login cookie). Socket.IO's handshake bypasses
Flask's hooks, so the connect handler calls :func:`request_allowed` itself. Every response
gets a Content-Security-Policy that allows scripts, styles and connections only from the
page's own origin (no inline script), and no framing.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Flask, Request, Response, abort, request
from tokengate.dashboard.auth import Clock, Session, SessionStore, csrf_matches
from tokengate.dashboard.config import DashboardConfig

SESSION_COOKIE = "tg_session"
LOGIN_COOKIE = "tg_login"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def hostname(host_header: str) -> str:
    """``example.org:8080`` -> ``example.org``; ``[::1]:80`` -> ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def host_allowed(host_header: str, config: DashboardConfig) -> bool:
    name = hostname(host_header)
    extra = {h.lower() for h in config.allowed_hosts}
    if config.listen_host in WILDCARDS and not extra:
        return bool(name)
    return name in LOOPBACK_NAMES | extra | {config.listen_host.lower()}


def own_origin(req: Request) -> str:
    return f"{req.scheme}://{req.host}".lower()


def _origin_of(req: Request) -> str | None:
    origin = req.headers.get("Origin")
    if origin is not None:
        return origin.lower()
    referer = req.headers.get("Referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return None


def request_allowed(req: Request, config: DashboardConfig, *, needs_origin: bool) -> bool:
    """Host allowed, and Origin (or Referer) ours when present (required if ``needs_origin``)."""
    if not host_allowed(req.host, config):
        return False
    origin = _origin_of(req)
    if origin is None:
        return not needs_origin
    return origin == own_origin(req)


def current_session(store: SessionStore, now: float, *, touch: bool = True) -> Session | None:
    return store.get(request.cookies.get(SESSION_COOKIE), now, touch=touch)


def _csrf_ok(store: SessionStore, now: float) -> bool:
    presented = request.headers.get(CSRF_HEADER) or request.form.get("csrf", "")
    if request.path == "/login":
        expected = request.cookies.get(LOGIN_COOKIE, "")
        return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())
    return csrf_matches(presented, current_session(store, now, touch=False))


def install(app: Flask, config: DashboardConfig, store: SessionStore, clock: Clock) -> None:
    """Check every request before it reaches a view; add the headers to every response."""

    @app.before_request
    def guard() -> None:
        unsafe = request.method not in SAFE_METHODS
        if not request_allowed(request, config, needs_origin=unsafe):
            abort(403, "Host or Origin not allowed")
        if unsafe and not _csrf_ok(store, clock()):
            abort(403, "missing or wrong CSRF token")

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        if request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "public, max-age=3600")
        else:
            response.headers["Cache-Control"] = "no-store"
        return response
