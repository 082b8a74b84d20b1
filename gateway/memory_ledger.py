"""An in-memory ledger with the exact contract of :class:`gateway.ledger.RedisLedger`.

For unit tests of the gateway without Redis, and a reference for the Lua scripts' semantics:
the ledger test suite runs against both. One lock guards all of it (it stands in for Redis's
single thread). Results do not expire.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tokengate.gateway import keys
from tokengate.gateway.ledger import DISPATCHED, DUPLICATE, QUEUED
from tokengate.shared.framing import FRAME_SOFT_LIMIT

_LIVE = ("waiting", "admitted", "executing")


class MemoryLedger:
    """Token, queue, agent and drain state in dicts."""

    def __init__(self, *, prefix: str = keys.DEFAULT_PREFIX, result_ttl: int = 3600) -> None:
        self.prefix = prefix
        self.result_ttl = result_ttl
        self._lock = threading.Lock()  # guards every field below
        self._tokens: dict[str, dict[str, bytes]] = {}
        self._queues: dict[str, deque[str]] = {}
        self._inflight: dict[str, set[str]] = {}
        self._counts: dict[str, int] = dict.fromkeys(keys.COUNTERS, 0)
        self._agents: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, float] = {}
        self._drain: str | None = None
        self._node_drain: dict[str, str] = {}

    def ping(self) -> bool:
        return True

    def submit(self, items: Sequence[tuple[str, str, int, bytes, str, str]]) -> list[int]:
        out = []
        with self._lock:
            for token_id, weight, idem, blob, agent, owner in items:
                if token_id in self._tokens:
                    out.append(DUPLICATE)
                    continue
                self._counts["submitted"] += 1
                record = {"s": b"admitted" if agent else b"waiting", "a": b"1",
                          "w": weight.encode(), "i": str(idem).encode(), "d": blob,
                          "c": str(time.time()).encode(), "o": owner.encode()}
                self._tokens[token_id] = record
                if agent:
                    record["g"] = agent.encode()
                    self._inflight.setdefault(agent, set()).add(token_id)
                    out.append(DISPATCHED)
                else:
                    self._queues.setdefault(weight, deque()).append(token_id)
                    out.append(QUEUED)
        return out

    def submit_begin(self, items: Sequence[tuple[str, str, int, bytes, str, str]],
                     ) -> Callable[[], list[int]]:
        statuses = self.submit(items)
        return lambda: statuses

    def claim(self, weight: str, count: int, agent: str,
              budget: int = FRAME_SOFT_LIMIT) -> list[tuple[str, int, bytes]]:
        out: list[tuple[str, int, bytes]] = []
        size = 0
        with self._lock:
            queue = self._queues.get(weight, deque())
            while queue and len(out) < count and size < budget:
                token_id = queue.popleft()
                record = self._tokens.get(token_id)
                if record is None or record["s"] != b"waiting":
                    continue
                record["s"], record["g"] = b"admitted", agent.encode()
                self._inflight.setdefault(agent, set()).add(token_id)
                out.append((token_id, int(record["a"]), record["d"]))
                size += len(record["d"])
        return out

    def complete(self, items: Sequence[tuple[str, str, bytes]]) -> list[int]:
        out = []
        with self._lock:
            for token_id, state, result in items:
                record = self._tokens.get(token_id)
                if record is None or record["s"].decode() not in _LIVE:
                    out.append(0)
                    continue
                record["s"], record["r"] = state.encode(), result
                record.pop("d", None)
                agent = record.get("g")
                if agent:
                    self._inflight.get(agent.decode(), set()).discard(token_id)
                if record.get("x"):
                    del self._tokens[token_id]
                self._counts[state] = self._counts.get(state, 0) + 1
                out.append(1)
        return out

    def requeue(self, agent: str, max_attempts: int, message: str,
                ids: Sequence[str] | None = None, *, transit: bool = False,
                ) -> tuple[list[tuple[str, int]], dict[str, int]]:
        failed: list[tuple[str, int]] = []
        requeued: dict[str, int] = {}
        with self._lock:
            held = self._inflight.setdefault(agent, set())
            for token_id in list(held if ids is None else ids):
                held.discard(token_id)
                record = self._tokens.get(token_id)
                if record is None or record["s"] not in (b"admitted", b"executing") \
                        or record.get("g") != agent.encode():
                    continue
                attempt = int(record["a"])
                del record["g"]
                if not transit and (record["i"] == b"0" or attempt >= max_attempts):
                    record.update(s=b"failed", e=b"AgentLost", m=message.encode())
                    record.pop("d", None)
                    failed.append((token_id, attempt))
                    continue
                record["s"], record["a"] = b"waiting", str(attempt + (0 if transit else 1)).encode()
                weight = record["w"].decode()
                self._queues.setdefault(weight, deque()).appendleft(token_id)
                requeued[weight] = requeued.get(weight, 0) + 1
            self._counts["requeued"] += sum(requeued.values())
            self._counts["failed"] += len(failed)
            self._counts["lost"] += len(failed)
        return failed, requeued

    def forget(self, ids: Sequence[str]) -> int:
        deleted = 0
        with self._lock:
            for token_id in ids:
                record = self._tokens.get(token_id)
                if record is None:
                    continue
                if record["s"] in (b"completed", b"failed", b"killed"):
                    del self._tokens[token_id]
                    deleted += 1
                else:
                    record["x"] = b"1"
        return deleted

    def kill(self, token_id: str, message: str) -> tuple[str, str]:
        with self._lock:
            record = self._tokens.get(token_id)
            if record is None:
                return "unknown", ""
            if record["s"] == b"waiting":
                record.update(s=b"killed", e=b"TokenKilled", m=message.encode())
                record.pop("d", None)
                self._counts["killed"] += 1
                return "killed", ""
            if record["s"] in (b"admitted", b"executing"):
                return "forwarded", record.get("g", b"").decode()
            return "finished", ""

    def token_records(self, ids: Sequence[str]) -> list[dict[str, bytes]]:
        with self._lock:
            return [dict(self._tokens.get(token_id, {})) for token_id in ids]

    def queue_lengths(self, weights: Iterable[str]) -> dict[str, int]:
        with self._lock:
            return {w: len(self._queues.get(w, ())) for w in weights}

    def inflight_ids(self, agent: str) -> set[str]:
        with self._lock:
            return set(self._inflight.get(agent, ()))

    def inflight_counts(self, agents: Sequence[str]) -> dict[str, int]:
        with self._lock:
            return {a: len(self._inflight.get(a, ())) for a in agents}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def register_agent(self, name: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._agents[name] = dict(record)
            self._seen[name] = time.time()

    def agents(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._agents.items()}

    def touch_agents(self, seen: dict[str, float]) -> None:
        with self._lock:
            self._seen.update(seen)

    def last_seen(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seen)

    def forget_agent(self, name: str) -> None:
        with self._lock:
            self._agents.pop(name, None)
            self._seen.pop(name, None)

    def set_drain(self, node: str, reason: str) -> None:
        with self._lock:
            if node:
                self._node_drain[node] = reason
            else:
                self._drain = reason

    def clear_drain(self, node: str) -> None:
        with self._lock:
            if node:
                self._node_drain.pop(node, None)
            else:
                self._drain = None

    def drain_state(self) -> tuple[str | None, dict[str, str]]:
        with self._lock:
            return self._drain, dict(self._node_drain)
