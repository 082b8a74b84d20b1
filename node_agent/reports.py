"""What an agent tells the gateway about its tasks and their outcomes, as protobuf values.

Pure functions of a token and its :class:`Held` record (no lock, no I/O): the link calls
them on the thread that finished the token and puts the item on its outbox. Texts that come
from user code are made valid UTF-8 (protobuf refuses lone surrogates).
"""

from __future__ import annotations

import time
from typing import Any

from tokengate.node_agent.commands import clean_text
from tokengate.node_agent.held import Held
from tokengate.shared import codec, labels, wire
from tokengate.shared.errors import TokenGateError
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.registry import TaskSpec
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.token import TaskToken

NOT_REPORTABLE = "ResultNotReportable"


def task_info(spec: TaskSpec) -> pb.TaskInfo:
    """A registered task as the hello describes it (the gateway routes and fences by it)."""
    return pb.TaskInfo(name=spec.name, weight=spec.tags.weight.value,
                       idempotent=spec.tags.idempotent, operation_type=spec.operation_type,
                       time_limit=float(getattr(spec.tags, "time_limit", None) or 0.0),
                       requires=labels.to_texts(spec.tags.requires),
                       storage_speed=spec.tags.storage.value if spec.tags.storage else "")


def result_item(token: TaskToken[Any], held: Held, node: str,
                max_result_bytes: int) -> pb.ResultItem:
    """The outcome of a final ``token``; a result too large or not encodable fails it."""
    state = token.state
    item = pb.ResultItem(
        token_id=token.token_id, state=wire.final_code(state), attempt=held.attempt,
        node=node, core=token.core_id or 0, worker=token.worker_id or "",
        codec=held.codec, session=held.session, operation_type=clean_text(token.operation_type),
        started_at=token.timestamps.get(TokenState.EXECUTING, 0.0),
        finished_at=token.timestamps.get(state, time.time()))
    if state is TokenState.COMPLETED:
        try:
            item.payload = codec.encode_result(token.result, held.codec, max_result_bytes)
        except TokenGateError as exc:
            item.state = pb.FAILED
            item.error_type, item.error_message = wire.error_name(exc), clean_text(str(exc))
    else:
        item.error_type = clean_text(token.error_type) or wire.TASK_FAILED
        item.error_message = clean_text(token.error_message)
        item.traceback = clean_text(token.traceback_text)
    return item


def unreportable_item(token: TaskToken[Any], held: Held, node: str,
                      exc: BaseException) -> pb.ResultItem:
    """A failure the client hears of when ``result_item`` itself raised."""
    return pb.ResultItem(
        token_id=token.token_id, state=pb.FAILED, attempt=held.attempt, node=node,
        session=held.session, finished_at=time.time(), error_type=NOT_REPORTABLE,
        error_message=clean_text(f"its outcome could not be reported: {exc!r}"))
