"""Fair shares between clients (docs/cluster.md, Fair shares): a flood from one client does
not stand in front of another's calls, a quota caps a client's tokens in flight, and held
calls are neither lost nor run twice; real gateway, agents and Redis."""

from __future__ import annotations

import pytest
from conftest import wait_until
from faultkit import call
from tokengate.shared import wire

FLOOD = 2000
TASK = "cluster_tasks:record_light"


@pytest.mark.parametrize(("depth", "fair"), [(32, True), (0, False)], ids=["fair", "off"])
def test_a_second_client_is_served_while_another_floods(make_cluster, effects, depth, fair):
    # small mailboxes: the flood waits in Redis (first come, first served), not on the agent
    cluster = make_cluster(agents=("a1",), gateway_options=("--fair-depth", str(depth)),
                           agent_options=("--mailbox-capacity", "20"))
    flooder = cluster.client(client_id="flooder")
    other = cluster.client(client_id="other")
    flood = [flooder.submit_by_name(TASK, (str(effects), f"a{i}", 0.001)) for i in range(FLOOD)]
    wait_until(lambda: sum(t.done() for t in flood) >= 20, what="the flood under way")
    mine = [other.submit_by_name(TASK, (str(effects), f"b{i}")) for i in range(10)]
    assert [t.get(timeout=60) for t in mine] == [f"b{i}" for i in range(10)]
    flood_done = sum(t.done() for t in flood)
    if fair:  # same task, same queue: only the gate put the second client's calls first
        assert flood_done < FLOOD // 2, f"{flood_done} of the flood ran first"
    else:  # the baseline, first come first served: behind (almost) all of the flood
        assert flood_done > FLOOD * 9 // 10, f"only {flood_done} of the flood ran first"
    assert [t.get(timeout=60) for t in flood] == [f"a{i}" for i in range(FLOOD)]
    counts = effects.counts()
    assert len(counts) == FLOOD + 10 and set(counts.values()) == {1}, "each ran exactly once"


def test_a_quota_caps_a_client_and_a_held_call_can_be_killed(make_cluster, effects, gates):
    cluster = make_cluster(agents=("a1",), gateway_options=("--client-quota", "4"))
    gate = gates("quota")
    session = cluster.raw_session(client_id="capped")
    ids = [f"q{i}" for i in range(12)]
    # heavy: they hold core 1's workers, and the other client's light call runs on core 2
    session.submit(call(i, "cluster_tasks:gated_heavy", str(effects), i, str(gate))
                   for i in ids)
    session.wait(lambda: len(session.accepted) == 4, 30, "four acks")
    wait_until(lambda: len(effects.counts()) == 4, what="four calls running")
    stored = {i for i, state in cluster.redis.states(ids).items() if state is not None}
    assert stored == set(session.accepted) == set(ids[:4]), "only the quota is stored"

    other = cluster.client(client_id="free")  # another client is not held by that quota
    assert other.submit_by_name("cluster_tasks:add", (1, 2)).get(timeout=30) == 3
    assert other.kill("q11").outcome == "killed"
    session.wait(lambda: "q11" in session.rejected, 15, "the killed call's answer")
    assert session.rejected["q11"][0].error_type == wire.TOKEN_KILLED
    assert len(session.accepted) == 4 and len(effects.counts()) == 4, "still capped"

    gate.open()
    session.wait_results(ids[:11], timeout=60)
    assert {i: session.state(i) for i in ids[:11]} == dict.fromkeys(ids[:11], "completed")
    assert effects.counts() == dict.fromkeys(ids[:11], 1), "each ran once; the killed one never"
    assert cluster.redis.state("q11") is None, "the killed call was never stored"
