"""The HTTP side: login, sessions, CSRF, Origin and Host on every method, headers."""

from __future__ import annotations

import pytest
from conftest import ORIGIN, PASSWORD, ManualClock, csrf_of, login, make_dashboard, page_csrf

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def http(dashboard):
    return dashboard.app.test_client()


def test_the_page_needs_a_login_and_the_login_page_carries_the_policy(http):
    assert http.get("/").headers["Location"].endswith("/login")
    page = http.get("/login")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "<script src=" in html  # no inline script
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Strict" in page.headers[
        "Set-Cookie"]


def test_a_good_login_makes_a_server_side_session(http):
    answer = login(http)
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("tg_session=") and "HttpOnly" in cookie
    page = http.get("/")
    assert page.status_code == 200 and "tg-csrf" in page.get_data(as_text=True)
    assert "dashboard:tester@" in page.get_data(as_text=True)


# The backoff and expiry tests move the dashboard's clock by hand (ManualClock): each
# boundary is checked on both sides, never raced against the wall clock.


def test_a_wrong_password_is_refused_and_the_next_try_must_wait(cluster):
    clock = ManualClock()
    dashboard = make_dashboard(cluster, clock=clock, login_backoff=2.0, login_backoff_max=8.0)
    http = dashboard.app.test_client()
    wrong = login(http, password="not-" + PASSWORD)
    assert wrong.status_code == 401 and "tg_session" not in wrong.headers.get("Set-Cookie", "")
    assert "Wrong password" in wrong.get_data(as_text=True)
    hurried = login(http)  # even the right password is not looked at during the backoff
    assert hurried.status_code == 429 and hurried.headers["Retry-After"] == "2"
    assert http.get("/").status_code == 303
    clock.advance(1.5)
    assert login(http).status_code == 429, "still inside the 2 s backoff"
    clock.advance(0.5)
    assert login(http).status_code == 303
    assert http.get("/").status_code == 200


def test_the_backoff_doubles_with_each_failure(cluster):
    clock = ManualClock()
    dashboard = make_dashboard(cluster, clock=clock, login_backoff=1.0, login_backoff_max=8.0)
    http = dashboard.app.test_client()
    assert login(http, password="x").status_code == 401  # first failure: 1 s
    clock.advance(1.0)
    assert login(http, password="x").status_code == 401  # second failure: 2 s now
    clock.advance(1.5)
    assert login(http).status_code == 429, "1 s would be over; 2 s is not"
    clock.advance(0.5)
    assert login(http).status_code == 303


def test_login_without_csrf_or_from_another_origin_is_refused(http):
    form = csrf_of(http.get("/login").get_data(as_text=True))
    data = {"password": PASSWORD, "csrf": form}
    assert http.post("/login", data={"password": PASSWORD},
                     headers={"Origin": ORIGIN}).status_code == 403
    assert http.post("/login", data=data,
                     headers={"Origin": "http://evil.example"}).status_code == 403
    assert http.post("/login", data=data).status_code == 403  # no Origin nor Referer
    assert http.post("/login", data=data,
                     headers={"Referer": "http://evil.example/x"}).status_code == 403
    assert http.post("/login", data=data,
                     headers={"Referer": ORIGIN + "/login"}).status_code == 303


@pytest.mark.parametrize("method", UNSAFE)
def test_every_unsafe_method_checks_csrf_and_origin(http, method):
    login(http)
    csrf = page_csrf(http)
    for path in ("/", "/logout", "/metrics"):
        assert http.open(path, method=method, headers={"Origin": ORIGIN}).status_code == 403
        assert http.open(path, method=method, headers={
            "Origin": "http://evil.example", "X-CSRF-Token": csrf}).status_code == 403
        assert http.open(path, method=method,
                         headers={"X-CSRF-Token": csrf}).status_code == 403
    assert http.get("/").status_code == 200  # none of it logged us out


def test_a_foreign_host_is_refused_on_every_method(http):
    login(http)
    for method in ("GET", "HEAD", "OPTIONS", *UNSAFE):
        answer = http.open("/", method=method, headers={"Host": "rebound.example"})
        assert answer.status_code == 403, method


def test_a_foreign_origin_is_refused_even_for_reading(http):
    login(http)
    assert http.get("/", headers={"Origin": "http://evil.example"}).status_code == 403
    assert http.get("/", headers={"Origin": ORIGIN}).status_code == 200


def test_logout_ends_the_session(http):
    login(http)
    csrf = page_csrf(http)
    assert http.post("/logout", data={"csrf": csrf}, headers={"Origin": ORIGIN}).status_code == 303
    assert http.get("/").status_code == 303


def test_a_session_expires_when_idle(cluster):
    clock = ManualClock()
    dashboard = make_dashboard(cluster, clock=clock, session_idle=10.0)
    http = dashboard.app.test_client()
    login(http)
    clock.advance(9.0)
    assert http.get("/").status_code == 200  # used: its idle time starts again
    clock.advance(10.0)
    assert http.get("/").status_code == 200, "idle exactly 10 s: not past it"
    clock.advance(10.5)
    assert http.get("/").status_code == 303


def test_a_session_expires_at_its_maximum_age_however_busy(cluster):
    clock = ManualClock()
    dashboard = make_dashboard(cluster, clock=clock, session_idle=10.0, session_max=30.0)
    http = dashboard.app.test_client()
    login(http)
    for _ in range(3):
        clock.advance(9.0)
        assert http.get("/").status_code == 200  # never idle for 10 s
    clock.advance(3.0)
    assert http.get("/").status_code == 200, "30 s old: not past its maximum age"
    clock.advance(1.0)
    assert http.get("/").status_code == 303


def test_metrics_and_health_are_open_and_carry_no_cluster_data(http):
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.get_data(as_text=True)
    assert "tokengate_dashboard_pushes_total" in text and "tokengate_dashboard_logins" in text
    assert "a1" not in text  # no node names, no tokens
    assert http.get("/healthz").get_data(as_text=True) == "ok\n"


def test_assets_ship_inside_the_package(http):
    for path in ("/static/vendor/uPlot.iife.min.js", "/static/vendor/socket.io.min.js",
                 "/static/js/app.js", "/static/app.css"):
        answer = http.get(path)
        assert answer.status_code == 200, path
        answer.close()
