"""The state table checked where the moves happen, and the ledger's errors at its edge, on a
real redis-server: a script's prelude lets through exactly its row's moves; a move outside
it stops the script with IllegalTransition naming the token and both states; any other error
reply is a LedgerError naming the script (or the method that sent a plain command)."""

from __future__ import annotations

import dataclasses
from itertools import product

import pytest
import redis
from test_ledger import LOST, leased_ledger, outcome, register, state, tok
from tokengate.gateway.ledger import RedisLedger, StartReport, SubmitStatus
from tokengate.gateway.ledger import transitions as table
from tokengate.gateway.ledger.transitions import BY_SCRIPT, STEPS, lua_prelude
from tokengate.shared.errors import (
    IllegalTransition,
    InvalidTransition,
    LedgerError,
    RedisUnavailable,
    TokenGateError,
)
from tokengate.shared.lifecycle import TokenState

S = TokenState
ENDS = [None, *TokenState]  # None: new (as a source), deleted (as a target)

# Tries check_move on every (from, to) in ARGV pairs ("" for none); returns the allowed ones.
PROBE = """
local ok = {}
for i = 1, #ARGV, 2 do
  local from, to = ARGV[i], ARGV[i + 1]
  if from == '' then from = nil end
  if to == '' then to = nil end
  if pcall(check_move, 'probe', from, to) then ok[#ok + 1] = i end
end
return ok
"""


@pytest.fixture
def ledger(redis_url):
    ledger = leased_ledger(redis_url, "tg-table")
    yield ledger
    ledger.close()


@pytest.mark.parametrize("step", [s.script for s in STEPS])
def test_each_scripts_prelude_allows_exactly_its_row(ledger, step):
    """Every pair of ends (states, new, deleted), through the prelude as Redis runs it."""
    pairs = list(product(ENDS, ENDS))
    argv = [v for pair in pairs for v in ("" if e is None else e.value for e in pair)]
    allowed = ledger.redis.eval(lua_prelude(step) + PROBE, 0, *argv)
    assert {pairs[(i - 1) // 2] for i in allowed} == set(BY_SCRIPT[step].moves)


def _narrowed(monkeypatch, ledger: RedisLedger, script: str, moves) -> RedisLedger:
    """A second ledger on ``ledger``'s shard (and epoch) whose ``script`` was loaded with a
    row that lists only ``moves``: the real script, checked against a smaller table."""
    monkeypatch.setitem(table.BY_SCRIPT, script,
                        dataclasses.replace(table.BY_SCRIPT[script], moves=moves))
    other = RedisLedger(ledger.redis, prefix=ledger.prefix, result_ttl=60)
    other.epoch = ledger.epoch
    return other


def test_a_move_outside_the_row_stops_the_script_with_illegal_transition(
        ledger, monkeypatch):
    register(ledger, "a1")
    ledger.submit([tok("t1", "a1")])
    narrowed = _narrowed(monkeypatch, ledger, "start", ((S.WAITING, S.ADMITTED),))
    with pytest.raises(IllegalTransition) as caught:
        narrowed.start("a1", [StartReport("t1", 1, 1.0)])
    error = caught.value
    assert (error.script, error.token_id, error.source, error.target) == (
        "start", "t1", "ADMITTED", "EXECUTING")
    assert isinstance(error, LedgerError) and isinstance(error, InvalidTransition)
    assert "t1" in str(error) and "ADMITTED" in str(error)
    assert state(ledger, "t1") is S.ADMITTED, "refused before the token's write"
    assert ledger.executing_counts([])[0] == 0
    assert ledger.start("a1", [StartReport("t1", 1, 1.0)]) == 1, "the real row allows it"


def test_a_new_tokens_move_and_a_deletion_are_checked_too(ledger, monkeypatch):
    narrowed = _narrowed(monkeypatch, ledger, "submit", ((None, S.ADMITTED),))
    with pytest.raises(IllegalTransition) as caught:
        narrowed.submit([tok("w1")])
    assert (caught.value.token_id, caught.value.source, caught.value.target) == (
        "w1", "new", "WAITING")
    register(ledger, "a1")
    ledger.submit([tok("d1", "a1")])
    ledger.complete("a1", [outcome("d1")])
    narrowed = _narrowed(monkeypatch, ledger, "forget", ((S.FAILED, None),))
    with pytest.raises(IllegalTransition, match="COMPLETED to deleted"):
        narrowed.forget(["d1"], "c1")
    assert state(ledger, "d1") is S.COMPLETED, "not deleted"


def test_give_back_in_lib_lua_is_checked_against_its_callers_row(ledger, monkeypatch):
    register(ledger, "a1")
    ledger.submit([tok("g1", "a1")])
    narrowed = _narrowed(monkeypatch, ledger, "requeue", ((S.EXECUTING, S.WAITING),))
    with pytest.raises(IllegalTransition, match="ADMITTED to WAITING"):
        narrowed.lose("a1", LOST)
    assert state(ledger, "g1") is S.ADMITTED


def test_a_script_error_reply_is_a_ledger_error_naming_the_script(ledger):
    """A key of the wrong type under a token's name: submit.lua's HMGET gets WRONGTYPE."""
    ledger.redis.set(ledger.key("t:", "odd"), "not a hash")
    with pytest.raises(LedgerError) as caught:
        ledger.submit([tok("odd")])
    assert caught.value.script == "submit" and "WRONGTYPE" in str(caught.value)
    assert not isinstance(caught.value, RedisUnavailable | IllegalTransition)
    assert not isinstance(caught.value, redis.RedisError)
    ledger.redis.delete(ledger.key("t:", "odd"))
    assert ledger.submit([tok("odd")]) == [SubmitStatus.QUEUED], "the ledger goes on"


def test_a_plain_commands_error_reply_is_a_ledger_error_naming_the_method(ledger):
    ledger.redis.set(ledger.key("drain"), "not a hash")
    with pytest.raises(TokenGateError) as caught:
        ledger.drain_state()
    assert isinstance(caught.value, LedgerError) and caught.value.script == "drain_state"
