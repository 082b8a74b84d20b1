"""The gateway goes away and comes back: the page says so, then shows the cluster again."""

from __future__ import annotations

import signal

from conftest import PageView, login, make_dashboard, open_page, start_cluster


def test_a_lost_gateway_is_shown_and_the_view_comes_back(redis_url, tmp_path):
    cluster = start_cluster(redis_url, tmp_path, agents=("a1",))
    dashboard = make_dashboard(cluster)
    dashboard.poller.start()
    try:
        http = dashboard.app.test_client()
        login(http)
        page = PageView(open_page(dashboard, http))
        page.wait(lambda v: v["panels"]["gateway"]["ok"] and v["keyed"]["nodes"], "live")
        cluster.kill(cluster.gateway, signal.SIGKILL)
        view = page.wait(lambda v: not v["panels"]["gateway"]["ok"], "gateway lost shown",
                         timeout=30)
        assert "GatewayUnavailable" in view["panels"]["gateway"]["error"]
        assert "a1" in view["keyed"]["nodes"]  # the last known cluster stays on the page
        cluster.start_gateway()
        page.wait(lambda v: v["panels"]["gateway"]["ok"]
                  and v["keyed"]["nodes"].get("a1", {}).get("state") == "UP",
                  "the cluster back", timeout=40)
    finally:
        dashboard.poller.stop()
        dashboard.source.close()
        cluster.stop()
