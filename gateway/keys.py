"""Redis key names of the ledger, in one place. Every key starts with the configured prefix."""

from __future__ import annotations

DEFAULT_PREFIX = "tokengate:"

TOKEN = "t:"            # hash per token; fields below
QUEUE = "q:"            # list per weight of waiting token ids
INFLIGHT = "inflight:"  # set per agent of dispatched, unfinished token ids
COUNTS = "counts"       # hash of counters
AGENTS = "agents"       # hash agent name -> msgpack registration record
SEEN = "seen"           # zset agent name -> last heartbeat (unix seconds)
DRAIN = "drain"         # hash {reason, since}: present while the cluster drains
NODE_DRAIN = "nodedrain"  # hash agent name -> reason, for nodes drained one by one

# Fields of a token hash.
F_STATE, F_ATTEMPT, F_WEIGHT, F_IDEMPOTENT = "s", "a", "w", "i"
F_ITEM, F_AGENT, F_CREATED, F_RESULT = "d", "g", "c", "r"
F_ERROR_TYPE, F_ERROR_MESSAGE, F_SESSION = "e", "m", "o"

COUNTERS = ("submitted", "completed", "failed", "killed", "requeued", "lost")
