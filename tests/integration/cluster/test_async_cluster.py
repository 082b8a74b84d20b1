"""Await tokens and submit from coroutines through the cluster: the event loop never waits."""

import asyncio
import time

import pytest
from async_tasks import nap, refuse
from tokengate.shared.errors import GatewayUnavailable
from tokengate.shared.lifecycle import TokenState

from benchmarks.loop_lag import measure, responsive

# One agent of four light workers; a client window of 64 and a gateway that holds at most 20
# waiting tokens, so the window fills (acks wait; GatewayBusy keeps slots for 0.1 s).
AGENT = ("--include", "async_tasks", "--workers-per-core", "4", "--mailbox-capacity", "20")
GATEWAY = ("--max-pending", "20")


@pytest.fixture
def cluster(make_cluster):
    return make_cluster(("a1",), agent_options=AGENT, gateway_options=GATEWAY)


def test_loop_keeps_ticking_while_10000_tokens_go_through_the_cluster(cluster):
    client = cluster.client(install=True, window=64)
    _, baseline, _ = asyncio.run(measure(nap, 4_000, "executor"))  # the noise of this run
    parked_before = client.parking.parked_total
    results, ticker, _ = asyncio.run(measure(nap, 10_000, "async"))
    assert results == list(range(10_000))
    assert client.parking.parked_total - parked_before > 1000  # the window was full, often
    summary = ticker.summary()
    assert responsive(summary, baseline.summary()), (summary, baseline.summary())


def test_await_of_a_failed_cluster_token_raises_its_exception(cluster):
    cluster.client(install=True, window=4)

    async def main():
        token = await refuse.submit_async(7)
        with pytest.raises(ValueError, match="refused 7"):
            await token
        return token, await asyncio.gather(*(nap(i) for i in range(50)), refuse(8),
                                           return_exceptions=True)

    token, outcomes = asyncio.run(main())
    assert token.error_type == "ValueError"
    assert outcomes[:50] == list(range(50)) and isinstance(outcomes[50], ValueError)


def test_close_fails_the_calls_still_parked(cluster):
    client = cluster.client(install=True, window=1)

    async def main():
        began = time.perf_counter()
        tokens = [nap(i) for i in range(500)]  # one slot: nearly all wait, parked
        returned = time.perf_counter() - began
        client.close()
        return returned, await asyncio.gather(*tokens, return_exceptions=True)

    returned, outcomes = asyncio.run(main())
    assert returned < 2.0
    unsent = [o for o in outcomes if isinstance(o, GatewayUnavailable) and "sent" in str(o)]
    assert len(unsent) > 100
    assert all(isinstance(o, (int, GatewayUnavailable)) for o in outcomes)


def test_keyed_calls_parked_by_a_loop_are_one_call_and_cancel_withdraws(cluster):
    client = cluster.client(install=True, window=1)

    async def main():
        tokens = [nap(i) for i in range(50)]  # one slot: most wait, parked
        first = nap.options(key="async-key-1")(7)
        again = nap.options(key="async-key-1")(7)  # its twin is parked: the same token
        doomed = nap(99)
        cancelled = doomed.cancel()  # still parked: withdrawn, killed, never sent
        results = await asyncio.gather(*tokens)
        return first, again, cancelled, doomed, await first, results

    first, again, cancelled, doomed, value, results = asyncio.run(main())
    assert again is first and value == 7 and results == list(range(50))
    assert cancelled and doomed.state is TokenState.KILLED
    assert client.parking.find(doomed.token_id) is None
