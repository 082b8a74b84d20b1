"""The chaos soak's load: a steady mix of decorated calls through the ordinary Python client.

:class:`ChaosClient` is faultkit's :class:`RecordingClient` (every outcome the gateway pushed,
per token id, before the client's own dedup) that also records the ids the gateway
acknowledged and withholds the receipts of a sample of results: a receipt makes the gateway
delete the token, so only a token nobody acknowledged receiving can be compared with what
Redis stored. Sampling is a hash of the id (``sample_rate`` of them) while ``withholding`` is
set; the first result pushed for a sampled id is kept (state, error type, payload).

:class:`Load` is one thread that submits ``rate`` calls a second (every weight, idempotent and
never-twice) by calling the decorated tasks of :mod:`benchmarks.chaos_tasks` with the client
installed as the backend. Each call's end is recorded by a done callback on the client's
session thread. The load never stops for an error: a submit that raises is recorded as a
refused call.

Ownership: the load thread appends to ``_calls`` and writes each slot's identity; the callback
writes its ``outcome`` and ``value_ok`` once. ``_pending_lock`` guards ``_pending`` (tokens not
yet final). In the client, ``_kept_lock`` guards ``accepted`` and ``withheld``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokengate.shared.errors import TokenGateError
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.token import TaskToken

from benchmarks import chaos_tasks
from benchmarks.chaos_checks import Call
from benchmarks.faults2_rig import TASKS_DIR  # noqa: F401 - puts faultkit on sys.path
from tokengate import _backend

from faultkit import STATE_NAMES, RecordingClient  # isort: skip

logger = logging.getLogger(__name__)

# Share of calls per task (about a quarter of every weight must never run twice).
MIX = (("light", 0.36), ("light_once", 0.12), ("medium", 0.27), ("medium_once", 0.09),
       ("heavy", 0.12), ("heavy_once", 0.04))
WORK_MS = {"light": (0.0, 3.0), "medium": (2.0, 10.0), "heavy": (10.0, 50.0)}
TICK = 0.02        # seconds between the load's batches
MAX_BATCH = 30     # calls one tick may catch up with after a stall


def told_name(result: pb.ResultItem) -> str:
    """An outcome as RecordingClient logs it: "completed" or "<state>:<ErrorType>"."""
    name = STATE_NAMES.get(result.state, "?")
    return f"{name}:{result.error_type}" if result.error_type else name


class ChaosClient(RecordingClient):
    """The Python client, recording acks and pushed outcomes, withholding sampled receipts."""

    def __init__(self, *args: Any, sample_rate: float, salt: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._threshold = int(sample_rate * 10_000)
        self._salt = salt
        self.withholding = threading.Event()
        self._kept_lock = threading.Lock()
        self.accepted: set[str] = set()
        self.withheld: dict[str, tuple[str, bytes]] = {}  # id -> (told, payload)

    def sampled(self, token_id: str) -> bool:
        return zlib.crc32(f"{self._salt}:{token_id}".encode()) % 10_000 < self._threshold

    def _on_reply(self, reply: pb.ClientReply) -> None:
        with self._kept_lock:
            self.accepted.update(reply.accepted)
            if self.withholding.is_set():
                for result in reply.results:
                    if result.token_id not in self.withheld and self.sampled(result.token_id):
                        self.withheld[result.token_id] = (told_name(result),
                                                          bytes(result.payload))
        super()._on_reply(reply)

    def _take_received(self) -> list[str]:
        received = super()._take_received()
        with self._kept_lock:
            return [token_id for token_id in received if token_id not in self.withheld]

    def kept(self) -> tuple[frozenset[str], dict[str, tuple[str, bytes]]]:
        with self._kept_lock:
            return frozenset(self.accepted), dict(self.withheld)


@dataclass(slots=True)
class _Slot:
    seq: int
    task: str
    idempotent: bool
    expected: int
    submitted: float
    token_id: str = ""
    outcome: str = ""
    value_ok: bool = False


class Load:
    """Submits ``rate`` calls a second until :meth:`stop`; ``calls()`` is the record."""

    def __init__(self, client: ChaosClient, runs_log: Path, *, rate: float, seed: int) -> None:
        self.client = client
        self.runs_log = str(runs_log)
        self.rate = rate
        self._rng = random.Random(seed)
        self._calls: list[_Slot] = []
        self._pending_lock = threading.Lock()
        self._pending: dict[str, TaskToken] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-load", daemon=True)
        self.refused = 0

    def start(self) -> None:
        _backend.install(self.client)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        _backend.uninstall(self.client)

    def _loop(self) -> None:
        began, made = time.monotonic(), 0
        while not self._stop.wait(TICK):
            due = int((time.monotonic() - began) * self.rate) - made
            for _ in range(min(due, MAX_BATCH)):
                self._one()
            made += due  # a stall's backlog is skipped past MAX_BATCH, not replayed

    def _one(self) -> None:
        rng = self._rng
        task = rng.choices([t for t, _ in MIX], [w for _, w in MIX])[0]
        func, weight, idempotent = chaos_tasks.TASKS[task]
        seq, x = len(self._calls), rng.randrange(1_000_000)
        ms = round(rng.uniform(*WORK_MS[weight]), 2)
        slot = _Slot(seq, task, idempotent, chaos_tasks.expected(weight, seq, x), time.time())
        self._calls.append(slot)
        try:
            token = func(self.runs_log, seq, x, ms)
        except TokenGateError as exc:
            slot.outcome = f"refused:{type(exc).__name__}"
            self.refused += 1
            return
        except Exception as exc:  # the load must go on; the call is recorded as refused
            logger.exception("submitting call %d failed", seq)
            slot.outcome = f"refused:{type(exc).__name__}"
            self.refused += 1
            return
        slot.token_id = token.token_id
        with self._pending_lock:
            self._pending[token.token_id] = token
        token.add_done_callback(lambda t, s=slot: self._ended(t, s))

    def _ended(self, token: TaskToken, slot: _Slot) -> None:
        if token.state is TokenState.COMPLETED:
            slot.value_ok = token.result == slot.expected
            slot.outcome = "completed"
        else:
            slot.outcome = f"{token.state.value}:{token.error_type or '?'}"
        with self._pending_lock:
            self._pending.pop(token.token_id, None)

    def outstanding(self) -> int:
        with self._pending_lock:
            return len(self._pending)

    def wait_all(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every submitted call to end; how many have not."""
        deadline = time.monotonic() + timeout
        with self._pending_lock:
            tokens = list(self._pending.values())
        for token in tokens:
            token.wait(max(0.0, deadline - time.monotonic()))
        return self.outstanding()

    def calls(self) -> tuple[Call, ...]:
        return tuple(Call(s.seq, s.task, s.idempotent, s.token_id, s.submitted, s.outcome,
                          s.value_ok) for s in list(self._calls))
