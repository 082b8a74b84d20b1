"""The token ledger: the cluster's durable facts behind one interface.

``base`` holds the :class:`TokenLedger` protocol, ``rows`` the typed rows it takes and gives,
``schema`` every Redis key and field name, ``transitions`` the table of which step moves a
token from which state to which; ``redis_ledger`` and ``memory_ledger`` implement it.
"""

from tokengate.gateway.ledger.base import DrainState, LossPolicy, TokenLedger
from tokengate.gateway.ledger.memory_ledger import MemoryLedger
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
    "MemoryLedger",
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
