"""Gateway behaviours test_gateway.py shows through its outboxes, end to end: real gateway and
agent processes on a real redis-server (a drain surviving a gateway restart is in
test_promises.py)."""

from __future__ import annotations

import signal

from conftest import Cluster, wait_until
from faultkit import call


def test_a_live_agents_name_is_refused_to_another_process(make_cluster):
    cluster: Cluster = make_cluster(agents=("a1",))
    first_pid = cluster.agents["a1"].pid
    impostor = cluster._spawn("impostor", [*cluster.agents["a1"].args])  # same name, new process
    try:
        wait_until(lambda: "refused the name a1" in cluster.log("impostor"), timeout=20,
                   what="the second a1 refused")
        (node,) = cluster.status()["nodes"]
        assert node["name"] == "a1" and node["pid"] == first_pid and node["state"] == "UP"
        assert impostor.poll() is None, "refused, it keeps trying (it may be a restart)"
    finally:
        cluster.kill(impostor, signal.SIGKILL)


def test_a_resubmitted_id_is_answered_from_redis_not_run_again(make_cluster, effects):
    cluster: Cluster = make_cluster()
    first = cluster.raw_session("client-7")
    first.submit([call("once", "cluster_tasks:record", str(effects), "once")])
    first.wait_results(["once"])
    assert effects.count("once") == 1
    first.close()
    # The same client, a new session, the same id again (a resend after a reconnect).
    second = cluster.raw_session("client-7")
    second.submit([call("once", "cluster_tasks:record", str(effects), "once")],
                  resubmit=True)
    second.wait_results(["once"])
    assert [r.state for r in second.outcomes()["once"]] == [1], "its stored outcome, once"
    assert second.accepted["once"] == 1
    assert effects.count("once") == 1, "it ran once in all"
    assert cluster.status()["counts"]["submitted"] == 1
