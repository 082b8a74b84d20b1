"""Pure helpers over wire items: admission checks and result records.

No I/O here: the gateway core calls these and acts on what they return.
"""

from __future__ import annotations

from tokengate.gateway import keys
from tokengate.gateway.credits import WEIGHTS
from tokengate.shared.errors import BadArguments, BadRequest, PayloadTooLarge, TokenGateError
from tokengate.shared.rpc import tokengate_pb2 as pb

MAX_ID_LENGTH = 200

STATE_NAMES = {pb.COMPLETED: "completed", pb.FAILED: "failed", pb.KILLED: "killed"}
STATE_CODES = {name: code for code, name in STATE_NAMES.items()}
FINAL_NAMES = frozenset(STATE_NAMES.values())


def normalize_weight(weight: str) -> str:
    return weight.strip().lower() or "medium"


def check_item(item: pb.TaskItem, *, max_payload: int, allow_pickle: bool) -> TokenGateError | None:
    """The error to answer a submitted item with, or None when it may be admitted."""
    if not item.token_id or len(item.token_id) > MAX_ID_LENGTH:
        return BadRequest(f"token_id must be 1-{MAX_ID_LENGTH} characters")
    module, _, qualname = item.task.partition(":")
    if not module or not qualname:
        return BadRequest(f"task {item.task!r} must be a registered name 'module:qualname'")
    if normalize_weight(item.weight) not in WEIGHTS:
        return BadRequest(f"unknown weight {item.weight!r}; valid values: {', '.join(WEIGHTS)}")
    if item.codec == pb.PICKLE and not allow_pickle:
        return BadArguments("pickle-coded calls are refused: the gateway did not allow pickle")
    if item.codec not in (pb.MSGPACK, pb.PICKLE):
        return BadArguments(f"unknown codec {item.codec}")
    if len(item.payload) > max_payload:
        return PayloadTooLarge(
            f"arguments are {len(item.payload)} bytes encoded; the limit is {max_payload}")
    return None


def rejection(token_id: str, error: TokenGateError) -> pb.Rejected:
    return pb.Rejected(token_id=token_id, error_type=type(error).__name__,
                       error_message=str(error))


def failure(token_id: str, state: int, error_type: str, message: str,
            attempt: int = 0) -> pb.ResultItem:
    """A result the gateway itself decided (AgentLost, TokenKilled)."""
    return pb.ResultItem(token_id=token_id, state=state, error_type=error_type,
                         error_message=message, attempt=attempt)


def result_from_record(token_id: str, record: dict[str, bytes]) -> pb.ResultItem | None:
    """The final result stored for a token, or None if it is not final yet."""
    state = record.get(keys.F_STATE, b"").decode()
    if state not in FINAL_NAMES:
        return None
    blob = record.get(keys.F_RESULT)
    if blob:
        return pb.ResultItem.FromString(blob)
    return failure(token_id, STATE_CODES[state],
                   record.get(keys.F_ERROR_TYPE, b"TaskFailed").decode(),
                   record.get(keys.F_ERROR_MESSAGE, b"").decode(),
                   int(record.get(keys.F_ATTEMPT, b"1")))
