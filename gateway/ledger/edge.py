"""The ledger's edge: what a Redis error means, and which TokenGate error it becomes.

Every :class:`~tokengate.gateway.ledger.redis_ledger.RedisLedger` method that talks to Redis
is wrapped in :func:`redis_errors`; no ``redis`` exception gets past it:

- Redis cannot serve now (down, restarting, loading, stalled, a demoted primary, too few
  replicas, a Redis Cluster slot on the move, the epoch lost): :class:`RedisUnavailable`;
- another gateway holds the shard's epoch (``FENCED``): :class:`Fenced`;
- a script refused a move its row of the state table does not list: :class:`IllegalTransition`
  naming the script, the token and both states;
- any other error reply (a script's own bug, a key of the wrong type): :class:`LedgerError`
  naming the script (found by its sha in the reply) or, for a plain command, the method.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import redis
from tokengate.gateway.ledger.transitions import ILLEGAL
from tokengate.shared.errors import Fenced, IllegalTransition, LedgerError, RedisUnavailable

P = ParamSpec("P")
T = TypeVar("T")

UNAVAILABLE_REPLIES = frozenset({"LOADING", "MISCONF", "OOM", "READONLY", "BUSY", "MASTERDOWN",
                                 "NOREPLICAS", "NOEPOCH"})  # NOEPOCH: lib.lua's fence, until
                                                            # the lease renews the epoch a
                                                            # Redis restart lost
DEMOTED_REPLIES = frozenset({"READONLY", "MASTERDOWN"})  # a replica now: ask for the primary
_SCRIPT_REPLY = re.compile(r"\s-([A-Z]+)\s")  # the code of an error a script's command got
_ILLEGAL = re.compile(ILLEGAL + r" (\S+) (\S+) (\S+) (\S+)")  # step, from, to, token id
# A Redis Cluster moving the shard's slot: MOVED (it moved: follow it), ASK and TRYAGAIN (it
# is moving), CLUSTERDOWN (no master for it yet). Each is "unavailable, try again".
CLUSTER_MOVING = (redis.exceptions.AskError, redis.exceptions.TryAgainError,
                  redis.exceptions.ClusterDownError)
STALL_SECONDS = 1.0  # a Redis call that takes longer is a stall (SIGSTOP, a long fork)


def reply_code(exc: redis.ResponseError) -> str:
    """An error reply's code ("READONLY"), also when a script's command got it (Redis 6:
    "Error running script ... -NOREPLICAS Not enough good replicas to write.")."""
    text = str(exc)
    code = text.split(" ", 1)[0]
    if code == "Error" and (inner := _SCRIPT_REPLY.search(text)) is not None:
        return inner.group(1)
    return code


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis cannot serve now (down, restarting, loading, stalled, a
    primary demoted, too few replicas for ``min-replicas-to-write``)."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, *CLUSTER_MOVING)):
        return True
    return isinstance(exc, redis.ResponseError) and reply_code(exc) in UNAVAILABLE_REPLIES


def ledger_error(exc: redis.ResponseError, shas: Mapping[str, str], where: str) -> LedgerError:
    """The TokenGate error for an error reply that is not an outage: the script is the one
    whose sha the reply names (Redis 6 and 7 both do), else ``where`` (a plain command)."""
    text = str(exc)
    script = next((name for sha, name in shas.items() if sha in text), where)
    illegal = _ILLEGAL.search(text)
    if illegal is not None:
        step, source, target, token_id = illegal.groups()
        return IllegalTransition(
            f"{step}.lua refused to move token {token_id} from {source} to {target}: not in "
            f"its row of the state table", script=step, token_id=token_id, source=source,
            target=target)
    return LedgerError(f"Redis refused {script}: {text}", script=script)


class Edge(Protocol):
    """What :func:`redis_errors` needs of the ledger it guards."""

    errors: int
    trouble_at: float
    on_no_epoch: Callable[[], None] | None

    @property
    def script_shas(self) -> Mapping[str, str]: ...  # sha -> script name
    def fenced(self, message: str) -> None: ...
    def follow(self, exc: BaseException) -> None: ...
    def drop_connection(self) -> None: ...


L = TypeVar("L", bound=Edge)


def redis_errors(method: Callable[Concatenate[L, P], T]) -> Callable[Concatenate[L, P], T]:
    """A RedisLedger method: Redis's unavailability becomes RedisUnavailable, a fenced
    script :class:`Fenced`, any other error reply a :class:`LedgerError`; failures and
    stalls are noted in ``trouble_at``."""
    @functools.wraps(method)
    def wrapper(self: L, /, *args: P.args, **kwargs: P.kwargs) -> T:
        began = time.monotonic()
        try:
            return method(self, *args, **kwargs)
        except redis.RedisError as exc:
            raise _mapped(self, exc, method.__name__) from None
        finally:
            if time.monotonic() - began > STALL_SECONDS:
                self.trouble_at = time.time()
    return wrapper


def _mapped(ledger: Edge, exc: redis.RedisError, where: str) -> Exception:
    """What ``exc`` becomes at the edge (and what the ledger is told of it)."""
    if isinstance(exc, redis.ResponseError) and str(exc).startswith("FENCED"):
        ledger.fenced(str(exc))
        return Fenced(f"this gateway no longer holds its shard: {exc}")
    if not unavailable(exc):
        if isinstance(exc, redis.ResponseError):
            return ledger_error(exc, ledger.script_shas, where.lstrip("_"))
        return LedgerError(f"Redis failed {where.lstrip('_')}: {exc!r}",
                           script=where.lstrip("_"))
    if str(exc).startswith("NOEPOCH") and ledger.on_no_epoch is not None:
        ledger.on_no_epoch()
    if isinstance(exc, redis.ResponseError) and reply_code(exc) in DEMOTED_REPLIES:
        ledger.drop_connection()  # its next connection asks (Sentinel) for the primary
    ledger.follow(exc)
    ledger.errors += 1
    ledger.trouble_at = time.time()
    return RedisUnavailable(f"Redis cannot serve now: {exc}")
