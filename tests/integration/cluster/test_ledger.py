"""The ledger's contract, batch by batch: the Lua scripts on a real redis-server, and the
in-memory ledger that mirrors them (the same tests run against both)."""

from __future__ import annotations

import uuid

import pytest
from tokengate.gateway.ledger import DISPATCHED, DUPLICATE, QUEUED, RedisLedger
from tokengate.gateway.memory_ledger import MemoryLedger
from tokengate.shared.errors import RedisUnavailable
from tokengate.shared.redis_server import RedisServer, free_port


@pytest.fixture(params=["redis", "memory"])
def ledger(request, redis_url):
    if request.param == "memory":
        return MemoryLedger(result_ttl=60)
    return RedisLedger.from_url(redis_url, prefix=f"tg-ledger-{uuid.uuid4().hex[:6]}:",
                                result_ttl=60)


def test_submit_stores_dispatches_queues_and_ignores_duplicates(ledger):
    rows = [("t1", "light", 1, b"item1", "a1", "s"), ("t2", "light", 1, b"item2", "", "s"),
            ("t3", "heavy", 0, b"item3", "", "s")]
    assert ledger.submit(rows) == [DISPATCHED, QUEUED, QUEUED]
    assert ledger.submit([("t2", "light", 1, b"other", "", "s")]) == [DUPLICATE]
    assert ledger.queue_lengths(["light", "heavy", "medium"]) == {"light": 1, "heavy": 1,
                                                                   "medium": 0}
    assert ledger.inflight_ids("a1") == {"t1"}
    assert ledger.counts()["submitted"] == 3
    finish = ledger.submit_begin([("t4", "medium", 1, b"item4", "a2", "s")])
    assert finish() == [DISPATCHED]


def test_claim_takes_waiting_tokens_in_order_and_skips_killed(ledger):
    ledger.submit([(f"t{i}", "medium", 1, f"item{i}".encode(), "", "s") for i in range(5)])
    assert ledger.kill("t1", "killed") == ("killed", "")
    claimed = ledger.claim("medium", 3, "a1")
    assert claimed == [("t0", 1, b"item0"), ("t2", 1, b"item2"), ("t3", 1, b"item3")]
    assert ledger.kill("t0", "x") == ("forwarded", "a1")
    assert ledger.kill("nope", "x") == ("unknown", "")
    ledger.submit([("t5", "medium", 1, b"item5", "", "s")])
    assert [c[0] for c in ledger.claim("medium", 10, "a2", budget=1)] == ["t4"]
    assert [c[0] for c in ledger.claim("medium", 10, "a2")] == ["t5"]
    assert ledger.claim("medium", 10, "a2") == []


def test_complete_first_final_outcome_wins(ledger):
    ledger.submit([("t1", "light", 1, b"i", "a1", "s")])
    assert ledger.complete([("t1", "completed", b"r1")]) == [1]
    assert ledger.complete([("t1", "failed", b"r2"), ("ghost", "completed", b"")]) == [0, 0]
    record = ledger.token_records(["t1"])[0]
    assert record["s"] == b"completed" and record["r"] == b"r1" and "d" not in record
    assert ledger.inflight_ids("a1") == set()
    assert ledger.kill("t1", "x") == ("finished", "")
    if isinstance(ledger, RedisLedger):
        assert ledger.redis.ttl(ledger.key("t:", "t1")) > 0


def test_requeue_gives_attempt_plus_one_or_agent_lost(ledger):
    ledger.submit([("idem", "heavy", 1, b"a", "a1", "s"), ("once", "heavy", 0, b"b", "a1", "s")])
    lost, requeued = ledger.requeue("a1", 3, "a1 lost")
    assert lost == [("once", 1)] and requeued == {"heavy": 1}
    claimed = ledger.claim("heavy", 5, "a2")
    assert [(i, a) for i, a, _ in claimed] == [("idem", 2)]
    lost, _ = ledger.requeue("a2", 2, "a2 lost")
    assert lost == [("idem", 2)], "attempts ran out"
    counts = ledger.counts()
    assert (counts["requeued"], counts["lost"], counts["failed"]) == (1, 2, 2)


def test_requeue_in_transit_keeps_attempt_and_idempotency(ledger):
    ledger.submit([("once", "light", 0, b"b", "a1", "s")])
    lost, requeued = ledger.requeue("a1", 1, "x", ["once"], transit=True)
    assert lost == [] and requeued == {"light": 1}
    assert ledger.claim("light", 1, "a1")[0][:2] == ("once", 1)


def test_agents_and_drain_flags(ledger):
    ledger.register_agent("a1", {"host": "h"})
    assert ledger.agents() == {"a1": {"host": "h"}} and "a1" in ledger.last_seen()
    ledger.set_drain("", "maint")
    ledger.set_drain("a1", "disk")
    assert ledger.drain_state() == ("maint", {"a1": "disk"})
    ledger.clear_drain("")
    ledger.clear_drain("a1")
    ledger.forget_agent("a1")
    assert ledger.drain_state() == (None, {}) and ledger.agents() == {}


def test_unreachable_redis_is_redis_unavailable():
    ledger = RedisLedger.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisUnavailable):
        ledger.ping()
    with pytest.raises(RedisUnavailable):
        ledger.submit([("t", "light", 1, b"", "", "s")])


def test_password_protected_redis():
    with RedisServer(password="pw-123") as server:
        assert RedisLedger.from_url(server.url).ping()
        with pytest.raises(RedisUnavailable, match="password"):
            RedisLedger.from_url(server.url.replace("pw-123", "wrong")).ping()


def test_forget_drops_received_results_in_either_order(ledger):
    ledger.submit([("done", "light", 1, b"i", "a1", "s"), ("early", "light", 1, b"i", "a1", "s")])
    ledger.complete([("done", "completed", b"r")])
    assert ledger.forget(["done", "early", "ghost"]) == 1
    assert ledger.token_records(["done"]) == [{}]
    assert ledger.complete([("early", "completed", b"r")]) == [1], "counted, then dropped"
    assert ledger.token_records(["early"]) == [{}] and ledger.inflight_ids("a1") == set()
    assert ledger.counts()["completed"] == 2
