"""The ledger's names: Redis keys, the fields of a token hash, and the state names.

One place for every name the Lua scripts and both ledgers use. The scripts are templates:
:func:`lua_names` gives the values their ``$NAME`` placeholders are filled with when they are
loaded, so a key or field renamed here is renamed everywhere.
"""

from __future__ import annotations

from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import Weight

DEFAULT_PREFIX = "tokengate:"

# Keys, each after the configured prefix.
TOKEN = "t:"              # hash per token, fields below
QUEUE = "q:"              # list per weight of waiting token ids, FIFO (requeues at the front)
INFLIGHT = "inflight:"    # set per agent of the token ids it holds (admitted or executing)
COUNTS = "counts"         # hash of cumulative counters (COUNTERS)
GAUGES = "gauges"         # hash of current figures: executing
AGENTS = "agents"         # hash agent name -> msgpack registration record (incarnation ...)
SEEN = "seen"             # zset agent name -> last heartbeat, unix seconds
DRAIN = "drain"           # hash {reason, since} while the cluster drains
NODE_DRAIN = "nodedrain"  # hash agent name -> reason, nodes drained one by one
TASKS = "tasks"           # hash task name -> "1" idempotent / "0" must never run twice
AUDIT = "audit"           # list of msgpack audit entries, newest first, capped
LEASE = "gateway"         # string: the lease of the one gateway serving this prefix
REPLICATED = "replicated"  # counter bumped before each WAIT (RedisLedger.confirm_writes)


class Field:
    """Fields of a token hash ``<prefix>t:<id>``."""

    STATE = "s"           # a TokenState value
    ATTEMPT = "a"         # runs given so far (1, 2, ...); fences reports of older runs
    WEIGHT = "w"
    IDEMPOTENT = "i"      # "1" may run again after an agent loss, "0" never
    TASK = "k"            # registered task name
    ROUTE = "x"           # weight, session and task in one field, tab-separated (the Redis
                          # ledger writes this instead of w, n and k: fewer fields per token)
    ITEM = "d"            # the TaskItem as submitted (protobuf bytes), until final
    AGENT = "g"           # the agent holding it while admitted or executing (once final by
                          # an agent's report: the agent that ran it)
    OWNER = "o"           # the client id that submitted it (only it may watch it)
    SESSION = "n"         # the session that submitted it (its outcome is pushed there)
    CREATED = "c"         # unix seconds: created, started (as the agent reported it),
    STARTED_AT = "te"
    FINISHED_AT = "tf"    # finished, for outcomes the gateway decided (an agent's outcome
                          # carries its own times in its ResultItem)
    RESULT = "r"          # the final ResultItem (protobuf bytes)
    ERROR_TYPE = "e"      # for outcomes the gateway decided (AgentLost, TokenKilled)
    ERROR_MESSAGE = "m"


COUNTERS = ("submitted", "completed", "failed", "killed", "requeued", "lost")

LIVE_STATES = (TokenState.WAITING, TokenState.ADMITTED, TokenState.EXECUTING)
HELD_STATES = (TokenState.ADMITTED, TokenState.EXECUTING)  # on an agent
FINAL_STATES = (TokenState.COMPLETED, TokenState.FAILED, TokenState.KILLED)

WEIGHTS = tuple(Weight)


def lua_names() -> dict[str, str]:
    """What the ``$NAME`` placeholders of the Lua scripts stand for."""
    names = {f"F_{name}": value for name, value in vars(Field).items() if name.isupper()}
    names.update({state.name: state.value for state in TokenState})
    names.update(K_TOKEN=TOKEN, K_QUEUE=QUEUE, K_INFLIGHT=INFLIGHT, K_COUNTS=COUNTS,
                 K_GAUGES=GAUGES, K_AGENTS=AGENTS, K_SEEN=SEEN, K_TASKS=TASKS)
    return names
