"""Dask distributed: a ``LocalCluster`` of 2 worker processes x 16 threads (32 slots), its
scheduler in this process (as ``LocalCluster`` runs it), ``client.submit(fn, pure=False)``.
"""

from __future__ import annotations

import logging
from typing import Any

from benchmarks import peer_tasks
from benchmarks.systems.base import Context, System

WORKERS = 2


class DaskSystem(System):
    name = "dask"

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.cluster: Any = None
        self.client: Any = None

    def start(self) -> None:
        from dask.distributed import Client, LocalCluster

        logging.getLogger("distributed").setLevel(logging.ERROR)  # its INFO lines, per event
        self.cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=self.slots // WORKERS,
                                    processes=True, dashboard_address=None,
                                    silence_logs=logging.ERROR, worker_dashboard_address=None)
        self.client = Client(self.cluster)

    def stop(self) -> None:
        # Closing with tasks still queued (the flood's overrun) makes its scheduler log a
        # CRITICAL line per key it can no longer report: not news.
        logging.getLogger("distributed").setLevel(logging.CRITICAL + 1)
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def version(self) -> str:
        import distributed

        return f"distributed {distributed.__version__}"

    def setup(self) -> str:
        return (f"`LocalCluster(n_workers={WORKERS}, threads_per_worker="
                f"{self.slots // WORKERS}, processes=True)` (scheduler in the client "
                "process), `client.submit(fn, pure=False)`, `future.result()`")

    def _submit(self, fn: Any, *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def noop(self) -> Any:
        return self._submit(peer_tasks.noop)

    def spin(self, iterations: int) -> Any:
        return self._submit(peer_tasks.spin, iterations)

    def nap(self, seconds: float) -> Any:
        return self._submit(peer_tasks.nap, seconds)

    def mixed(self, index: int, argument: float) -> Any:
        return self._submit(peer_tasks.mixed, index, argument)

    def result(self, handle: Any, timeout: float) -> Any:
        return handle.result(timeout=timeout)

    def abandon(self, handles: Any) -> None:
        self.client.cancel([h for h in handles if not h.done()])
