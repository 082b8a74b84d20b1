"""Decorated functions the guard integration tests run (importable by name for replay)."""

import threading
import time
import zlib

from tokengate.node_agent.guards.retry import RetryPolicy

from tokengate import task_token_guard

# Test-controlled state; one test at a time uses it (see reset()).
state_lock = threading.Lock()
attempt_times: dict[str, list[float]] = {}
order: list[str] = []
gates: dict[str, threading.Event] = {}
broken = threading.Event()


def reset() -> None:
    with state_lock:
        attempt_times.clear()
        order.clear()
        for event in gates.values():
            event.set()
        gates.clear()
    broken.clear()


def gate(name: str) -> threading.Event:
    with state_lock:
        return gates.setdefault(name, threading.Event())


@task_token_guard(operation_type="always_fails", tags={"weight": "light"})
def always_fails(i: int) -> int:
    raise ValueError(f"always_fails({i}) is broken")


@task_token_guard(operation_type="toggle", tags={"weight": "light"})
def toggle(i: int) -> int:
    if broken.is_set():
        raise ValueError(f"toggle({i}) while broken")
    return i * 2


@task_token_guard(operation_type="odd_fails", tags={"weight": "light"})
def odd_fails(i: int) -> int:
    if i % 2:
        raise ValueError(f"odd {i}")
    return i


@task_token_guard(operation_type="checksum", tags={"weight": "light"}, spike_check=True)
def checksum(blob: bytes, *, salt: int = 0) -> int:
    return zlib.crc32(blob) ^ salt


FLAKY_POLICY = RetryPolicy(max_attempts=4, base_delay=0.05, multiplier=2.0, max_delay=1.0,
                           jitter=0.0)


@task_token_guard(operation_type="flaky", tags={"weight": "light"}, retries=FLAKY_POLICY)
def flaky(key: str, failures: int, wait_for: str = "") -> int:
    """Fails with ConnectionError ``failures`` times, then returns its attempt number."""
    with state_lock:
        times = attempt_times.setdefault(key, [])
        times.append(time.monotonic())
        attempt = len(times)
        order.append(f"{key}#{attempt}")
    if wait_for and attempt == 1:
        gate(wait_for).wait(30)
    if attempt <= failures:
        raise ConnectionError(f"{key}: transient failure {attempt}")
    return attempt


@task_token_guard(operation_type="not_idempotent", tags={"weight": "light", "idempotent": False})
def not_idempotent(key: str) -> int:
    with state_lock:
        attempt_times.setdefault(key, []).append(time.monotonic())
    raise ConnectionError(f"{key}: would be retried if it were idempotent")


@task_token_guard(operation_type="marker", tags={"weight": "light"})
def marker(name: str, wait_for: str = "") -> str:
    with state_lock:
        order.append(name)
    if wait_for:
        gate(wait_for).wait(30)
    return name


@task_token_guard(operation_type="blob_len", tags={"weight": "light"})
def blob_len(blob: bytes) -> int:
    time.sleep(0.002)  # the workload: hold a worker briefly so queued work builds up
    return len(blob)


@task_token_guard(operation_type="held", tags={"weight": "heavy"})
def held(name: str) -> str:
    gate(name).wait(30)
    return name


@task_token_guard(operation_type="parent", tags={"weight": "light"})
def parent(children: int, size: int) -> int:
    """Submits children with large arguments from a worker thread and waits on them."""
    tokens = [blob_len(b"p" * size) for _ in range(children)]
    return sum(token.get(timeout=30) for token in tokens)


def guarded_coordinator(tmp_path, **options):
    """An embedded coordinator for the guard tests: 2 cores x 2 workers, files in tmp_path."""
    from tokengate import OperationsCoordinator

    options.setdefault("cores", 2)
    options.setdefault("workers_per_core", 2)
    options.setdefault("quarantine_dir", str(tmp_path / "quarantine"))
    options.setdefault("dump_dir", str(tmp_path / "dumps"))
    return OperationsCoordinator(**options)
