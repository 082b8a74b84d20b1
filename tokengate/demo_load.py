"""``tokengate up --demo``: a mixed workload kept running, so every dashboard panel moves.

:class:`DemoLoad` owns one thread that submits waves of the seed's mixed operations
(:data:`tokengate.workloads.MIXED_OPERATIONS`) through a cluster client, waits for each wave,
pauses, and goes on until stopped. It is a closed loop: however slow the cluster, at most
one wave is in flight, so the demo never floods it.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from tokengate.shared.errors import TokenGateError
from tokengate.shared.registry import SPEC_ATTRIBUTE
from tokengate.workloads import MIXED_OPERATIONS

logger = logging.getLogger(__name__)

WAVE_SIZE = 22
PAUSE = 0.25  # seconds between waves: a lively but light load on a laptop


class DemoLoad:
    """Waves of mixed operations through ``client`` until :meth:`stop`."""

    def __init__(self, client: Any, *, wave_size: int = WAVE_SIZE, pause: float = PAUSE) -> None:
        self.client = client
        self.wave_size = wave_size
        self.pause = pause
        self.waves = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tg-demo-load", daemon=True)

    def start(self) -> DemoLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._wave()
            except TokenGateError as exc:  # the gateway went away: try again shortly
                logger.warning("demo wave not submitted: %s", exc)
                self._stop.wait(2.0)
            self.waves += 1
            self._stop.wait(self.pause)

    def _wave(self) -> None:
        choose = random.Random(self.waves).choice
        tokens = []
        for _ in range(self.wave_size):
            func, argument = choose(MIXED_OPERATIONS)
            spec = getattr(func, SPEC_ATTRIBUTE)
            tokens.append(self.client.submit(spec, (argument(self.waves),), {}))
        for token in tokens:
            if not token.wait(60) or token.error_type:
                self.failures += 1
