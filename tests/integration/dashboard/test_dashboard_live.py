"""The live page over Socket.IO: who may connect, what it receives, every control.

Each control is driven as the page drives it (an event with the session's CSRF token) against
a real cluster, and checked three ways: the event's answer, the page's view, and the gateway.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import ORIGIN, PageView, login, make_dashboard, open_page, page_csrf, wait_until
from tokengate.shared.errors import TokenKilled, TokenQuarantined


@pytest.fixture
def http(dashboard):
    client = dashboard.app.test_client()
    login(client)
    return client


@pytest.fixture
def page(dashboard, http):
    client = open_page(dashboard, http)
    assert client.is_connected()
    yield PageView(client)
    if client.is_connected():
        client.disconnect()


def _control(page: PageView, http, event: str, **payload) -> dict:
    return page.emit(event, dict(payload, csrf=page_csrf(http)))


# -- connecting ------------------------------------------------------------------------


def test_a_page_without_a_session_is_refused(dashboard):
    anonymous = dashboard.app.test_client()
    client = dashboard.socketio.test_client(dashboard.app, flask_test_client=anonymous,
                                            auth={"csrf": "x"}, headers={"Origin": ORIGIN})
    assert not client.is_connected()


def test_a_page_with_a_wrong_csrf_or_a_foreign_origin_is_refused(dashboard, http):
    assert not open_page(dashboard, http, csrf="wrong").is_connected()
    assert not open_page(dashboard, http, headers={"Origin": "http://evil.example"}).is_connected()
    assert not open_page(dashboard, http, headers={}).is_connected()  # no Origin
    assert not open_page(dashboard, http, headers={"Origin": ORIGIN, "Host": "evil.example"}
                         ).is_connected()


def test_a_page_gets_the_whole_view_then_only_patches(page):
    view = page.wait(lambda v: {"a1", "a2"} <= set(v["keyed"]["nodes"]), "both nodes shown")
    assert view["panels"]["cluster"]["state"] == "RUNNING"
    assert view["panels"]["gateway"]["ok"] is True
    first = page.version
    page.wait(lambda v: page.version >= first + 2, "two more patches")
    card = page.view["keyed"]["nodes"]["a1"]
    assert card["state"] == "UP" and card["host"] and len(card["cores"]) >= 1
    cluster, cards = page.view["panels"]["cluster"], page.view["keyed"]["nodes"].values()
    assert cluster["workers"] == sum(c["workers"] for c in cards) > 0
    assert cluster["hosts"] == 1 and cluster["physical_cores"] >= 1  # two agents, one host


def test_an_event_without_csrf_is_refused_and_changes_nothing(page, cluster):
    answer = page.emit("drain", {"reason": "no token"})
    assert answer == {"ok": False, "message": "missing or wrong CSRF token"}
    assert page.emit("drain", {"reason": "bad token", "csrf": "nope"})["ok"] is False
    assert cluster.status()["state"] == "RUNNING"


def test_an_event_after_logout_is_refused_and_the_page_is_told(dashboard, http, page, cluster):
    csrf = page_csrf(http)
    http.post("/logout", data={"csrf": csrf}, headers={"Origin": ORIGIN})
    assert not page.page.is_connected()  # logout disconnects the session's pages
    again = open_page(dashboard, http, csrf=csrf)
    assert not again.is_connected()
    assert cluster.status()["state"] == "RUNNING"


def test_no_page_open_means_no_reads_of_the_gateway(cluster):
    quiet = make_dashboard(cluster, poll_interval=0.05)
    quiet.poller.start()
    try:
        time.sleep(0.4)
        pushes = quiet.metrics.registry.get_sample_value
        assert pushes("tokengate_dashboard_pushes_total") == 0
        http = quiet.app.test_client()
        login(http)
        page = PageView(open_page(quiet, http))
        page.wait(lambda v: v["keyed"]["nodes"], "a view once a page is open")
        assert pushes("tokengate_dashboard_pushes_total") >= 1
    finally:
        quiet.poller.stop()
        quiet.source.close()


# -- controls --------------------------------------------------------------------------


def test_drain_and_resume_the_cluster_from_the_page(page, http, cluster):
    client = cluster.client()
    answer = _control(page, http, "drain", reason="maintenance window")
    assert answer["ok"] is True and "draining" in answer["message"]
    held = client.submit_by_name("cluster_tasks:add", (1, 2))
    view = page.wait(lambda v: v["panels"]["cluster"]["state"] == "DRAINED", "cluster drained")
    assert view["panels"]["cluster"]["reason"] == "maintenance window"
    assert view["panels"]["pool"]["executing"] == 0
    status = cluster.status()
    assert status["state"] == "DRAINED" and status["reason"] == "maintenance window"
    assert not held.done()
    assert _control(page, http, "resume")["ok"] is True
    page.wait(lambda v: v["panels"]["cluster"]["state"] == "RUNNING", "cluster running")
    assert held.get(timeout=15) == 3  # held, not lost, and runs after the resume


def test_drain_and_resume_one_node(page, http, cluster):
    assert _control(page, http, "drain", node="a1", reason="disk")["ok"] is True
    view = page.wait(lambda v: v["keyed"]["nodes"]["a1"]["state"] == "DRAINED", "a1 drained")
    assert view["keyed"]["nodes"]["a1"]["reason"] == "disk"
    assert view["keyed"]["nodes"]["a2"]["state"] == "UP"
    assert _control(page, http, "resume", node="a1")["ok"] is True
    page.wait(lambda v: v["keyed"]["nodes"]["a1"]["state"] == "UP", "a1 up again")


def test_a_drain_reason_too_long_is_refused_at_the_edge(page, http, cluster):
    answer = _control(page, http, "drain", reason="x" * 513)
    assert answer["ok"] is False and "512" in answer["message"]
    assert cluster.status()["state"] == "RUNNING"


def test_kill_a_queued_token(page, http, cluster):
    client = cluster.client()
    _control(page, http, "drain", reason="to queue one")
    try:
        token = client.submit_by_name("cluster_tasks:add", (5, 5))
        answer = wait_until(lambda: _kill_when_known(page, http, token.token_id), 10,
                            "the token stored")
        assert answer["ok"] is True and answer["outcome"] == "killed"
        with pytest.raises(TokenKilled):
            token.get(timeout=10)
    finally:
        _control(page, http, "resume")
    killed = page.wait(lambda v: v["panels"]["pool"]["killed"] >= 1, "the kill counted")
    assert killed["panels"]["pool"]["killed"] >= 1


def _kill_when_known(page, http, token_id):
    answer = _control(page, http, "kill", token_id=token_id)
    return answer if "UnknownToken" not in answer["message"] else None


def test_kill_an_unknown_token_is_an_answer_not_an_error(page, http):
    answer = _control(page, http, "kill", token_id="no-such-token")
    assert answer["ok"] is False and "UnknownToken" in answer["message"]


def test_launch_a_registered_task_by_name(page, http):
    answer = _control(page, http, "launch", task="cluster_tasks:add", args="[2, 3]", kwargs="")
    assert answer["ok"] is True
    token_id = answer["token_id"]
    wait_until(lambda: (page.pump(), _launched(page, token_id))[1], 15, "the outcome pushed")
    outcome = _launched(page, token_id)
    assert outcome["state"] == "completed" and "result" not in outcome  # payloads hidden
    view = page.wait(lambda v: any(e["action"] == "launch" for e in v["streams"]["audit"]),
                     "the launch in the audit log")
    entry = next(e for e in view["streams"]["audit"] if e["action"] == "launch")
    assert token_id in entry["target"] and entry["actor"].startswith("dashboard:tester@")


def _launched(page: PageView, token_id: str) -> dict | None:
    for message in page.events:
        if message["name"] == "launched" and message["args"][0]["token_id"] == token_id:
            return message["args"][0]
    return None


@pytest.mark.parametrize(("payload", "expected"), [
    ({"task": "cluster_tasks:add", "args": "[1,"}, "not valid JSON"),
    ({"task": "cluster_tasks:add", "args": "{\"a\": 1}"}, "JSON list"),
    ({"task": "cluster_tasks:add", "kwargs": "[1]"}, "JSON object"),
    ({"task": "no_colon"}, "module:function"),
    ({"task": "cluster_tasks:nope", "args": "[]"}, "UnknownTask"),
])
def test_launch_refuses_bad_input_clearly(page, http, payload, expected):
    answer = _control(page, http, "launch", **payload)
    assert answer["ok"] is False and expected in answer["message"]


def test_with_show_payloads_a_launch_shows_its_result(cluster):
    open_dashboard = make_dashboard(cluster, show_payloads=True)
    http = open_dashboard.app.test_client()
    login(http)
    page = PageView(open_page(open_dashboard, http))
    answer = _control(page, http, "launch", task="cluster_tasks:add", args=json.dumps([20, 22]))
    wait_until(lambda: (page.pump(), _launched(page, answer["token_id"]))[1], 15, "outcome")
    assert _launched(page, answer["token_id"])["result"] == "42"
    open_dashboard.source.close()


# -- what needs the gateway's new operator calls (Token, Guards, Reenable, Quarantine,
#    Audit, Series) -------------------------------------------------------------------


def test_token_detail_of_a_finished_token(page, http, cluster):
    client = cluster.client()
    token = client.submit_by_name("cluster_tasks:boom", ("detail please",))
    with pytest.raises(ValueError):
        token.get(timeout=15)
    answer = _control(page, http, "token", token_id=token.token_id)
    assert answer["ok"] is True, answer["message"]
    detail = answer["token"]
    assert detail["state"] == "failed" and detail["error_type"] == "ValueError"
    assert "detail please" in detail["error_message"] and detail["traceback"]
    assert detail["node"] in ("a1", "a2") and detail["attempt"] == 1
    assert [t["state"] for t in detail["times"]][-1] == "failed"
    record = detail["record"]  # where it ran, in the seed's history fields
    assert record["node"] == detail["node"] and record["attempt"] == 1
    assert record["success"] is False and record["core_id"] >= 1
    assert record["worker_id"] and 0 <= record["execution_time"] < 15
    assert detail["args_summary"] is None  # hidden unless --show-payloads


def _actor(http) -> str:
    """The audit log's name of this session, as its page shows it."""
    found = re.search(r'id="actor">([^<]+)<', http.get("/").get_data(as_text=True))
    assert found, "no actor on the page"
    return found.group(1)


def test_the_audit_log_shows_exactly_this_sessions_drain_and_resume(page, http):
    actor = _actor(http)
    since = time.time() - 0.001  # the entries of earlier tests are older (shown to the ms)
    assert _control(page, http, "drain", reason="audited") == {
        "ok": True, "message": "cluster draining: audited"}
    assert _control(page, http, "resume") == {"ok": True, "message": "cluster resumed"}

    def entries(view: dict) -> list[tuple]:
        return [(e["actor"], e["action"], e["target"], e["ok"], e["result"], e["source"])
                for e in view["streams"]["audit"] if e["at"] >= since]

    view = page.wait(lambda v: len(entries(v)) >= 2, "the audit entries of this test")
    assert entries(view) == [
        (actor, "drain", "cluster", True, "cluster draining: audited", "gateway"),
        (actor, "resume", "cluster", True, "cluster resumed", "gateway")]


def test_throughput_chart_points_arrive(page, cluster):
    client = cluster.client()
    tokens = [client.submit_by_name("cluster_tasks:add", (i, i)) for i in range(200)]
    [t.get(timeout=20) for t in tokens]
    view = page.wait(lambda v: sum(p["completed"] for p in v["streams"]["series"]) >= 200,
                     "the series counted them")
    assert view["panels"]["sources"]["series"] == ""


def test_reenable_a_blocked_function(page, http, cluster):
    client = cluster.client()
    for _ in range(12):
        token = client.submit_by_name("cluster_tasks:boom", ("again",))
        token.wait(15)
    view = page.wait(lambda v: v["keyed"]["functions"].get("cluster_tasks:boom", {})
                     .get("blocked"), "boom blocked cluster-wide", timeout=20)
    assert view["panels"]["guard_house"]["mode"] == "auto-block"
    assert view["panels"]["guard_house"]["blocked"] == ["cluster_tasks:boom"]
    assert view["panels"]["sources"]["guards"] == ""
    answer = _control(page, http, "reenable", function="cluster_tasks:boom")
    assert answer["ok"] is True, answer["message"]
    page.wait(lambda v: not v["keyed"]["functions"].get("cluster_tasks:boom", {})
              .get("blocked"), "boom re-enabled cluster-wide")


def test_replay_a_quarantined_call(page, http, cluster):
    client = cluster.client()
    for i in range(12):  # warm the spike detector on both nodes
        client.submit_by_name("cluster_tasks:add", (i, 1)).get(timeout=15)
    spiky = [client.submit_by_name("cluster_tasks:add", (10**15, 1)) for _ in range(2)]
    for token in spiky:
        with pytest.raises(TokenQuarantined):
            token.get(timeout=15)
    view = page.wait(lambda v: v["keyed"]["quarantine"], "a quarantined call listed")
    qid, row = next(iter(view["keyed"]["quarantine"].items()))
    assert row["task"] == "cluster_tasks:add" and row["args"] is None
    answer = _control(page, http, "quarantine", id=qid, node=row["node"], action="replay")
    assert answer["ok"] is True, answer["message"]
    page.wait(lambda v: qid not in v["keyed"]["quarantine"], "the replayed call gone")
