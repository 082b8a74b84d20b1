"""The Celery app of the harness: the shared task bodies as Celery tasks, Redis as broker and
result backend (``TOKENGATE_BENCH_CELERY_URL``, set by the harness before importing this)."""

from __future__ import annotations

import os

from celery import Celery

from benchmarks import peer_tasks

URL = os.environ.get("TOKENGATE_BENCH_CELERY_URL", "redis://127.0.0.1:6379/1")

app = Celery("tokengate_bench", broker=URL, backend=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=600,
    task_default_queue="bench",
)

noop = app.task(name="bench.noop")(peer_tasks.noop)
spin = app.task(name="bench.spin")(peer_tasks.spin)
nap = app.task(name="bench.nap")(peer_tasks.nap)
mixed = app.task(name="bench.mixed")(peer_tasks.mixed)
