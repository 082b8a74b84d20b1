"""The ledger's contract, step by step: the Lua scripts on a real redis-server (the one
implementation; there is no in-memory twin), and a table test that checks that every step
moves tokens only along gateway/ledger/transitions.py."""

from __future__ import annotations

import hashlib
import uuid

import msgpack
import pytest
from conftest import wait_until
from faultkit import DurableRedis
from tokengate.gateway.ledger import (
    AuditEntry,
    KillOutcome,
    LossPolicy,
    NewToken,
    Outcome,
    RedisLedger,
    StartReport,
    SubmitStatus,
    TaskRule,
)
from tokengate.gateway.ledger.redis_ledger import script_text
from tokengate.gateway.ledger.transitions import BY_SCRIPT, STEPS, allowed, lifecycle_consistent
from tokengate.shared.errors import Fenced, RedisUnavailable
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.redis_server import RedisServer, free_port
from tokengate.shared.tags import Weight

S = TokenState
LIGHT, HEAVY = Weight.LIGHT, Weight.HEAVY
LOST = LossPolicy(max_attempts=3, message="agent gone", ttl=60)


@pytest.fixture
def ledger(redis_url):
    """A ledger holding the epoch of a shard of its own on the session's redis-server."""
    ledger = leased_ledger(redis_url, "tg-ledger")
    yield ledger
    ledger.close()


def leased_ledger(redis_url: str, name: str, **options) -> RedisLedger:
    """A RedisLedger on a fresh prefix whose epoch it holds (scripts run only for the
    holder), as a gateway's lease would leave it."""
    ledger = RedisLedger.from_url(redis_url, prefix=f"{name}-{uuid.uuid4().hex[:6]}:{{0}}:",
                                  result_ttl=60, **options)
    assert ledger.lease("acquire", _record("holder"), 60) == (True, b"")  # the epoch
    return ledger


def _record(name: str) -> bytes:
    """A lease record as a gateway makes it (lease.lua reads its id)."""
    return msgpack.packb({"id": name, "host": "h", "pid": 1})


def tok(token_id: str, agent: str = "", weight: Weight = LIGHT, idempotent: bool = True,
        task: str = "m:f", session: str = "s1") -> NewToken:
    return NewToken(token_id, task, weight, idempotent, f"item-{token_id}".encode(), agent, "c1",
                    session)


def register(ledger, *agents: str, rules: tuple[TaskRule, ...] = ()) -> None:
    for agent in agents:
        ledger.join(agent, f"{agent}-inc", [], {"host": "h"}, list(rules), LOST)


def state(ledger, token_id: str) -> TokenState | None:
    record = ledger.records([token_id])[0]
    return None if record is None else record.state


def outcome(token_id: str, attempt: int = 1, st: TokenState = S.COMPLETED) -> Outcome:
    return Outcome(token_id, st, attempt, b"result")


def test_the_state_table_is_the_lifecycles():
    assert all(lifecycle_consistent(step) for step in STEPS)


def test_submit_admits_queues_and_ignores_repeats(ledger):
    register(ledger, "a1")
    statuses = ledger.submit([tok("t1", "a1"), tok("t2"), tok("t3", weight=HEAVY),
                              tok("t1", "a1"), tok("t4", "unregistered")])
    assert statuses == [SubmitStatus.DISPATCHED, SubmitStatus.QUEUED, SubmitStatus.QUEUED,
                        SubmitStatus.DUPLICATE, SubmitStatus.QUEUED]
    assert ledger.submit([tok("t2", session="s2")]) == [SubmitStatus.DUPLICATE]
    assert ledger.queue_lengths() == {Weight.HEAVY: 1, Weight.MEDIUM: 0, Weight.LIGHT: 2}
    assert ledger.inflight_ids("a1") == {"t1"} and ledger.counts()["submitted"] == 4
    record = ledger.records(["t1"])[0]
    assert (record.state, record.agent, record.owner, record.session, record.task) == (
        S.ADMITTED, "a1", "c1", "s1", "m:f")
    assert ledger.submit_begin([tok("t5", "a1")])() == [SubmitStatus.DISPATCHED]


def test_submit_run_again_answers_as_its_first_run_did(ledger):
    """A submission whose reply was lost is run again: what that session stored, still where
    it was put, is answered as then (so the gateway still sends it to its agent); the same id
    placed elsewhere, or from another session, or taken on since, is a duplicate."""
    register(ledger, "a1", "a2")
    batch = [tok("t1", "a1"), tok("t2"), tok("t3", "a2")]
    first = ledger.submit(batch)
    ledger.start("a2", [StartReport("t3", 1, 1.0)])  # t3 began: not where it was put
    assert ledger.submit(batch) == [*first[:2], SubmitStatus.DUPLICATE]
    assert ledger.submit([tok("t1", "a2")]) == [SubmitStatus.DUPLICATE]
    assert ledger.submit([tok("t1", "a1", session="s2")]) == [SubmitStatus.DUPLICATE]
    assert ledger.counts()["submitted"] == 3
    assert ledger.inflight_ids("a1") == {"t1"} and ledger.queue_lengths()[LIGHT] == 1


def test_a_large_batch_is_stored_whole(ledger):
    register(ledger, "a1")
    batch = [tok(f"b{i}", "a1" if i % 2 else "") for i in range(20_000)]
    statuses = ledger.submit(batch)
    assert statuses.count(SubmitStatus.DISPATCHED) == 10_000
    assert statuses.count(SubmitStatus.QUEUED) == 10_000
    assert len(ledger.inflight_ids("a1")) == 10_000
    assert ledger.queue_lengths()[LIGHT] == 10_000


def test_a_cancelled_run_is_stored_killed_once_and_a_run_that_finished_first_stays(ledger):
    """Cancel: the agent reports KILLED for a run that stopped after a cancel (EXECUTING, or
    ADMITTED when its start was not reported yet); a cancel that came after the run ended
    leaves the outcome the agent reported, and a late KILLED of that run changes nothing."""
    register(ledger, "a1")
    ledger.submit([tok("run", "a1"), tok("quick", "a1"), tok("done", "a1")])
    assert ledger.start("a1", [StartReport("run", 1, 5.0)]) == 1
    assert ledger.kill("run", "k") == (KillOutcome.FORWARDED, "a1"), "held: forwarded"
    killed = ledger.complete("a1", [outcome("run", st=S.KILLED), outcome("quick", st=S.KILLED)])
    assert [a.applied for a in killed] == [True, True]
    assert state(ledger, "run") is S.KILLED and state(ledger, "quick") is S.KILLED
    assert ledger.counts()["killed"] == 2 and ledger.executing_counts([])[0] == 0
    again = ledger.complete("a1", [outcome("run", st=S.KILLED)])
    assert [(a.applied, a.again) for a in again] == [(False, True)], "a resent report"
    assert ledger.complete("a1", [outcome("done")])[0].applied
    late = ledger.complete("a1", [outcome("done", st=S.KILLED)])
    assert [(a.applied, a.again) for a in late] == [(False, False)]
    assert state(ledger, "done") is S.COMPLETED and ledger.inflight_ids("a1") == set()


def test_claim_takes_waiting_tokens_in_order_for_registered_agents_only(ledger):
    register(ledger, "a1", "a2")
    ledger.submit([tok(f"t{i}", weight=Weight.MEDIUM) for i in range(5)])
    assert ledger.kill("t1", "killed") == (KillOutcome.KILLED, "")
    claimed = ledger.claim(Weight.MEDIUM, 3, "a1", 1 << 20)
    assert [(c.token_id, c.attempt, c.item) for c in claimed] == [
        ("t0", 1, b"item-t0"), ("t2", 1, b"item-t2"), ("t3", 1, b"item-t3")]
    assert ledger.claim(Weight.MEDIUM, 9, "ghost", 1 << 20) == [], "not registered"
    assert [c.token_id for c in ledger.claim(Weight.MEDIUM, 10, "a2", 1)] == ["t4"], "budget"
    assert ledger.claim(Weight.MEDIUM, 10, "a2", 1 << 20) == []


def test_reports_are_fenced_by_agent_and_attempt(ledger):
    register(ledger, "a1", "a2")
    ledger.submit([tok("t1", "a1"), tok("t2", "a1")])
    assert ledger.start("a2", [StartReport("t1", 1, 5.0)]) == 0, "not its token"
    assert ledger.start("a1", [StartReport("t1", 2, 5.0)]) == 0, "not this attempt"
    assert ledger.start("a1", [StartReport("t1", 1, 5.0)]) == 1
    assert ledger.executing_counts(["a1", "a2"]) == (1, {"a1": 1, "a2": 0})
    assert ledger.executing_counts([]) == (1, {}) and state(ledger, "t1") is S.EXECUTING
    applied = ledger.complete("a1", [outcome("t1"), outcome("t1"), outcome("t2", 7),
                                     outcome("ghost")])
    assert [a.applied for a in applied] == [True, False, False, False]
    assert [a.again for a in applied] == [False, True, False, False], \
        "a report this agent made before is told apart from a stale one"
    assert applied[0].created > 0
    assert [a.stored for a in ledger.complete("a2", [outcome("t1")])] == [False]
    record = ledger.records(["t1"])[0]
    assert record.state is S.COMPLETED and record.result == b"result" and not record.item
    assert ledger.inflight_ids("a1") == {"t2"} and ledger.executing_counts([])[0] == 0
    assert ledger.counts()["completed"] == 1
    assert 0 < ledger.redis.ttl(ledger.key("t:", "t1")) <= 60


def test_loss_requeues_with_attempt_plus_one_or_fails_what_may_not_run_again(ledger):
    register(ledger, "a1", "a2", rules=(TaskRule("m:never", False),))
    ledger.submit([tok("idem", "a1", HEAVY), tok("once", "a1", HEAVY, idempotent=False),
                   tok("rule", "a1", HEAVY, task="m:never")])
    ledger.start("a1", [StartReport("idem", 1, 1.0)])
    back = ledger.lose("a1", LOST)
    assert sorted((t.token_id, t.attempt, t.session) for t in back.failed) == [
        ("once", 1, "s1"), ("rule", 1, "s1")], "the client's flag or the task's rule"
    assert back.requeued == {HEAVY: 1} and ledger.executing_counts([])[0] == 0
    assert "a1" not in ledger.agents() and ledger.claim(HEAVY, 5, "a1", 1 << 20) == []
    assert ledger.records(["once"])[0].error_type == "AgentLost"
    assert [(c.token_id, c.attempt) for c in ledger.claim(HEAVY, 5, "a2", 1 << 20)] == [
        ("idem", 2)]
    assert ledger.complete("a1", [outcome("idem", 1)])[0].applied is False, "a1 is fenced out"
    back = ledger.lose("a2", LossPolicy(max_attempts=2, message="x", ttl=60))
    assert [t.token_id for t in back.failed] == ["idem"], "attempts ran out"
    counts = ledger.counts()
    assert (counts["requeued"], counts["lost"], counts["failed"]) == (1, 3, 3)


def test_giving_back_what_never_arrived_keeps_attempt_and_idempotency(ledger):
    register(ledger, "a1")
    ledger.submit([tok("once", "a1", idempotent=False)])
    back = ledger.give_back("a1", ["once"], LOST)
    assert back.failed == [] and back.requeued == {LIGHT: 1}
    assert [(c.token_id, c.attempt) for c in ledger.claim(LIGHT, 1, "a1", 1 << 20)] == [
        ("once", 1)]



def test_tokens_an_agent_returns_unstarted_wait_again_but_a_started_one_stays(ledger):
    """A leaving agent returns what it never started: same attempt, never-twice ones too;
    one whose start was reported stays with it (the loss that follows decides)."""
    register(ledger, "a1", "a2")
    ledger.submit([tok("queued", "a1", idempotent=False), tok("began", "a1", idempotent=False)])
    ledger.start("a1", [StartReport("began", 1, 1.0)])
    back = ledger.give_back("a1", ["queued", "began"], LOST, returned=True)
    assert back.failed == [] and back.requeued == {LIGHT: 1}
    assert (state(ledger, "queued"), state(ledger, "began")) == (S.WAITING, S.EXECUTING)
    assert [(c.token_id, c.attempt) for c in ledger.claim(LIGHT, 5, "a2", 1 << 20)] == [
        ("queued", 1)]
    lost = ledger.lose("a1", LOST)
    assert [t.token_id for t in lost.failed] == ["began"], "still a1's when it is lost"

def test_join_reconciles_holdings_before_anything_is_given(ledger):
    register(ledger, "a1")
    ledger.submit([tok("kept", "a1"), tok("missing", "a1"), tok("elsewhere")])
    register(ledger, "a2")
    ledger.claim(LIGHT, 1, "a2", 1 << 20)
    adoption = ledger.join("a1", "a1-inc", ["kept", "elsewhere", "gone"], {"host": "h"}, [],
                           LOST)
    assert sorted(adoption.revoked) == ["elsewhere", "gone"] and not adoption.restarted
    assert adoption.requeue.requeued == {LIGHT: 1} and ledger.inflight_ids("a1") == {"kept"}
    record = ledger.records(["missing"])[0]
    assert record.state is S.WAITING and record.attempt == 1
    restarted = ledger.join("a1", "new-process", [], {"host": "h"}, [], LOST)
    assert restarted.restarted and restarted.requeue.requeued == {LIGHT: 1}
    assert ledger.records(["kept"])[0].attempt == 2, "its predecessor may have run it"
    assert ledger.agents()["a1"]["incarnation"] == "new-process"


def test_kill_waiting_forwarded_finished_unknown(ledger):
    register(ledger, "a1")
    ledger.submit([tok("wait"), tok("held", "a1")])
    assert ledger.kill("wait", "k") == (KillOutcome.KILLED, "")
    assert ledger.queue_lengths()[LIGHT] == 0, "a killed token leaves its queue"
    assert ledger.kill("held", "k") == (KillOutcome.FORWARDED, "a1")
    ledger.complete("a1", [outcome("held")])
    assert ledger.kill("held", "k") == (KillOutcome.FINISHED, "")
    assert ledger.kill("nope", "k") == (KillOutcome.UNKNOWN, "")
    assert ledger.counts()["killed"] == 1


def test_forget_deletes_final_tokens_only(ledger):
    register(ledger, "a1")
    ledger.submit([tok("done", "a1"), tok("live", "a1")])
    ledger.complete("a1", [outcome("done")])
    assert ledger.records(["done"])[0] is not None, "stored before it is forgotten"
    assert ledger.forget(["done"], "another-client") == 0, "only its owner drops a result"
    assert ledger.forget(["done", "live", "ghost"], "c1") == 1
    assert ledger.records(["done", "live"])[0] is None
    assert ledger.records(["live"])[0].state is S.ADMITTED


def test_a_submission_drops_received_results_in_the_same_round_trip(ledger):
    register(ledger, "a1")
    ledger.submit([tok("done", "a1")])
    ledger.complete("a1", [outcome("done")])
    assert ledger.submit_begin([tok("next")], ["done", "next"])() == [SubmitStatus.QUEUED]
    assert ledger.records(["done"]) == [None], "the received result is gone"
    assert ledger.records(["next"])[0].state is S.WAITING, "a live token is never dropped"


def test_agents_drain_audit_and_lease(ledger):
    register(ledger, "a1")
    assert ledger.agents()["a1"]["host"] == "h" and "a1" in ledger.last_seen()
    ledger.touch_agents({"a1": 123.0, "ghost": 5.0})
    assert ledger.last_seen() == {"a1": 123.0}, "a deregistered name does not come back"
    ledger.set_drain("", "maint")
    ledger.set_drain("a1", "disk")
    drain = ledger.drain_state()
    assert (drain.cluster, drain.nodes) == ("maint", {"a1": "disk"}) and drain.since > 0
    ledger.clear_drain("")
    ledger.clear_drain("a1")
    assert ledger.drain_state().cluster is None and ledger.drain_state().nodes == {}
    for i in range(3):
        ledger.audit(AuditEntry(float(i), "ops", "drain", "cluster", True, f"r{i}"))
    assert [e.result for e in ledger.audit_log(2)] == ["r1", "r2"], "newest last"
    ledger.lease("release", _record("holder"), 3)
    one, two = _record("one"), _record("two")
    assert ledger.lease("acquire", one, 3) == (True, b"")
    assert ledger.lease("acquire", two, 3) == (False, one)
    assert ledger.lease("takeover", two, 3, one) == (True, b"")
    assert ledger.lease("renew", one, 3) == (False, two)
    ledger.lease("release", two, 3)
    assert ledger.lease("acquire", one, 3) == (True, b"")


def test_a_gateway_that_lost_its_shard_writes_nothing(redis_url):
    """The fencing epoch: a gateway paused past its lease, while another took the shard, is
    refused its next write (Fenced), before anything is stored; the lease alone would let it
    write until it next renewed. The newcomer's epoch is one higher."""
    prefix = f"tg-fence-{uuid.uuid4().hex[:6]}:{{0}}:"
    old, new = (RedisLedger.from_url(redis_url, prefix=prefix) for _ in range(2))
    fenced: list[str] = []
    old.on_fenced = fenced.append
    assert old.lease("acquire", _record("old"), 0.2) == (True, b"")
    assert old.submit([tok("before")]) == [SubmitStatus.QUEUED]
    wait_until(lambda: new.lease("acquire", _record("new"), 5) == (True, b""), 5)
    assert int(new.epoch.split(":")[0]) == int(old.epoch.split(":")[0]) + 1
    with pytest.raises(Fenced):
        old.submit([tok("after")])
    with pytest.raises(Fenced):
        old.claim(LIGHT, 10, "a1", 1 << 20)
    assert fenced and "FENCED" in fenced[0]
    assert new.records(["after"]) == [None], "the fenced write stored nothing"
    assert old.lease("renew", _record("old"), 5)[0] is False, "nor can it renew"
    assert new.submit([tok("after")]) == [SubmitStatus.QUEUED]


def test_a_redis_that_lost_the_epoch_is_unavailable_until_the_holder_renews(redis_url):
    """Redis restarted without its data: the scripts answer NOEPOCH (RedisUnavailable, not
    Fenced: nobody else took the shard), and the holder's renewal takes the epoch back."""
    ledger = RedisLedger.from_url(redis_url, prefix=f"tg-noep-{uuid.uuid4().hex[:6]}:{{0}}:")
    renew_now: list[bool] = []
    ledger.on_no_epoch = lambda: renew_now.append(True)
    assert ledger.lease("acquire", _record("g"), 5) == (True, b"")
    ledger.redis.delete(ledger.key("epoch"), ledger.key("gateway"))
    with pytest.raises(RedisUnavailable) as caught:
        ledger.submit([tok("t1")])
    assert not isinstance(caught.value, Fenced) and renew_now
    assert ledger.lease("renew", _record("g"), 5) == (True, b"")
    assert ledger.submit([tok("t1")]) == [SubmitStatus.QUEUED]


# -- the table: every step, from every state, moves only along transitions.py ----------------

def _token_in(ledger, token_id: str, wanted: TokenState) -> None:
    """Put a new token into ``wanted`` with the ledger's own steps (agent a1)."""
    ledger.submit([tok(token_id, "" if wanted is S.WAITING else "a1")])
    if wanted is S.EXECUTING:
        ledger.start("a1", [StartReport(token_id, 1, 1.0)])
    elif wanted is S.KILLED:
        ledger.give_back("a1", [token_id], LOST)
        ledger.kill(token_id, "k")
    elif wanted.is_final:
        ledger.complete("a1", [outcome(token_id, st=wanted)])


STEP_CALLS = {
    "claim": lambda ledger, t: ledger.claim(LIGHT, 1000, "a1", 1 << 30),
    "start": lambda ledger, t: ledger.start("a1", [StartReport(t, 1, 2.0)]),
    "complete": lambda ledger, t: ledger.complete("a1", [outcome(t)]),
    "requeue": lambda ledger, t: ledger.lose("a1", LOST),
    "requeue returned": lambda ledger, t: ledger.give_back("a1", [t], LOST, returned=True),
    "join": lambda ledger, t: ledger.join("a1", "a1-inc", [], {}, [], LOST),
    "kill": lambda ledger, t: ledger.kill(t, "k"),
    "forget": lambda ledger, t: ledger.forget([t], "c1"),
}


# The one call above that leaves a token the table lets its step move: an agent that returns
# what it never started keeps a token whose start it reported (the loss that follows decides).
STAYS = {("requeue returned", S.EXECUTING)}


@pytest.mark.parametrize("script", sorted(STEP_CALLS))
@pytest.mark.parametrize("before", [S.WAITING, S.ADMITTED, S.EXECUTING, S.COMPLETED, S.FAILED,
                                    S.KILLED])
def test_every_step_moves_tokens_only_along_the_table(ledger, script, before):
    """A step moves a token from each state its row lists, along one of the row's moves,
    and leaves a token in any other state where it is."""
    step = script.split()[0]
    register(ledger, "a1")
    token_id = f"{script}-{before.value}"
    _token_in(ledger, token_id, before)
    assert state(ledger, token_id) is before
    STEP_CALLS[script](ledger, token_id)
    after = state(ledger, token_id)
    if before in BY_SCRIPT[step].sources and (script, before) not in STAYS:
        assert after is not before and allowed(step, before, after), \
            f"{script} must move a {before.name} token along the table; it is {after}"
    else:
        assert after is before, f"{script} must leave a {before.name} token; it made {after}"


def test_unreachable_redis_is_redis_unavailable():
    with pytest.raises(RedisUnavailable):  # it asks whether Redis is a cluster at once
        RedisLedger.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with RedisServer() as server:
        ledger = RedisLedger.from_url(server.url)
    with pytest.raises(RedisUnavailable):
        ledger.ping()
    with pytest.raises(RedisUnavailable):
        ledger.submit([tok("t")])


def test_password_protected_redis():
    with RedisServer(password="pw-123") as server:
        assert RedisLedger.from_url(server.url).ping()
        with pytest.raises(RedisUnavailable, match="password"):
            RedisLedger.from_url(server.url.replace("pw-123", "wrong")).ping()


SUBMIT_SHA = hashlib.sha1(script_text("submit").encode()).hexdigest()


def test_scripts_come_back_after_a_redis_restart(tmp_path):
    """A SIGKILLed redis-server started again on its port: the same ledger object reconnects
    both of this thread's connections and loads its scripts again."""
    with DurableRedis(tmp_path / "redis") as server:
        ledger = RedisLedger.from_url(server.url)
        assert ledger.lease("acquire", _record("g"), 60) == (True, b"")
        assert ledger.submit([tok("t1")]) == [SubmitStatus.QUEUED]  # the "run" connection
        assert ledger.submit_begin([tok("t2")])() == [SubmitStatus.QUEUED]  # and "submit"
        pid = server.process.pid
        server.crash_and_restart()
        assert server.process.pid != pid, "a new redis-server process"
        # Redis 7 comes back with no scripts; 6.2 reloads them from the AOF's SCRIPT LOAD.
        # None either way, so the ledger must load them again.
        ledger.redis.script_flush()
        assert ledger.redis.script_exists(SUBMIT_SHA) == [False]
        assert ledger.submit([tok("t3")]) == [SubmitStatus.QUEUED]
        assert ledger.redis.script_exists(SUBMIT_SHA) == [True], "loaded again"
        assert ledger.submit_begin([tok("t4")])() == [SubmitStatus.QUEUED]
        assert ledger.queue_lengths()[LIGHT] == 4, "t1 and t2 came back from the AOF"
        register(ledger, "a1")
        claimed = ledger.claim(LIGHT, 9, "a1", 1 << 20)
        assert [c.token_id for c in claimed] == ["t1", "t2", "t3", "t4"]
