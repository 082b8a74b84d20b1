"""Execution history: a bounded ring buffer of per-attempt records, dumpable to JSON.

Workers append one :class:`ExecutionRecord` per finished attempt; the buffer keeps the last
``capacity`` of them (the seed's dumps sample 250). :meth:`ExecutionHistory.dump` writes them
to ``dumps/execution_history_<time>.json`` (or a path you give) for independent checking.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

import msgpack

DEFAULT_CAPACITY = 1000
DEFAULT_DUMP_DIR = "dumps"


class ExecutionRecord(NamedTuple):
    """One finished attempt of one token (a tuple: cheap to make on every finish)."""

    token_id: str
    operation_type: str
    success: bool
    execution_time: float
    core_id: int | None
    worker_id: str | None
    complexity_score: float
    attempt: int
    error_type: str = ""
    finished_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class ExecutionHistory:
    """The ring buffer; appends and reads are thread-safe."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._ring_lock = threading.Lock()  # guards _ring, total
        self._ring: deque[ExecutionRecord] = deque(maxlen=capacity)
        self.total = 0

    def append(self, record: ExecutionRecord) -> None:
        with self._ring_lock:
            self._ring.append(record)
            self.total += 1

    def records(self) -> list[ExecutionRecord]:
        with self._ring_lock:
            return list(self._ring)

    def recent(self, count: int = 20) -> list[ExecutionRecord]:
        with self._ring_lock:
            return list(self._ring)[-count:] if count > 0 else []

    def export(self, node: str, limit: int = 0) -> bytes:
        """The newest ``limit`` records (0: all) as msgpack, for the gateway's ``history``
        command: a map of ``total_recorded``, ``capacity`` and ``records``, the last a packed
        list of record maps (each with ``node``), so the gateway passes it on unread."""
        records = self.records()
        if limit > 0:
            records = records[-limit:]
        rows = [{**record.to_dict(), "node": node} for record in records]
        return msgpack.packb({"total_recorded": self.total, "capacity": self.capacity,
                              "records": msgpack.packb(rows)})

    def dump(self, path: str | os.PathLike[str] | None = None,
             directory: str | os.PathLike[str] = DEFAULT_DUMP_DIR) -> Path:
        """Write every buffered record to JSON; returns the file written."""
        if path is None:
            stamp = time.strftime("%Y%m%d_%H%M%S")
            target = Path(directory) / f"execution_history_{stamp}_{os.getpid()}.json"
        else:
            target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        records = self.records()
        document = {
            "generated_at": time.time(),
            "capacity": self.capacity,
            "total_recorded": self.total,
            "count": len(records),
            "records": [record.to_dict() for record in records],
        }
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(document, indent=2), encoding="utf-8")
        os.replace(tmp, target)
        return target
