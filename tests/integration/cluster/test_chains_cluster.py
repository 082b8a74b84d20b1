"""Chains through the cluster, and nested tasks on an agent, with real processes."""

from __future__ import annotations

import time

import chain_tasks
import pytest
from conftest import wait_until
from tokengate.shared.registry import spec_of

from tokengate import chain

CHAINS, STEPS = 30, 4
DEADLINE = 20.0  # seconds for every chain; a stalled client never finishes


@pytest.fixture(scope="module")
def chain_cluster(redis_url, tmp_path_factory):
    from conftest import Cluster
    cluster = Cluster(redis_url, tmp_path_factory.mktemp("chains"),
                      agent_options=("--include", "chain_tasks"))
    cluster.start_gateway()
    cluster.start_agent("c1")
    yield cluster
    cluster.stop()


def test_many_long_chains_finish_with_a_small_window(chain_cluster):
    """Each next step is submitted from the client's session thread (it resolves tokens);
    with a window of 8 and 30 chains that thread must never wait for a window slot only it
    can free by reading acks."""
    chain_cluster.client(install=True, window=8, submit_timeout=DEADLINE)
    pipeline = chain(*[chain_tasks.step] * STEPS)
    started = time.monotonic()
    handles = [pipeline(i * 100) for i in range(CHAINS)]
    deadline = started + DEADLINE
    results = [h.get(timeout=max(0.1, deadline - time.monotonic())) for h in handles]
    assert results == [i * 100 + STEPS for i in range(CHAINS)]
    assert all(len(h.tokens) == STEPS for h in handles)
    assert {t.node for h in handles for t in h.tokens} == {"c1"}, "every step ran on the agent"


def test_nested_tasks_run_on_the_agent_and_show_on_its_node_card(chain_cluster):
    """A task's own calls run on its agent's scheduler, outside the gateway's ledger (the
    cluster counts one submission), and the agent's snapshot counts them for the node card."""
    from tokengate.dashboard import model

    client = chain_cluster.client()
    before = chain_cluster.status()["counts"]["submitted"]
    token = client.submit(spec_of(chain_tasks.parent), (3,), {})
    assert token.get(timeout=20) == 0 + 2 + 4 and token.node == "c1"
    assert chain_cluster.status()["counts"]["submitted"] == before + 1, "children not in ledger"

    def card() -> dict | None:
        node = next(n for n in chain_cluster.status()["nodes"] if n["name"] == "c1")
        shown = model.node_card(node, time.time())
        return shown if shown["nested"]["completed"] == 3 else None

    shown = wait_until(card, 15, "the node card to count 3 nested tasks")
    assert shown["nested"] == {"submitted": 3, "active": 0, "completed": 3, "failed": 0,
                               "killed": 0}

    def child_record() -> list:
        return [f for f in client.guards().functions if "child" in f.name and f.successes == 3]

    wait_until(child_record, 15, "the agent's Guard House to record the 3 children")
