"""The scripts' arguments and replies: typed rows in, flat msgpack arrays out, and back.

Pure functions: each script's header (``lua/*.lua``) documents the layout these follow.
Lua's cmsgpack reads and writes raw strings, not msgpack's bin type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import msgpack
from tokengate.gateway.ledger.rows import (
    Applied,
    Claimed,
    LostToken,
    NewToken,
    Outcome,
    Requeued,
    StartReport,
    SubmitStatus,
)
from tokengate.shared.tags import Weight


def pack(value: Any) -> bytes:
    """``value`` as a script reads it (raw strings, not the bin type)."""
    return cast(bytes, msgpack.packb(value, use_bin_type=False))


def unpack(reply: bytes) -> Any:
    """A script's msgpack-packed reply (Lua's cmsgpack writes raw strings)."""
    return msgpack.unpackb(reply, raw=True)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def queue_name(queue: Weight | str) -> str:
    """A queue's name: a bare weight is its own queue."""
    return queue.value if isinstance(queue, Weight) else queue


_STATUS = {int(s): s for s in SubmitStatus}


def statuses(reply: bytes) -> list[SubmitStatus]:
    status = _STATUS
    return [status[s] for s in unpack(reply)]


def submit_rows(tokens: Sequence[NewToken]) -> bytes:
    """submit.lua's rows, one flat array: per run of tokens of one owner and session (a
    frame is one), the owner, the session, the count, then seven values per token (the
    third is the queue it would wait in, which the route field starts with too; the
    last the digest of a keyed call, or "")."""
    # Weight and TokenState members are str: msgpack packs them as their values.
    flat: list[Any] = []
    owner = session = None
    head = 0
    for t in tokens:
        if t.owner != owner or t.session != session:
            owner, session, head = t.owner, t.session, len(flat) + 2
            flat += (owner, session, 0)
        flat[head] += 1
        queue = t.queue or t.weight.value
        flat += (t.token_id, f"{queue}\t{session}\t{t.task}", queue,
                 1 if t.idempotent else 0, t.item, t.agent, t.key)
    return pack(flat)


def start_rows(reports: Sequence[StartReport]) -> bytes:
    """start.lua's rows: one flat array, three values per report."""
    flat: list[Any] = []
    for r in reports:
        flat += (r.token_id, r.attempt, r.at)
    return pack(flat)


def complete_rows(outcomes: Sequence[Outcome]) -> bytes:
    """complete.lua's rows: one flat array, four values per outcome."""
    flat: list[Any] = []
    for o in outcomes:
        flat += (o.token_id, o.state.value, o.attempt, o.result)
    return pack(flat)


def claimed_rows(reply: bytes) -> list[Claimed]:
    """claim.lua's flat reply (id, attempt, item, ...)."""
    flat = unpack(reply)
    return [Claimed(flat[i].decode(), int(flat[i + 1]), flat[i + 2])
            for i in range(0, len(flat), 3)]


def applied_rows(reply: bytes, outcomes: Sequence[Outcome]) -> list[Applied]:
    """complete.lua's flat reply (code, created, ...) as one Applied per outcome."""
    flat = unpack(reply)
    if len(flat) != 2 * len(outcomes):
        raise AssertionError(f"complete.lua answered {len(flat)} values for "
                             f"{len(outcomes)} outcomes")
    return [Applied(o.token_id, False) if code == 0 else
            Applied(o.token_id, code == 1, float(created), code == 2)
            for o, code, created in zip(outcomes, flat[::2], flat[1::2], strict=True)]


def lost_rows(flat: list[Any]) -> list[LostToken]:
    """A flat [id, attempt, session, ...] as LostTokens."""
    return [LostToken(text(flat[i]), int(flat[i + 1]), text(flat[i + 2]))
            for i in range(0, len(flat), 3)]


def requeued(reply: list[Any]) -> Requeued:
    """requeue.lua's (and join's) {failed flat, {queue, n, ...}}."""
    failed, perw = reply[0], reply[1]
    return Requeued(failed=lost_rows(failed),
                    requeued={text(perw[i]): int(perw[i + 1]) for i in range(0, len(perw), 2)})
