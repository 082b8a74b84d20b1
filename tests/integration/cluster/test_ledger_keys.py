"""Idempotency keys in the ledger: submit.lua on a real redis-server (the ``ledger`` fixture
of test_ledger)."""

from __future__ import annotations

import dataclasses
import time

from test_ledger import LOST, ledger, outcome, register, tok  # noqa: F401 - the fixture
from tokengate.gateway.ledger import KillOutcome, SubmitStatus
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import Weight


def keyed(token_id: str, digest: str, agent: str = "", session: str = "s1",
          owner: str = "c1"):
    return dataclasses.replace(tok(token_id, agent, session=session), key=digest, owner=owner)


def test_a_key_again_is_the_same_token_and_another_call_a_conflict(ledger):  # noqa: F811
    assert ledger.submit([keyed("key-1", "d1")]) == [SubmitStatus.QUEUED]
    assert ledger.submit([keyed("key-1", "d1", session="s2", owner="c2")]) == \
        [SubmitStatus.DUPLICATE], "another client, same key and call: the stored token"
    assert ledger.submit([keyed("key-1", "d2", session="s2")]) == [SubmitStatus.CONFLICT]
    assert ledger.submit([keyed("key-1", "d1")]) == [SubmitStatus.QUEUED], \
        "a run of the same session again (lost reply) is answered as the first"
    assert ledger.submit([tok("plain")]) == [SubmitStatus.QUEUED]
    assert ledger.submit([keyed("plain", "d1", session="s2")]) == [SubmitStatus.CONFLICT], \
        "an id stored without a key is not a keyed call's"
    assert ledger.submit([tok("key-1", session="s2")]) == [SubmitStatus.DUPLICATE]
    assert ledger.counts()["submitted"] == 2
    assert ledger.records(["key-1"])[0].owner == "c1", "nothing of the repeats was written"


def test_a_keyed_result_is_kept_whatever_its_client_received(ledger):  # noqa: F811
    register(ledger, "a1")
    ledger.submit([keyed("key-2", "d", "a1"), tok("plain", "a1")])
    ledger.complete("a1", [outcome("key-2"), outcome("plain")])
    assert ledger.forget(["key-2", "plain"], "c1") == 1
    record = ledger.records(["key-2"])[0]
    assert record is not None and record.state is TokenState.COMPLETED
    assert ledger.records(["plain"]) == [None]
    # kept for the key TTL, longer than the result's
    assert ledger.key_ttl - 5 < ledger.redis.ttl(ledger.key("t:", "key-2")) <= ledger.key_ttl


def test_every_final_path_keeps_a_keyed_token_for_its_key_ttl(ledger):  # noqa: F811
    register(ledger, "a1")
    ledger.submit([keyed("key-k", "d"), keyed("key-l", "d", "a1"), keyed("key-e", "d")])
    assert ledger.kill("key-k", "no")[0] is KillOutcome.KILLED
    lost = ledger.lose("a1", dataclasses.replace(LOST, max_attempts=1))
    assert [t.token_id for t in lost.failed] == ["key-l"]
    assert [t.token_id for t in ledger.expire(Weight.LIGHT, time.time() + 1, "late")] == \
        ["key-e"]
    for token_id in ("key-k", "key-l", "key-e"):
        assert ledger.redis.ttl(ledger.key("t:", token_id)) > LOST.ttl
