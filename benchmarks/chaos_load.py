"""The chaos soak's load: a steady mix of decorated calls through the ordinary Python client.

:class:`Record` keeps the soak's record on disk as it happens (every call as it ended, every
outcome the gateway pushed per token id, every id it acknowledged), not in memory: the load
runs in the soak's own process beside the client, and that process's memory must measure the
client, not a record that grows with every call (in memory it grew 43 MiB over a 30-minute
soak's last third). :meth:`Record.read` loads it back once the load has stopped.

:class:`ChaosClient` is the ordinary Python client logging every outcome the gateway pushed,
per token id, before the client's own dedup (as faultkit's ``RecordingClient`` does), and the
ids the gateway acknowledged; it withholds the receipts of a sample of results: a receipt
makes the gateway delete the token, so only a token nobody acknowledged receiving can be
compared with what Redis stored. Sampling is a hash of the id (``sample_rate`` of them) while
``withholding`` is set (the first two thirds); the first result pushed for a sampled id is
kept in memory (state, error type, payload).

:class:`Load` is one thread that submits ``rate`` calls a second (every weight, idempotent and
never-twice) by calling the decorated tasks of :mod:`benchmarks.chaos_tasks` with the client
installed as the backend (several clients, one per gateway: :class:`Turns`, each call to the
next client in turn; they share one :class:`Record`). Each call's end is recorded by a done
callback (on the client's session thread). The load never stops for an error: a submit that
raises is recorded as a refused call.

Ownership: the load thread creates each call's slot and the callback finishes it, once;
``_pending_lock`` guards ``_pending`` (slots and tokens not yet final). ``Record._lock`` guards
its files; in the client, ``_kept_lock`` guards ``withheld``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokengate.shared.client import ClusterClient
from tokengate.shared.errors import TokenGateError
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.registry import TaskSpec
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.token import TaskToken

from benchmarks import chaos_tasks
from benchmarks.chaos_checks import Call
from benchmarks.faults2_rig import TASKS_DIR  # noqa: F401 - puts faultkit on sys.path
from tokengate import _backend

from faultkit import STATE_NAMES  # isort: skip

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


class Record:
    """The soak's record, appended to files in ``folder`` as it happens (see the module)."""

    NAMES = ("calls", "told", "accepted")

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._files = {name: open(folder / f"{name}.log", "a", encoding="utf-8")
                       for name in self.NAMES}

    def write(self, name: str, lines: list[str]) -> None:
        if lines:
            with self._lock:
                self._files[name].writelines(lines)

    def close(self) -> None:
        with self._lock:
            for handle in self._files.values():
                handle.close()

    def read(self) -> tuple[list[Call], dict[str, tuple[str, ...]], frozenset[str]]:
        """Calls that ended, outcomes told per id, acknowledged ids, as written so far."""
        with self._lock:
            for handle in self._files.values():
                handle.flush()
        calls = [_call(line) for line in self._lines("calls")]
        told: dict[str, list[str]] = {}
        for line in self._lines("told"):
            token_id, _, outcome = line.partition("\t")
            told.setdefault(token_id, []).append(outcome)
        return calls, {i: tuple(o) for i, o in told.items()}, frozenset(self._lines("accepted"))

    def _lines(self, name: str) -> list[str]:
        return (self.folder / f"{name}.log").read_text(encoding="utf-8").splitlines()


def _call(line: str) -> Call:
    seq, task, idempotent, token_id, submitted, outcome, value_ok = line.split("\t")
    return Call(int(seq), task, idempotent == "1", token_id, float(submitted), outcome,
                value_ok == "1")


def _call_line(call: Call) -> str:
    return (f"{call.seq}\t{call.task}\t{int(call.idempotent)}\t{call.token_id}\t"
            f"{call.submitted:.6f}\t{call.outcome}\t{int(call.value_ok)}\n")


class ChaosClient(ClusterClient):
    """The Python client, recording acks and pushed outcomes, withholding sampled receipts."""

    def __init__(self, *args: Any, record: Record, sample_rate: float, salt: str,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = record
        self._threshold = int(sample_rate * 10_000)
        self._salt = salt
        self.withholding = threading.Event()
        self._kept_lock = threading.Lock()
        self.withheld: dict[str, tuple[str, bytes]] = {}  # id -> (told, payload)

    def sampled(self, token_id: str) -> bool:
        return zlib.crc32(f"{self._salt}:{token_id}".encode()) % 10_000 < self._threshold

    def _on_reply(self, reply: pb.ClientReply) -> None:
        record = self.record
        record.write("accepted", [f"{token_id}\n" for token_id in reply.accepted])
        record.write("told", [f"{r.token_id}\t{told_name(r)}\n" for r in reply.results])
        if self.withholding.is_set():
            with self._kept_lock:
                for result in reply.results:
                    if result.token_id not in self.withheld and self.sampled(result.token_id):
                        self.withheld[result.token_id] = (told_name(result),
                                                          bytes(result.payload))
        super()._on_reply(reply)
        with self._lock:  # a rejected call still outstanding is offered again: no outcome
            told = [f"{rej.token_id}\trejected:{rej.error_type}\n" for rej in reply.rejected
                    if rej.token_id not in self._outstanding]
        record.write("told", told)

    def _take_received(self) -> list[str]:
        received = super()._take_received()
        with self._kept_lock:
            return [token_id for token_id in received if token_id not in self.withheld]

    def kept(self) -> dict[str, tuple[str, bytes]]:
        with self._kept_lock:
            return dict(self.withheld)


class Turns:
    """A backend that hands each call to the next of several clients in turn (only the load
    thread submits: ``_next`` is its own)."""

    def __init__(self, clients: Sequence[ClusterClient]) -> None:
        self.clients = tuple(clients)
        self._next = 0

    def submit(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: Any = None) -> TaskToken:
        client = self.clients[self._next % len(self.clients)]
        self._next += 1
        return client.submit(spec, args, kwargs, options)


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
    """Submits ``rate`` calls a second until :meth:`stop`; each call's end goes to the
    record."""

    def __init__(self, clients: Sequence[ChaosClient], runs_log: Path, *, rate: float,
                 seed: int) -> None:
        # One client is the backend itself (the soak as it always ran); several take turns.
        self.backend: ChaosClient | Turns = clients[0] if len(clients) == 1 else Turns(clients)
        self.record = clients[0].record
        self.runs_log = str(runs_log)
        self.rate = rate
        self._rng = random.Random(seed)
        self._made = 0
        self._pending_lock = threading.Lock()
        self._pending: dict[int, tuple[_Slot, TaskToken | None]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-load", daemon=True)
        self.refused = 0

    def start(self) -> None:
        _backend.install(self.backend)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        _backend.uninstall(self.backend)

    def made(self) -> int:
        return self._made

    def _loop(self) -> None:
        began, due_so_far = time.monotonic(), 0
        while not self._stop.wait(TICK):
            due = int((time.monotonic() - began) * self.rate) - due_so_far
            for _ in range(min(due, MAX_BATCH)):
                self._one()
            due_so_far += due  # a stall's backlog is skipped past MAX_BATCH, not replayed

    def _one(self) -> None:
        rng = self._rng
        task = rng.choices([t for t, _ in MIX], [w for _, w in MIX])[0]
        func, weight, idempotent = chaos_tasks.TASKS[task]
        seq, x = self._made, rng.randrange(1_000_000)
        self._made += 1
        ms = round(rng.uniform(*WORK_MS[weight]), 2)
        slot = _Slot(seq, task, idempotent, chaos_tasks.expected(weight, seq, x), time.time())
        with self._pending_lock:
            self._pending[seq] = (slot, None)
        try:
            token = func(self.runs_log, seq, x, ms)
        except Exception as exc:  # the load must go on; the call is recorded as refused
            if not isinstance(exc, TokenGateError):
                logger.exception("submitting call %d failed", seq)
            slot.outcome = f"refused:{type(exc).__name__}"
            self.refused += 1
            self._finish(slot)
            return
        slot.token_id = token.token_id
        with self._pending_lock:
            self._pending[seq] = (slot, token)
        token.add_done_callback(lambda t, s=slot: self._ended(t, s))

    def _ended(self, token: TaskToken, slot: _Slot) -> None:
        if token.state is TokenState.COMPLETED:
            slot.value_ok = token.result == slot.expected
            slot.outcome = "completed"
        else:
            slot.outcome = f"{token.state.value}:{token.error_type or '?'}"
        self._finish(slot)

    def _finish(self, slot: _Slot) -> None:
        with self._pending_lock:
            self._pending.pop(slot.seq, None)
        self.record.write("calls", [_call_line(_as_call(slot))])

    def outstanding(self) -> int:
        with self._pending_lock:
            return len(self._pending)

    def wait_all(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every submitted call to end; how many have not."""
        deadline = time.monotonic() + timeout
        with self._pending_lock:
            tokens = [token for _, token in self._pending.values() if token is not None]
        for token in tokens:
            token.wait(max(0.0, deadline - time.monotonic()))
        return self.outstanding()

    def unfinished(self) -> list[Call]:
        """The calls with no outcome (yet): in the record with an empty outcome."""
        with self._pending_lock:
            return [_as_call(slot) for slot, _ in self._pending.values()]


def _as_call(slot: _Slot) -> Call:
    return Call(slot.seq, slot.task, slot.idempotent, slot.token_id, slot.submitted,
                slot.outcome, slot.value_ok)
