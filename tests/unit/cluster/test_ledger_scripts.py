"""Every state write of the Lua scripts goes through the one helper the state table's prelude
defines (pure: the scripts' text, no server)."""

from __future__ import annotations

import re

import pytest
from tokengate.gateway.ledger import schema
from tokengate.gateway.ledger.scripts import LEASE, SCRIPTS, lua_source, script_text
from tokengate.gateway.ledger.transitions import BY_SCRIPT, lua_prelude

WRITES = frozenset({"HSET", "HMSET", "HSETNX", "HDEL", "HINCRBY", "HINCRBYFLOAT"})
STATE = f"'{schema.Field.STATE}'"


def calls(text: str) -> list[tuple[str, str]]:
    """Each ``redis.call('CMD', ...)`` (or ``call('CMD', ...)``, the prelude's upvalue) of
    ``text``: its command and its whole argument text (to the matching parenthesis, over
    several lines)."""
    out = []
    for match in re.finditer(r"\bcall\(\s*'([A-Z]+)'", text):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        out.append((match.group(1), text[match.end():end - 1]))
    return out


@pytest.mark.parametrize("name", [*SCRIPTS, "lib", LEASE])
def test_no_script_writes_a_tokens_state_but_through_move_token(name):
    source = lua_source(name)
    found = calls(source)
    assert found, "the parser found the script's commands"
    raw = [args for command, args in found if command in WRITES and "$F_STATE" in args]
    assert raw == [], f"{name}.lua writes a token's state itself: {raw}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_runs_behind_its_own_rows_prelude(name):
    """The text Redis runs: the prelude of this script's step first, then lib.lua (the fence
    and give_back, which moves tokens with move_token too), then the script; the one state
    write of it all is move_token's."""
    text = script_text(name)
    assert text.startswith(lua_prelude(name))
    assert f"local STEP, MOVES = '{name}'" in text and BY_SCRIPT[name].moves
    writes = [args for command, args in calls(text) if command in WRITES and STATE in args]
    assert writes == [f", key, {STATE}, to, ..."], writes
    assert "move_token(" in lua_source(name) or "check_move(" in lua_source(name) or \
        name in {"join", "requeue"}, "it moves tokens (join and requeue through give_back)"


def test_the_lease_script_moves_no_token():
    assert "move_token" not in script_text(LEASE) and "$F_STATE" not in lua_source(LEASE)
