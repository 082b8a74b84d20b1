"""The ledger's queues per weight and need, and placement expiry, on a real redis-server:
tokens wait in the queue admission names, claims take only that queue, requeues return to
it, and ``expire`` fails only what waited past the cutoff."""

from __future__ import annotations

import time

import pytest
from test_ledger import LOST, leased_ledger, register, state, tok
from tokengate.gateway.ledger import TokenRecord
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import Weight

GPU = "light|m:f|gpu=a100"
PLAIN = "light|m:g|"
BUDGET = 1 << 20


@pytest.fixture
def ledger(redis_url):
    ledger = leased_ledger(redis_url, "tg-needs")
    yield ledger
    ledger.close()


def queued(token_id: str, queue: str, **kw):
    t = tok(token_id, **kw)
    t.queue = queue
    return t


def test_tokens_wait_in_their_queue_and_claims_take_only_it(ledger):
    register(ledger, "a1")
    ledger.submit([queued("g1", GPU), queued("p1", PLAIN), queued("g2", GPU)])
    assert ledger.queues()[GPU] == 2 and ledger.queues()[PLAIN] == 1
    assert ledger.queue_lengths()[Weight.LIGHT] == 3, "per weight: summed over its queues"
    claimed = ledger.claim(GPU, 5, "a1", BUDGET)
    assert [c.token_id for c in claimed] == ["g1", "g2"]
    assert GPU not in ledger.queues(), "an emptied queue is no longer listed"
    record: TokenRecord = ledger.records(["p1"])[0]
    assert record.weight == "light" and record.queue == PLAIN and record.task == "m:f"


def test_a_requeued_token_goes_back_to_its_own_queue(ledger):
    register(ledger, "a1")
    ledger.submit([queued("g1", GPU)])
    ledger.claim(GPU, 1, "a1", BUDGET)
    back = ledger.give_back("a1", ["g1"], LOST)
    assert back.requeued == {GPU: 1} and ledger.queues()[GPU] == 1
    assert [c.token_id for c in ledger.claim(GPU, 1, "a1", BUDGET)] == ["g1"]


def test_expire_fails_only_tokens_created_before_the_cutoff_and_keeps_the_order(ledger):
    ledger.submit([queued("old1", GPU), queued("old2", GPU)])
    cutoff = time.time()
    time.sleep(0.01)
    ledger.submit([queued("new1", GPU), queued("new2", GPU)])
    failed = ledger.expire(GPU, cutoff, "no agent has gpu=a100")
    assert sorted(t.token_id for t in failed) == ["old1", "old2"]
    assert all(t.session == "s1" and t.attempt == 1 for t in failed)
    record = ledger.records(["old1"])[0]
    assert record.state is TokenState.FAILED and record.error_type == "PlacementTimeout"
    assert record.error_message == "no agent has gpu=a100"
    assert state(ledger, "new1") is TokenState.WAITING
    assert ledger.counts()["failed"] == 2
    register(ledger, "a1")
    assert [c.token_id for c in ledger.claim(GPU, 5, "a1", BUDGET)] == ["new1", "new2"]
    assert ledger.expire(GPU, time.time(), "x") == [], "an empty queue: nothing to fail"
