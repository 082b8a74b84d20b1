"""The wire's vocabulary, in one place: protobuf codes <-> TokenGate's own enums.

Every component converts through here, so a weight, a final state or an error name has one
spelling: :class:`~tokengate.shared.tags.Weight` and
:class:`~tokengate.shared.lifecycle.TokenState` values, and exception class names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tokengate.shared import errors
from tokengate.shared.errors import BadRequest
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import DEFAULT_WEIGHT, Weight

FINAL_CODES: dict[TokenState, pb.FinalState] = {
    TokenState.COMPLETED: pb.COMPLETED,
    TokenState.FAILED: pb.FAILED,
    TokenState.KILLED: pb.KILLED,
}
STATE_OF_CODE: dict[int, TokenState] = {code: state for state, code in FINAL_CODES.items()}


def final_code(state: TokenState) -> pb.FinalState:
    """The ResultItem state code of a final token (FAILED for anything unexpected)."""
    return FINAL_CODES.get(state, pb.FAILED)


def final_state(code: int) -> TokenState:
    """The TokenState of a ResultItem state code (FAILED for an unknown code)."""
    return STATE_OF_CODE.get(code, TokenState.FAILED)


_WEIGHT_NAMES: dict[str, Weight] = {"": DEFAULT_WEIGHT, **{w.value: w for w in Weight}}


def weight_of(text: str) -> Weight:
    """A weight as it travels ("" is the default); BadRequest for an unknown one."""
    known = _WEIGHT_NAMES.get(text)
    if known is not None:
        return known
    name = text.strip().lower()
    if not name:
        return DEFAULT_WEIGHT
    try:
        return Weight(name)
    except ValueError:
        valid = ", ".join(w.value for w in Weight)
        raise BadRequest(f"unknown weight {text!r}; valid values: {valid}") from None


def credits_of(credits: Iterable[pb.Credit]) -> dict[Weight, int]:
    """Free capacity per weight from Credit messages (unknown weights are left out)."""
    free: dict[Weight, int] = {}
    for credit in credits:
        try:
            free[weight_of(credit.weight)] = max(0, credit.count)
        except BadRequest:
            continue
    return free


def credit_messages(free: Mapping[Weight, int]) -> list[pb.Credit]:
    return [pb.Credit(weight=w.value, count=max(0, int(n))) for w, n in free.items()]


error_name = errors.wire_name  # the name an error travels under: its class name


AGENT_LOST = error_name(errors.AgentLost)
TOKEN_KILLED = error_name(errors.TokenKilled)
PLACEMENT_TIMEOUT = error_name(errors.PlacementTimeout)
GATEWAY_BUSY = error_name(errors.GatewayBusy)
REDIS_UNAVAILABLE = error_name(errors.RedisUnavailable)
FENCED = error_name(errors.Fenced)
RESULT_NOT_REPORTABLE = error_name(errors.ResultNotReportable)
# Rejections of calls that were not stored, which a client offers again (on whichever
# gateway its session reaches next).
NOT_STORED = frozenset({REDIS_UNAVAILABLE, FENCED})

# The initial metadata of a Session the gateway took: a client tells a session that was
# opened from one refused (GatewayBusy) before any reply.
SESSION_OPEN = "tokengate-session"
# The shard a session or link belongs to: the gateway names it in its first headers; a
# client or agent that reconnects (to any gateway of the cluster) names it in its own, so
# the gateway serving that shard now (its own, or one that adopted it) takes it.
SHARD = "tokengate-shard"
TASK_FAILED = error_name(errors.TaskFailed)


# An agent's answer to a gateway command it had no room to run (its command pool and backlog
# were full): ``ok=False`` with a message that starts with this word; the command did not run.
COMMAND_BUSY = "busy"


def refused_busy(reply: pb.CommandReply) -> bool:
    """The agent answered ``reply`` without running its command (it was too busy)."""
    return not reply.ok and reply.message.startswith(COMMAND_BUSY + ":")
