"""Pure helpers over wire items: admission checks, rejections, results from records.

No I/O here: admission and results call these and act on what they return.
"""

from __future__ import annotations

from tokengate.gateway.ledger import TokenRecord
from tokengate.shared import wire
from tokengate.shared.errors import BadArguments, BadRequest, PayloadTooLarge, TokenGateError
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.rpc import tokengate_pb2 as pb

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 300  # task names and operation types
FORBIDDEN_IN_NAMES = "|\t\r\n "  # a task name is part of a queue's name and a route field

final_state = wire.final_state


def check_item(item: pb.TaskItem, *, max_payload: int, allow_pickle: bool) -> TokenGateError | None:
    """The error to answer a submitted item with, or None when it may be admitted (its
    weight is checked by :func:`tokengate.shared.wire.weight_of`, which screening calls)."""
    if not item.token_id or len(item.token_id) > MAX_ID_LENGTH:
        return BadRequest(f"token_id must be 1-{MAX_ID_LENGTH} characters")
    module, _, qualname = item.task.partition(":")
    if not module or not qualname or len(item.task) > MAX_NAME_LENGTH \
            or any(c in item.task for c in FORBIDDEN_IN_NAMES):
        return BadRequest(f"task {item.task[:MAX_NAME_LENGTH]!r} must be a registered name "
                          f"'module:qualname' of at most {MAX_NAME_LENGTH} characters")
    if len(item.operation_type) > MAX_NAME_LENGTH:
        return BadRequest(f"operation_type is longer than {MAX_NAME_LENGTH} characters")
    if item.codec == pb.PICKLE and not allow_pickle:
        return BadArguments("pickle-coded calls are refused: the gateway did not allow pickle")
    if item.codec not in (pb.MSGPACK, pb.PICKLE):
        return BadArguments(f"unknown codec {item.codec}")
    if len(item.payload) > max_payload:
        return PayloadTooLarge(
            f"arguments are {len(item.payload)} bytes encoded; the limit is {max_payload}")
    return None


def rejection(token_id: str, error: TokenGateError) -> pb.Rejected:
    return pb.Rejected(token_id=token_id, error_type=wire.error_name(error),
                       error_message=str(error))


def result_from_record(record: TokenRecord) -> pb.ResultItem | None:
    """The final result stored for a token, or None if it is not final yet."""
    if not record.state.is_final:
        return None
    if record.result:
        return pb.ResultItem.FromString(record.result)
    default = wire.TOKEN_KILLED if record.state is TokenState.KILLED else wire.TASK_FAILED
    return pb.ResultItem(token_id=record.token_id, state=wire.final_code(record.state),
                         error_type=record.error_type or default,
                         error_message=record.error_message, attempt=record.attempt,
                         session=record.session, finished_at=record.times.get(record.state, 0.0))
