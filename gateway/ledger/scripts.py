"""The Lua scripts as Redis runs them, and reading a script's reply sent by hand.

A script's text is three parts joined: the prelude :mod:`.transitions` generates from its
step's row of the state table (``move_token``, ``check_move``), ``lua/lib.lua`` (the fence
and the shared helpers), then ``lua/<name>.lua``; all of it a template over :mod:`.schema`'s
names, filled in once, at load. ``lease.lua`` stands alone: it moves no token and is not
fenced (it sets the fence).
"""

from __future__ import annotations

from importlib import resources
from string import Template
from typing import Any

import redis
from tokengate.gateway.ledger import schema
from tokengate.gateway.ledger.transitions import lua_prelude

SCRIPTS = ("submit", "claim", "start", "complete", "requeue", "join", "kill", "forget",
           "expire")
LEASE = "lease"


def lua_source(name: str) -> str:
    """The file ``lua/<name>.lua`` as written (a template)."""
    folder = resources.files("tokengate.gateway.ledger").joinpath("lua")
    return folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")


def script_text(name: str) -> str:
    """A script as Redis runs it: the prelude of its step, lib.lua, then the script, with
    the names filled in."""
    body = lua_source(name)
    if name != LEASE:
        body = "\n".join((lua_prelude(name), lua_source("lib"), body))
    return Template(body).substitute(schema.lua_names())


def read_script_reply(conn: Any, script: Any, args: list[Any]) -> Any:
    """The reply of a script sent by hand (``args`` as ``RedisLedger._args`` makes them:
    1, the fence's key, then the epoch and the script's own); after a Redis restart (no
    script), run it again."""
    try:
        return conn.read_response()
    except redis.exceptions.NoScriptError:
        return script(keys=args[1:2], args=args[2:])
