"""The Dramatiq actors of the harness: the shared task bodies, a Redis broker and the Results
middleware on Redis (``TOKENGATE_BENCH_DRAMATIQ_URL``, set by the harness before importing)."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

from benchmarks import peer_tasks

URL = os.environ.get("TOKENGATE_BENCH_DRAMATIQ_URL", "redis://127.0.0.1:6379/2")

broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)

_options = {"store_results": True, "max_retries": 0, "queue_name": "bench"}
noop = dramatiq.actor(peer_tasks.noop, actor_name="bench_noop", **_options)
spin = dramatiq.actor(peer_tasks.spin, actor_name="bench_spin", **_options)
nap = dramatiq.actor(peer_tasks.nap, actor_name="bench_nap", **_options)
mixed = dramatiq.actor(peer_tasks.mixed, actor_name="bench_mixed", **_options)
