"""The token ledger: the cluster's durable facts behind one interface.

``base`` holds the :class:`TokenLedger` protocol, ``rows`` the typed rows it takes and gives,
``schema`` every Redis key and field name, ``transitions`` the table of which step moves a
token from which state to which (checked inside the Lua scripts, which load a prelude
generated from it); ``redis_ledger`` implements it over a real Redis (its parts:
``redis_core``, ``reads``, ``scripts``, ``codec``, ``edge``, ``conns``, ``tickets``,
``slots``). There is no in-memory twin: tests run the same scripts on a real redis-server.
"""

from tokengate.gateway.ledger.base import DrainState, LossPolicy, TokenLedger
from tokengate.gateway.ledger.redis_ledger import RedisLedger
from tokengate.gateway.ledger.rows import (
    Adoption,
    Applied,
    AuditEntry,
    Claimed,
    KillOutcome,
    LostToken,
    NewToken,
    Outcome,
    Requeued,
    StartReport,
    SubmitStatus,
    TaskRule,
    TokenRecord,
)

__all__ = [
    "Adoption",
    "Applied",
    "AuditEntry",
    "Claimed",
    "DrainState",
    "KillOutcome",
    "LossPolicy",
    "LostToken",
    "NewToken",
    "Outcome",
    "RedisLedger",
    "Requeued",
    "StartReport",
    "SubmitStatus",
    "TaskRule",
    "TokenLedger",
    "TokenRecord",
]
