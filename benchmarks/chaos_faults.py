"""The chaos thread: every 4-10 s at random, one fault against the soak's cluster.

Faults (``FAULTS``; ``--faults`` picks a subset):

- ``agent-kill``: SIGKILL an agent, start it again under its name;
- ``agent-stop``: SIGSTOP an agent for the heartbeat timeout plus 1-3 s, then SIGCONT;
- ``gateway-kill``: SIGKILL a gateway, start it again on its port (with its shard); with
  several gateways each is killed in turn (a, b, a, ...: no random choice), and kept down
  ``GATEWAY_DOWN`` heartbeat timeouts plus 1-3 s, so that its agents and clients move to
  another gateway, which adopts its shard (the event's ``moved``: seconds until its agents
  were connected there), and back when it is started again;
- ``redis-kill``: SIGKILL Redis, start it again on its port from its append-only file;
- ``redis-stop``: SIGSTOP Redis for 2-5 s, then SIGCONT;
- ``drain``: drain one node (operator ``drain(node=...)``) for 2-5 s, then resume it.

One fault at a time, each finished before the next (a frozen process is always continued, a
killed one always restarted, a drained node always resumed: retried until it answers, and at
the latest by :meth:`Chaos.stop`). Between faults the thread also restarts any process that
died on its own and records that as a ``crash``. Every event goes to ``chaos.log`` with its
wall-clock time and its offset from the start, and to :attr:`Chaos.events`; the chaos thread
is their only writer.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tokengate.shared.errors import TokenGateError

from benchmarks.chaos_checks import Event
from benchmarks.chaos_rig import ChaosRig

logger = logging.getLogger(__name__)

FAULTS = ("agent-kill", "agent-stop", "gateway-kill", "redis-kill", "redis-stop", "drain")
INTERVAL = (4.0, 10.0)       # seconds between faults
AGENT_STOP_EXTRA = (1.0, 3.0)  # seconds an agent stays stopped past the heartbeat timeout
REDIS_STOP = (2.0, 5.0)
DRAIN_FOR = (2.0, 5.0)
RESUME_TRIES = 30.0          # seconds to keep asking for a resume that fails
GATEWAY_DOWN = 2             # heartbeat timeouts a gateway stays down (several gateways)
GATEWAY_DOWN_EXTRA = (1.0, 3.0)


class Chaos:
    """One thread doing one random fault every ``INTERVAL`` seconds until :meth:`stop`."""

    def __init__(self, rig: ChaosRig, log_path: Path, *, rng: random.Random,
                 faults: tuple[str, ...] = FAULTS, started: float | None = None) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown or not faults:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {', '.join(FAULTS)}")
        self.rig = rig
        self.rng = rng
        self.faults = faults
        self.started = started or time.time()
        self.events: list[Event] = []
        self.unresumed: set[str] = set()  # nodes whose resume has not been accepted yet
        self._gateway_kills = 0  # the next gateway-kill takes rig.gateways[this % count]
        self._moved: float | None = None  # the current fault's Event.moved
        self._log_path = log_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos", daemon=True)
        self._actions: dict[str, Callable[[], tuple[str, int, str]]] = {
            "agent-kill": self._agent_kill, "agent-stop": self._agent_stop,
            "gateway-kill": self._gateway_kill, "redis-kill": self._redis_kill,
            "redis-stop": self._redis_stop, "drain": self._drain,
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        """Stop after the current fault (which finishes: continued, restarted, resumed);
        then restart whatever died and resume what is still drained."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("the chaos thread did not finish its fault within %.0fs", timeout)
            return
        self._heal()

    def _loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(*INTERVAL)):
            kind = self.rng.choice(self.faults)
            began, self._moved = time.time(), None
            try:
                target, pid, note = self._actions[kind]()
            except Exception as exc:  # the tool's own failure: logged, and the chaos goes on
                logger.exception("chaos %s failed", kind)
                target, pid, note = "?", 0, f"TOOL ERROR {type(exc).__name__}: {exc}"
            self._record(Event(kind, target, pid, began, time.time(), note, self._moved))
            self._heal()

    def _heal(self) -> None:
        for role, pid, note in self.rig.revive():
            now = time.time()
            self._record(Event("crash", role, pid, now, now, f"died unprompted; {note}"))
        for node in sorted(self.unresumed):
            if self._resume(node, tries=RESUME_TRIES):
                self._record(Event("resume", node, self.rig.pid(node), time.time(),
                                   time.time(), "late resume accepted"))

    def _record(self, event: Event) -> None:
        self.events.append(event)
        when = datetime.fromtimestamp(event.start).isoformat(timespec="milliseconds")
        line = (f"{when} +{event.start - self.started:.2f}s {event.kind:<12} "
                f"{event.target:<8} pid {event.pid:<7} {event.end - event.start:5.2f}s  "
                f"{event.note}")
        logger.info("chaos: %s", line)
        with open(self._log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    # -- the faults: each returns (target, pid, note) ---------------------------------------

    def _agent_kill(self) -> tuple[str, int, str]:
        name = self.rng.choice(self.rig.agents)
        pid, note = self.rig.kill_and_restart(name)
        return name, pid, f"now pid {self.rig.pid(name)}; {note}"

    def _agent_stop(self) -> tuple[str, int, str]:
        name = self.rng.choice(self.rig.agents)
        seconds = self.rig.heartbeat_timeout + self.rng.uniform(*AGENT_STOP_EXTRA)
        return name, *self._freeze(name, seconds)

    def _gateway_kill(self) -> tuple[str, int, str]:
        gateways = self.rig.gateways
        role = gateways[self._gateway_kills % len(gateways)]
        self._gateway_kills += 1
        if len(gateways) == 1:
            pid, note = self.rig.kill_and_restart(role)
            return role, pid, note
        down = GATEWAY_DOWN * self.rig.heartbeat_timeout + self.rng.uniform(*GATEWAY_DOWN_EXTRA)
        began = time.monotonic()
        pid = self.rig.kill(role)
        moved = self.rig.wait_moved(role, down)
        time.sleep(max(0.0, began + down - time.monotonic()))  # the whole span: the fault
        note = self.rig.restart(role)
        self._moved = float("inf") if moved is None else moved
        agents = ",".join(self.rig.homed(role)) or "no agents"
        where = (f"{agents} at another gateway after {moved:.1f}s" if moved is not None
                 else f"{agents} NOT at another gateway")
        return role, pid, f"down {down:.1f}s, {where}; {note}"

    def _redis_kill(self) -> tuple[str, int, str]:
        pid, note = self.rig.kill_and_restart("redis")
        return "redis", pid, note

    def _redis_stop(self) -> tuple[str, int, str]:
        return "redis", *self._freeze("redis", self.rng.uniform(*REDIS_STOP))

    def _freeze(self, role: str, seconds: float) -> tuple[int, str]:
        pid = self.rig.signal(role, signal.SIGSTOP)
        if not pid:
            return 0, "not running: nothing stopped"
        try:
            time.sleep(seconds)  # the whole span, even when stopping: it is the fault
        finally:
            self.rig.signal(role, signal.SIGCONT)
        return pid, f"stopped {seconds:.1f}s"

    def _drain(self) -> tuple[str, int, str]:
        name = self.rng.choice(self.rig.agents)
        seconds = self.rng.uniform(*DRAIN_FOR)
        try:
            said = self.rig.drain(name, reason="chaos soak")
        except TokenGateError as exc:
            return name, self.rig.pid(name), f"drain refused: {exc}"
        self.unresumed.add(name)
        time.sleep(seconds)
        resumed = self._resume(name, tries=RESUME_TRIES)
        return name, self.rig.pid(name), (f"drained {seconds:.1f}s ({said}); "
                                          + ("resumed" if resumed else "RESUME NOT ACCEPTED"))

    def _resume(self, name: str, *, tries: float) -> bool:
        deadline = time.monotonic() + tries
        while True:
            try:
                self.rig.resume(name)
            except TokenGateError as exc:
                if time.monotonic() > deadline:
                    logger.error("resume of %s not accepted: %s", name, exc)
                    return False
                time.sleep(1.0)
                continue
            self.unresumed.discard(name)
            return True
