"""Quarantine store: spiked calls kept on disk as JSON, to list, show, replay or drop.

One file per call, ``<dir>/<quarantine_id>.json`` (the id is the token id), written atomically
(temporary file, then rename). A record holds what the spike detector saw and the call's
arguments twice: summarised for display, and whole for replay in the type-tagged JSON of
:mod:`.codec` (no pickle: reading a record can never run code). Arguments the codec cannot
store leave the record listed but not replayable.

:class:`QuarantineStore` is the only writer of its directory in this process; the CLI reads
and drops records through the same class.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tokengate.node_agent.guards import codec
from tokengate.shared.errors import NotReplayable, QuarantineRecordNotFound

logger = logging.getLogger(__name__)

DEFAULT_DIR = "quarantine"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineRecord:
    """One quarantined call, as stored on disk."""

    quarantine_id: str
    task: str                       # "<module>:<qualname>", resolvable through the registry
    operation_type: str
    predicted_cost: float
    historical_mean: float
    deviation_percent: float
    reason: str
    timestamp: float
    args_summary: list[str] = field(default_factory=list)
    kwargs_summary: dict[str, str] = field(default_factory=dict)
    payload: dict[str, Any] | None = None   # {"args": [...], "kwargs": {...}}, type-tagged
    version: int = FORMAT_VERSION

    @property
    def replayable(self) -> bool:
        return self.payload is not None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["replayable"] = self.replayable
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuarantineRecord:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})

    def arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's ``(args, kwargs)``, decoded whole."""
        if self.payload is None:
            raise NotReplayable(f"quarantined call {self.quarantine_id} kept no replayable "
                                f"arguments (see its summary)")
        return tuple(codec.decode(self.payload["args"])), codec.decode(self.payload["kwargs"])


def build_record(*, quarantine_id: str, task: str, operation_type: str, predicted: float,
                 mean: float, deviation: float, reason: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> QuarantineRecord:
    """A record for one call; ``payload`` is None when its arguments cannot be encoded."""
    try:
        payload: dict[str, Any] | None = {
            "args": codec.encode(list(args)), "kwargs": codec.encode(dict(kwargs)),
        }
    except codec.Unencodable as exc:
        logger.warning("quarantined call %s is not replayable: %s", quarantine_id, exc)
        payload = None
    return QuarantineRecord(
        quarantine_id=quarantine_id, task=task, operation_type=operation_type,
        predicted_cost=round(predicted, 3), historical_mean=round(mean, 3),
        deviation_percent=round(deviation * 100.0, 1), reason=reason, timestamp=time.time(),
        args_summary=[codec.summarise(arg) for arg in args],
        kwargs_summary={key: codec.summarise(value) for key, value in kwargs.items()},
        payload=payload,
    )


class QuarantineStore:
    """The quarantine directory: save, list, load, drop."""

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIR) -> None:
        self.directory = Path(directory).resolve()
        self._count_lock = threading.Lock()  # guards saved
        self.saved = 0

    def path_of(self, quarantine_id: str) -> Path:
        if not quarantine_id or "/" in quarantine_id or quarantine_id.startswith("."):
            raise QuarantineRecordNotFound(f"not a quarantine id: {quarantine_id!r}")
        return self.directory / f"{quarantine_id}.json"

    def save(self, record: QuarantineRecord) -> Path:
        """Write the record atomically; returns its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_of(record.quarantine_id)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record.to_json(), handle, indent=2)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._count_lock:
            self.saved += 1
        logger.warning("quarantined %s (%s): %s -> %s", record.quarantine_id, record.task,
                       record.reason, path)
        return path

    def load(self, quarantine_id: str) -> QuarantineRecord:
        path = self.path_of(quarantine_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise QuarantineRecordNotFound(
                f"no quarantined call {quarantine_id!r} in {self.directory}") from None
        return QuarantineRecord.from_json(data)

    def _paths(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return [path for path in self.directory.glob("*.json") if not path.name.startswith(".")]

    def _read(self, paths: list[Path]) -> list[QuarantineRecord]:
        records = []
        for path in paths:
            try:
                records.append(QuarantineRecord.from_json(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError) as exc:
                logger.warning("skipping unreadable quarantine file %s: %s", path, exc)
        return sorted(records, key=lambda rec: rec.timestamp)

    def list(self) -> list[QuarantineRecord]:
        """Every record in the directory, oldest first (unreadable files are skipped, logged)."""
        return self._read(self._paths())

    def drop(self, quarantine_id: str) -> None:
        path = self.path_of(quarantine_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise QuarantineRecordNotFound(
                f"no quarantined call {quarantine_id!r} in {self.directory}") from None
        logger.info("dropped quarantined call %s", quarantine_id)

    def snapshot(self, recent: int = 10) -> dict[str, Any]:
        """Counts and the newest records; reads only those files (status is polled often)."""
        paths = self._paths()
        newest = sorted(paths, key=_mtime)[-recent:] if recent > 0 else []
        return {
            "directory": str(self.directory),
            "saved_this_run": self.saved,
            "on_disk": len(paths),
            "recent": [
                {"id": rec.quarantine_id, "task": rec.task, "operation_type": rec.operation_type,
                 "deviation_percent": rec.deviation_percent, "replayable": rec.replayable,
                 "reason": rec.reason, "timestamp": rec.timestamp,
                 "args_summary": ", ".join([*rec.args_summary,
                                            *(f"{k}={v}" for k, v in rec.kwargs_summary.items())])}
                for rec in self._read(newest)
            ],
        }


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
