"""What an agent holds for the gateway: one owner, one lock, methods only.

A token is *held* from the moment the link turns a dispatched item into a
:class:`TaskToken` until the gateway has stored its outcome (an ack) or taken it back (a
revocation, or the agent returning it as it leaves). While held, its :class:`Held` record
says how to report it: the weight that frees a credit, the codec of its result, the client
session the gateway routes the result to, and the attempt that fences the report.

:class:`HeldTokens` keeps three maps and lets no other object read them. Every change of
more than one key takes ``_held_lock``, so it is atomic (:meth:`take_all` holds a frame's
tokens, :meth:`acked` drops a frame's, :meth:`revoke` moves a token from held to revoked,
:meth:`starts_due` takes what is due). What the workers and the link do once per token
touches one key: a lookup (:meth:`get`, :meth:`ours`, :meth:`admits`, ``in``) or a worker's
:meth:`started` is a single dict operation, atomic under the GIL, and takes no lock (four
lock round trips per token, ~0.3 us each on this machine kind, would add ~1 us to an agent's
~15 us of CPU per no-op token). The maps:

- ``_held``: token id -> :class:`Held`, the tokens the gateway counts as this agent's;
- ``_revoked``: token id -> token, revoked after a worker claimed it, until it ends, so
  the start gate (:meth:`admits`) stops it from beginning its call;
- ``_starts``: token id -> token, starts recorded by workers, reported by the sender if the
  token still runs a little later (:meth:`starts_due`).

Who calls what: the link thread :meth:`take_all`, :meth:`acked`, :meth:`revoke`, :meth:`get`;
the sender :meth:`starts_due`, :meth:`revoke` (work stealing); workers :meth:`started`,
:meth:`ours`, :meth:`admits`; ``AgentLink.stop`` iterates the ids. Under the lock there are
only dict operations and reads of tokens, never a callback: a token's done callback may run
at once, on the calling thread, so :meth:`revoke` adds its callback after releasing it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tokengate.shared.lifecycle import TokenState
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight
from tokengate.shared.token import TaskToken

EXECUTING = TokenState.EXECUTING


@dataclass(frozen=True, slots=True)
class Held:
    """How to report one held token."""

    token: TaskToken[Any]
    weight: Weight
    codec: pb.Codec
    session: str   # the client session owed the result (the gateway routes by it)
    attempt: int   # the gateway's attempt number: fences our reports


class HeldTokens:
    """The tokens this agent holds for the gateway (see the module docstring)."""

    def __init__(self) -> None:
        self._held_lock = threading.Lock()  # guards _held, _revoked and _starts
        self._held: dict[str, Held] = {}
        self._revoked: dict[str, TaskToken[Any]] = {}
        self._starts: dict[str, TaskToken[Any]] = {}

    # -- what is held -----------------------------------------------------------------------

    def take(self, held: Held) -> bool:
        """Hold ``held.token``; False (nothing changes) if its id is held already."""
        return bool(self.take_all((held,)))

    def take_all(self, records: Iterable[Held]) -> list[Held]:
        """Hold each record's token (one frame's worth at once); the records taken, without
        those whose id was held already or came earlier in ``records``."""
        taken = []
        with self._held_lock:
            for held in records:
                if held.token.token_id not in self._held:
                    self._held[held.token.token_id] = held
                    taken.append(held)
        return taken

    def get(self, token_id: str) -> Held | None:
        return self._held.get(token_id)  # one dict read: no lock (see the module docstring)

    def ours(self, token: TaskToken[Any]) -> Held | None:
        """The record of ``token`` if this very token is held (not a revoked namesake)."""
        held = self._held.get(token.token_id)
        return held if held is not None and held.token is token else None

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._held

    def __len__(self) -> int:
        with self._held_lock:
            return len(self._held)

    def __iter__(self) -> Iterator[str]:
        """The held ids at this moment (a copy: holding may change while one iterates)."""
        with self._held_lock:
            return iter(list(self._held))

    # -- letting go -------------------------------------------------------------------------

    def acked(self, results: Iterable[pb.ResultItem]) -> None:
        """The gateway stored these outcomes: drop what they report (same attempt only)."""
        with self._held_lock:
            for item in results:
                held = self._held.get(item.token_id)
                if held is not None and held.attempt == item.attempt:
                    del self._held[item.token_id]

    def revoke(self, token_id: str) -> Held | None:
        """Stop holding ``token_id`` (None if it was not held). From this moment until the
        token ends, :meth:`admits` refuses it: a worker that claimed it does not begin its
        call. The caller kills it if it is still queued, which ends it."""
        with self._held_lock:
            held = self._held.get(token_id)
            if held is None:
                return None
            # revoked before it stops being held: a lock-free reader never finds it neither
            self._revoked[token_id] = held.token
            del self._held[token_id]
        held.token.add_done_callback(self._ended)
        return held

    def _ended(self, token: TaskToken[Any]) -> None:
        with self._held_lock:
            if self._revoked.get(token.token_id) is token:
                del self._revoked[token.token_id]

    def admits(self, token: TaskToken[Any]) -> bool:
        """The start gate's question: may this claimed token still begin its call here?"""
        return self._revoked.get(token.token_id) is not token

    def revoked_count(self) -> int:
        with self._held_lock:
            return len(self._revoked)

    # -- start reports ----------------------------------------------------------------------

    def started(self, token: TaskToken[Any]) -> None:
        """A worker began ``token``'s call (no wake-up: the sender reports it if due). One
        dict write, atomic under the GIL: no lock on the workers' hot path."""
        self._starts[token.token_id] = token

    def starts_due(self, due: float, finishing: Iterable[str] = ()) -> list[pb.Started]:
        """Take the recorded starts; report those of held tokens that began at or before
        ``due`` (a time.time() value) and still run. A start of a token that ended, or is
        ``finishing`` in the same frame, is dropped; one not yet due is kept for later."""
        with self._held_lock:
            if not self._starts:
                return []
            done = set(finishing)
            reports = []
            for token_id, token in list(self._starts.items()):
                if token.done() or token_id in done:
                    del self._starts[token_id]
                    continue
                began = token.timestamps.get(EXECUTING, 0.0)
                if began > due:
                    continue
                del self._starts[token_id]
                held = self._held.get(token_id)
                if held is not None and held.token is token:
                    reports.append(pb.Started(token_id=token_id, attempt=held.attempt,
                                              core=token.core_id or 0,
                                              worker=token.worker_id or "",
                                              started_at=began or due))
            return reports
