"""Idempotency keys at admission: pure checks over a submitted item (no I/O).

A keyed call (``TaskItem.key``) must carry the id its key derives
(:func:`tokengate.shared.call_options.key_token_id`): then every client of the shard that
sends the key sends the same id, and ``submit.lua`` answers a repeat as the token stored
already. What it stores beside the id is the call's digest, so the same key for another call
(other task, codec or arguments) is told apart and refused (IdempotencyConflict).
"""

from __future__ import annotations

import hashlib

from tokengate.shared.call_options import key_problem, key_token_id
from tokengate.shared.errors import BadRequest, IdempotencyConflict
from tokengate.shared.rpc import tokengate_pb2 as pb


def key_error(item: pb.TaskItem) -> BadRequest | None:
    """Why a keyed item may not be admitted (a bad key, or an id its key does not give)."""
    problem = key_problem(item.key)
    if problem is not None:
        return BadRequest(problem)
    if item.token_id != key_token_id(item.key):
        return BadRequest(f"a call with idempotency key {item.key!r} must have token id "
                          f"{key_token_id(item.key)} (shared/call_options.py key_token_id)")
    return None


def call_digest(item: pb.TaskItem) -> str:
    """What a repeat of this keyed call must match: its task, codec and encoded arguments."""
    digest = hashlib.sha256(item.task.encode())
    digest.update(b"\0%d\0" % item.codec)
    digest.update(item.payload)
    return digest.hexdigest()[:32]


def conflict(item: pb.TaskItem) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"idempotency key {item.key!r} names another call (another task, or other "
        "arguments) kept in this shard; use a new key for a new call", key=item.key)
