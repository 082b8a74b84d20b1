"""A gateway with an operator token: the dashboard's controls need it, its reads do not."""

from __future__ import annotations

import pytest
from conftest import Cluster, PageView, login, make_dashboard, open_page, page_csrf

OPERATOR = "operator-secret-0123456789"


@pytest.fixture(scope="module")
def guarded(redis_url, tmp_path_factory):
    cluster = Cluster(redis_url, tmp_path_factory.mktemp("operator-cluster"))
    cluster.env["TOKENGATE_OPERATOR_TOKEN"] = OPERATOR  # the gateway's only
    cluster.start_gateway()
    del cluster.env["TOKENGATE_OPERATOR_TOKEN"]
    cluster.start_agent("a1")
    yield cluster
    cluster.stop()


def _drain(dashboard) -> dict:
    http = dashboard.app.test_client()
    login(http)
    page = PageView(open_page(dashboard, http))
    page.wait(lambda v: "a1" in v["keyed"]["nodes"], "the node shown")  # reads work
    return page.emit("drain", {"reason": "operator test", "csrf": page_csrf(http)})


def test_without_the_operator_token_a_control_is_refused_and_changes_nothing(guarded):
    dashboard = make_dashboard(guarded)
    dashboard.poller.start()
    try:
        answer = _drain(dashboard)
        assert answer["ok"] is False and "PermissionDenied" in answer["message"]
        assert guarded.status()["state"] == "RUNNING"
    finally:
        dashboard.poller.stop()
        dashboard.source.close()


def test_with_the_operator_token_the_control_is_applied(guarded):
    dashboard = make_dashboard(guarded, operator_token=OPERATOR)
    dashboard.poller.start()
    try:
        assert _drain(dashboard)["ok"] is True
        assert guarded.status()["state"] in ("DRAINING", "DRAINED")
        dashboard.source.operator.resume("", actor="test")
        assert guarded.status()["state"] == "RUNNING"
    finally:
        dashboard.poller.stop()
        dashboard.source.close()
