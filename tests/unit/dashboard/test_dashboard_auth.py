"""Logins without Flask: password check, backoff per address, sessions and their expiry."""

from __future__ import annotations

import pytest
from tokengate.dashboard.app import client_config
from tokengate.dashboard.auth import (
    LoginThrottle,
    SessionStore,
    clean_user,
    csrf_matches,
    password_matches,
)
from tokengate.dashboard.config import DashboardConfig
from tokengate.dashboard.security import host_allowed, hostname
from tokengate.dashboard.source import ClusterSource
from tokengate.shared.errors import ConfigurationError


def test_password_check():
    assert password_matches("secret", "secret")
    assert not password_matches("secret ", "secret")
    assert not password_matches("", "")  # no password configured: nobody gets in


def test_backoff_doubles_per_failure_up_to_the_cap_and_success_clears_it():
    throttle = LoginThrottle(base=1.0, cap=4.0)
    assert throttle.wait_for("a", 0.0) == 0.0
    assert throttle.failed("a", 0.0) == 1.0
    assert throttle.wait_for("a", 0.5) == pytest.approx(0.5)
    assert throttle.wait_for("b", 0.5) == 0.0  # per address
    assert throttle.failed("a", 1.0) == 2.0
    assert throttle.failed("a", 3.0) == 4.0
    assert throttle.failed("a", 7.0) == 4.0  # capped
    assert throttle.wait_for("a", 9.0) == pytest.approx(2.0)
    throttle.succeeded("a")
    assert throttle.wait_for("a", 9.0) == 0.0


def test_a_long_quiet_address_is_forgiven():
    throttle = LoginThrottle(base=1.0, cap=2.0)
    for t in range(5):
        throttle.failed("a", float(t))
    assert throttle.wait_for("a", 4.5) > 0
    assert throttle.wait_for("a", 4.0 + 8.1) == 0.0


def test_sessions_expire_when_idle_and_at_their_maximum_age():
    store = SessionStore(idle=10.0, max_age=30.0)
    session = store.create("alice", now=0.0)
    assert store.get(session.sid, 9.0) is session  # used: idle clock restarts
    assert store.get(session.sid, 18.0) is session
    assert store.get(session.sid, 29.0 + 2.0) is None  # past the maximum age
    other = store.create("", now=100.0)
    assert store.get(other.sid, 111.0) is None  # idle too long
    assert store.get("unknown", 0.0) is None and store.get(None, 0.0) is None


def test_open_pages_keep_a_session_in_use():
    store = SessionStore(idle=10.0, max_age=100.0)
    session = store.create("", now=0.0)
    store.touch_all({session.sid}, now=9.0)
    assert store.get(session.sid, 18.0, touch=False) is session


def test_actor_names_the_user_and_a_short_id_not_the_secret():
    store = SessionStore(idle=10.0, max_age=100.0)
    session = store.create("ops team<script>", now=0.0)
    assert session.actor == f"dashboard:opsteamscript@{session.short}"
    assert session.sid not in session.actor and len(session.short) == 8
    assert clean_user("x" * 99) == "x" * 32


def test_csrf_compares_with_the_session_token():
    store = SessionStore(idle=10.0, max_age=100.0)
    session = store.create("", now=0.0)
    assert csrf_matches(session.csrf, session)
    assert not csrf_matches("nope", session)
    assert not csrf_matches(None, session) and not csrf_matches(session.csrf, None)


@pytest.mark.parametrize(("header", "name"), [("localhost:8080", "localhost"),
                                              ("[::1]:80", "::1"), ("Example.ORG", "example.org"),
                                              ("10.0.0.5:8080", "10.0.0.5")])
def test_hostname_of_a_host_header(header, name):
    assert hostname(header) == name


def test_allowed_hosts():
    local = DashboardConfig(listen="127.0.0.1:8080", password="p")
    assert host_allowed("localhost:8080", local) and host_allowed("127.0.0.1:8080", local)
    assert not host_allowed("rebind.example:8080", local)
    wild = DashboardConfig(listen="0.0.0.0:8080", password="p" * 12)
    assert host_allowed("dash.example:8080", wild)
    named = DashboardConfig(listen="0.0.0.0:8080", password="p" * 12,
                            allowed_hosts=("dash.example",))
    assert host_allowed("dash.example", named) and not host_allowed("other.example", named)


def test_listening_beyond_loopback_needs_a_long_password():
    with pytest.raises(ConfigurationError, match="12 characters"):
        DashboardConfig(listen="0.0.0.0:8080", password="short", token="t").validate()
    DashboardConfig(listen="0.0.0.0:8080", password="x" * 12, token="t").validate()
    DashboardConfig(listen="127.0.0.1:8080", password="short", token="t").validate()
    with pytest.raises(ConfigurationError, match="needs a password"):
        DashboardConfig(listen="127.0.0.1:8080", token="t").validate()
    with pytest.raises(ConfigurationError, match="cluster token"):
        DashboardConfig(listen="127.0.0.1:8080", password="p").validate()


def test_controls_go_with_the_operator_token_reads_with_the_cluster_token(monkeypatch):
    monkeypatch.setenv("TOKENGATE_OPERATOR_TOKEN", "op-token")
    monkeypatch.setenv("TOKENGATE_TOKEN", "cluster-token")
    monkeypatch.setenv("TOKENGATE_DASHBOARD_PASSWORD", "pw")
    config = DashboardConfig.from_env()
    assert config.gateway_token == "cluster-token" and config.operator_token == "op-token"
    assert config.password == "pw"
    made = []

    class FakeClient:
        def __init__(self, client_config):
            self.config, self.connected = client_config, False
            made.append(self)

        def connect(self):
            self.connected = True
            return self

        def close(self):
            pass

    source = ClusterSource(client_config(config), client_config(config, config.operator_token),
                           client_factory=FakeClient)
    assert source.operator.config.token == "op-token" and not source.operator.connected
    assert source.client.config.token == "cluster-token" and source.client.connected
    assert source.operator is made[0] and len(made) == 2
    alone = ClusterSource(client_config(config), client_factory=FakeClient)
    assert alone.operator is alone.client
