"""Chains through the cluster, and nested tasks on an agent, with real processes."""

from __future__ import annotations

import time

import chain_tasks
import pytest
from conftest import wait_until

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
