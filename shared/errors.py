"""The one exception tree of TokenGate.

Every error TokenGate raises on purpose is a :class:`TokenGateError`. Lower-level
errors (gRPC, Redis, OS) are mapped to these at the boundary that meets them.

On the wire (a ``Rejected`` or ``ResultItem``'s ``error_type``, a status's details) an error
travels under one spelling: its class name here, :func:`wire_name`. A client turns a name
back into the class with :func:`by_wire_name`; only the classes of this module are found.
"""

from __future__ import annotations


class TokenGateError(Exception):
    """Base class of every error TokenGate raises on purpose."""


# -- names on the wire ---------------------------------------------------------------------


def wire_name(error: type[BaseException] | BaseException) -> str:
    """The name an error travels under: its class name (one spelling everywhere)."""
    cls = error if isinstance(error, type) else type(error)
    return cls.__name__


def by_wire_name(name: str) -> type[TokenGateError] | None:
    """The class of this module an error name on the wire stands for, or None.

    Looked up among this module's own classes only (never any other namespace), so a
    name from a peer cannot reach an arbitrary class."""
    cls = globals().get(name)
    if isinstance(cls, type) and issubclass(cls, TokenGateError) \
            and cls.__module__ == __name__:
        return cls
    return None


def public_errors() -> list[type[TokenGateError]]:
    """Every error class of this module (a user may meet any of them)."""
    return [cls for cls in globals().values()
            if isinstance(cls, type) and issubclass(cls, TokenGateError)
            and cls.__module__ == __name__]


class ConfigurationError(TokenGateError):
    """A setting or option has a value TokenGate cannot use."""


class InvalidTags(ConfigurationError):
    """A decorator's tags name an unknown key or an invalid value."""


class AsyncFunctionRefused(ConfigurationError):
    """``async def`` functions cannot be decorated; tokens run plain ``def`` functions."""


class InvalidTransition(TokenGateError):
    """A token was asked to move between two lifecycle states that are not connected."""


class NoBackend(TokenGateError):
    """A decorated function was called with no coordinator started and no cluster connected."""


class AdmissionTimeout(TokenGateError):
    """Submission waited for mailbox space (backpressure or drain) longer than its timeout."""


class SchedulerStopped(TokenGateError):
    """The scheduler was stopped before the token could run."""


class TokenKilled(TokenGateError):
    """The token was killed before it started executing."""


class TokenCancelled(TokenKilled):
    """The token's running call was asked to stop (``TaskToken.cancel``) and then stopped."""


class TokenTimeout(TokenGateError, TimeoutError):
    """``TaskToken.get`` gave up waiting for the result."""


class TaskFailed(TokenGateError):
    """A task failed and its original exception could not be re-raised as itself."""

    def __init__(self, message: str, *, error_type: str = "", traceback_text: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.traceback_text = traceback_text


class WorkerProcessError(TokenGateError):
    """A worker process died or could not run a process-mode task."""


class MethodBlockedException(TokenGateError):
    """The Guard House auto-blocked this function for its failure rate."""


class TokenQuarantined(TokenGateError):
    """The call was quarantined by the spike detector; it is kept on disk for review."""


class QuarantineRecordNotFound(TokenGateError):
    """No quarantined call with this id is in the quarantine directory."""


class NotReplayable(TokenGateError):
    """The quarantined call's arguments could not be stored, so it cannot be replayed."""


class RetryableError(TokenGateError):
    """Raise it (or a subclass) from a task to ask for a retry whatever the exception type."""


class UnknownToken(TokenGateError):
    """No token with this id is known."""


class IdempotencyConflict(TokenGateError):
    """An idempotency key was used again with other arguments or another task."""

    def __init__(self, message: str, *, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class UnknownTask(TokenGateError):
    """No decorated function is registered under this task name."""


# -- cluster -------------------------------------------------------------------------------


class ClusterError(TokenGateError):
    """Base class of the errors of cluster mode (gateway, agents, client link)."""


class GatewayUnavailable(ClusterError):
    """The gateway could not be reached, or the connection to it broke."""


class RedisUnavailable(ClusterError):
    """The gateway could not reach its Redis server."""


class Fenced(RedisUnavailable):
    """Another gateway took this gateway's shard (its fencing epoch): it writes no more."""


class Unauthenticated(ClusterError):
    """A call carried no credentials, or the wrong ones."""


class PayloadTooLarge(ClusterError):
    """A call's encoded arguments (or a result) exceed the configured size limit."""


class BadArguments(ClusterError):
    """A call's arguments cannot be encoded or decoded with the chosen codec."""


class BadRequest(ClusterError):
    """A request is malformed: a missing field, an unknown weight, a bad token id."""


class AgentLost(ClusterError):
    """The agent running the token stopped heartbeating and the token may not run again."""


class AgentRejected(ClusterError):
    """The gateway refused an agent's registration (a live agent already has its name)."""


class ResultNotReportable(ClusterError):
    """A token's outcome could not be encoded for its client, so it was failed instead."""


class GatewayBusy(ClusterError):
    """The gateway holds as many waiting tokens as it may; submit again later."""


class TaskTimeLimit(TokenGateError):
    """The task ran past its time limit (the ``timeout`` tag) and its token was failed."""


class PermissionDenied(ClusterError):
    """The caller's credentials do not carry the right this call needs (an operator's)."""


class PlacementTimeout(ClusterError):
    """No live agent has the token's task or the labels it requires, for longer than the
    gateway's placement timeout: the token failed without running."""


class HistoryUnreadable(ClusterError):
    """An agent's execution history records could not be decoded."""


class SnapshotError(ClusterError):
    """An agent's status snapshot does not fit its schema (:mod:`tokengate.shared.snapshot`):
    a field of the wrong type, named by its path."""


class LedgerError(ClusterError):
    """Redis refused a ledger script or command for a reason other than an outage (a bug,
    or a key of the wrong type); ``script`` names the script, or the ledger method."""

    def __init__(self, message: str, *, script: str = "") -> None:
        super().__init__(message)
        self.script = script


class IllegalTransition(LedgerError, InvalidTransition):
    """A ledger script was about to move a token along a move its step's row of
    ``gateway/ledger/transitions.py`` does not list, and stopped."""

    def __init__(self, message: str, *, script: str = "", token_id: str = "",
                 source: str = "", target: str = "") -> None:
        super().__init__(message, script=script)
        self.token_id, self.source, self.target = token_id, source, target


class OrderingTimeout(LedgerError):
    """An agent's report waited past its limit for submissions sent before it to be
    answered: it is not applied out of order."""
