"""One call of a cluster client as a token and its TaskItem, and the rules for a keyed call
met twice (pure: no I/O, no client state)."""

from __future__ import annotations

from typing import Any

from tokengate.shared import codec, labels
from tokengate.shared.call_options import key_token_id
from tokengate.shared.errors import IdempotencyConflict
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import TaskTags
from tokengate.shared.token import TaskToken


def call_item(name: str, operation_type: str, tags: TaskTags, args: tuple[Any, ...],
              kwargs: dict[str, Any], func: Any, key: str | None, codec_id: int,
              max_payload: int) -> tuple[TaskToken, pb.TaskItem]:
    """The token (remote: an agent runs it) and the item of one call, its payload encoded
    (a keyed call's id derives from its key: every client names it alike)."""
    if key is not None and len(kwargs) > 1:  # keyword order is not part of the call
        kwargs = dict(sorted(kwargs.items()))  # (the gateway compares encoded bytes)
    payload = codec.encode_call(args, kwargs, codec_id, max_payload)
    token: TaskToken = TaskToken(func, args, kwargs, operation_type=operation_type, tags=tags,
                                 token_id=key_token_id(key) if key is not None else None)
    token.remote = True  # an agent runs it; a worker thread waiting on it must not
    # the stubs type an enum field by its wrapper class; protobuf takes the int itself
    item = pb.TaskItem(token_id=token.token_id, task=name, payload=payload,
                       codec=codec_id,  # type: ignore[arg-type]
                       weight=tags.weight.value, not_idempotent=not tags.idempotent,
                       operation_type=operation_type, key=key or "")
    if tags.requires:
        item.requires.extend(labels.to_texts(tags.requires))
    return token, item


def same_call(kept: tuple[TaskToken, pb.TaskItem], item: pb.TaskItem) -> TaskToken:
    """The token in flight under a key, if ``item`` is the same call; else the conflict."""
    token, first = kept
    if (first.task, first.codec, first.payload) == (item.task, item.codec, item.payload):
        return token
    raise IdempotencyConflict(f"idempotency key {item.key!r} is in flight from this client "
                              "for another call (another task, or other arguments)",
                              key=item.key)


def follow(token: TaskToken, sent: TaskToken) -> None:
    """Finish a parked keyed call with the outcome of the same call sent before it."""
    token.settle_remote(sent.state, value=sent.result, error=sent.error,
                        traceback_text=sent.traceback_text, attempt=sent.attempt,
                        node=sent.node, core=sent.core_id, worker=sent.worker_id)
