"""The ledger's names: Redis keys, the fields of a token hash, and the state names.

One place for every name the Lua scripts and both ledgers use. The scripts are templates:
:func:`lua_names` gives the values their ``$NAME`` placeholders are filled with when they are
loaded, so a key or field renamed here is renamed everywhere.
"""

from __future__ import annotations

from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import Weight

DEFAULT_PREFIX = "tokengate:"
DEFAULT_SHARD = "0"

# Keys, each after the configured prefix.
TOKEN = "t:"              # hash per token, fields below
QUEUE = "q:"              # list per queue (weight and need, gateway/needs.py) of waiting
                          # token ids, FIFO (requeues at the front)
QUEUES = "queues"         # set of the queue names that may hold tokens (a bare weight's
                          # queue is always looked at)
INFLIGHT = "inflight:"    # set per agent of the token ids it holds (admitted or executing)
COUNTS = "counts"         # hash of cumulative counters (COUNTERS)
GAUGES = "gauges"         # hash of current figures: executing
AGENTS = "agents"         # hash agent name -> msgpack registration record (incarnation ...)
SEEN = "seen"             # zset agent name -> last heartbeat, unix seconds
DRAIN = "drain"           # hash {reason, since} while the cluster drains
NODE_DRAIN = "nodedrain"  # hash agent name -> reason, nodes drained one by one
TASKS = "tasks"           # hash task name -> "1" idempotent / "0" must never run twice
AUDIT = "audit"           # list of msgpack audit entries, newest first, capped
LEASE = "gateway"         # string: the lease of the one gateway serving this shard (TTL)
WANTED = "wanted"         # string: the shard's own gateway, back, asks an adopter for it (TTL)
EPOCH = "epoch"           # string "<n>:<gateway id>": the fencing epoch of the shard's holder,
                          # no TTL; every script runs only for the gateway that holds it
REPLICATED = "replicated"  # counter bumped before each WAIT (RedisLedger.confirm_writes)


class Field:
    """Fields of a token hash ``<prefix>t:<id>``."""

    STATE = "s"           # a TokenState value
    ATTEMPT = "a"         # runs given so far (1, 2, ...); fences reports of older runs
    WEIGHT = "w"          # the queue name: "<weight>" or "<weight>|<task>|<labels>"
    IDEMPOTENT = "i"      # "1" may run again after an agent loss, "0" never
    TASK = "k"            # registered task name
    ROUTE = "x"           # queue, session and task in one field, tab-separated (the Redis
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
    KEY = "y"             # keyed calls only: digest of (task, codec, payload) under the
                          # call's idempotency key (its id is derived from the key)
    KEEP = "yk"           # keyed calls only: seconds the hash is kept once final (the key
                          # TTL; the result TTL when that is longer)


COUNTERS = ("submitted", "completed", "failed", "killed", "requeued", "lost")

LIVE_STATES = (TokenState.WAITING, TokenState.ADMITTED, TokenState.EXECUTING)
HELD_STATES = (TokenState.ADMITTED, TokenState.EXECUTING)  # on an agent
FINAL_STATES = (TokenState.COMPLETED, TokenState.FAILED, TokenState.KILLED)

WEIGHTS = tuple(Weight)
QUEUE_SEP = "|"  # a queue name: "<weight>" or "<weight>|<task>|<labels>" (gateway/needs.py)


def per_weight(queues: dict[str, int]) -> dict[Weight, int]:
    """Queue lengths summed per weight (a queue name starts with its weight)."""
    out = dict.fromkeys(WEIGHTS, 0)
    for name, n in queues.items():
        weight = Weight(name.partition(QUEUE_SEP)[0])
        out[weight] += n
    return out


def shard_prefix(key_prefix: str, shard: str) -> str:
    """The prefix of one shard's keys: the cluster's key prefix and the shard's hash tag,
    so that every key of the shard (every key a script touches) is in one Redis Cluster hash
    slot. ``shard_prefix("tokengate:", "0") == "tokengate:{0}:"``."""
    return f"{key_prefix}{{{shard}}}:"


def lua_names() -> dict[str, str]:
    """What the ``$NAME`` placeholders of the Lua scripts stand for."""
    names = {f"F_{name}": value for name, value in vars(Field).items() if name.isupper()}
    names.update({state.name: state.value for state in TokenState})
    names.update(K_TOKEN=TOKEN, K_QUEUE=QUEUE, K_QUEUES=QUEUES, K_INFLIGHT=INFLIGHT,
                 K_COUNTS=COUNTS, K_GAUGES=GAUGES, K_AGENTS=AGENTS, K_SEEN=SEEN, K_TASKS=TASKS,
                 K_EPOCH=EPOCH)
    return names
