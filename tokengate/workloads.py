"""A representative mixed workload, as in the seed's mixed orchestrator.

Module-level decorated functions (so process mode and agents can import them by name), used
by ``tokengate demo`` and the benchmarks.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tokengate.decorator import task_token_guard
from tokengate.shared import envconfig
from tokengate.shared.envconfig import setting


@dataclass(frozen=True, kw_only=True)
class DemoSettings:
    """Where the demo workload's storage tasks write."""

    demo_dir: str = setting(factory=tempfile.gettempdir, doc="folder the demo's storage tasks "
                            "write into (a tokengate-demo folder inside it)")


OUTPUT_DIR = Path(envconfig.from_env(DemoSettings).demo_dir) / "tokengate-demo"


@task_token_guard(operation_type="trivial_operation", tags={"weight": "light"})
def trivial_operation(value: int) -> int:
    return value + 1


@task_token_guard(operation_type="simple_operation", tags={"weight": "light"})
def simple_operation(n: int) -> int:
    return sum(range(n))


@task_token_guard(operation_type="string_operation", tags={"weight": "light"})
def string_operation(length: int) -> int:
    text = "test" * length
    return len(text.upper().replace("T", "X").split("X"))


@task_token_guard(operation_type="moderate_operation", tags={"weight": "medium"})
def moderate_operation(size: int) -> int:
    doubled = [i * 2 for i in range(size)]
    return sum(x for x in doubled if x % 3 == 0)


@task_token_guard(operation_type="fibonacci_operation", tags={"weight": "medium"})
def fibonacci_operation(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a % 1_000_000_007


@task_token_guard(operation_type="prime_operation", tags={"weight": "medium"})
def prime_operation(limit: int) -> int:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit + 1, i)))
    return sum(sieve)


@task_token_guard(operation_type="complex_operation", tags={"weight": "heavy"})
def complex_operation(n: int) -> float:
    return sum(math.sqrt(i) * math.sin(i) for i in range(n))


@task_token_guard(operation_type="heavy_operation", tags={"weight": "heavy"})
def heavy_operation(seconds: float) -> int:
    """Busy pure-Python work for about ``seconds``."""
    end = time.perf_counter() + seconds
    steps = 0
    while time.perf_counter() < end:
        steps += 1
    return steps


@task_token_guard(operation_type="cpu_spin", tags={"weight": "heavy", "execution": "process"})
def cpu_spin(iterations: int) -> int:
    """A fixed amount of pure-Python CPU work, run in the core's worker process."""
    acc = 0
    for i in range(iterations):
        acc = (acc * 31 + i) % 1_000_003
    return acc


@task_token_guard(operation_type="write_json_fast",
                  tags={"weight": "medium", "storage_speed": "FAST"})
def write_json_fast(index: int) -> str:
    path = OUTPUT_DIR / f"record_{index % 64}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"index": index, "at": time.time()}), encoding="utf-8")
    return str(path)


@task_token_guard(operation_type="write_blob_moderate",
                  tags={"weight": "medium", "storage_speed": "MODERATE"})
def write_blob_moderate(index: int, size_kb: int = 16) -> int:
    path = OUTPUT_DIR / f"blob_{index % 64}.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * (size_kb * 1024))
    return size_kb * 1024


@task_token_guard(operation_type="append_log_slow",
                  tags={"weight": "light", "storage_speed": "SLOW"})
def append_log_slow(index: int) -> int:
    path = OUTPUT_DIR / "demo.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"entry {index}\n")
    return index


# (function, argument for wave number i) for the mixed orchestrator.
MIXED_OPERATIONS = (
    (trivial_operation, lambda i: i),
    (simple_operation, lambda i: 2_000 + i % 100),
    (string_operation, lambda i: 200 + i % 50),
    (moderate_operation, lambda i: 5_000 + i % 500),
    (fibonacci_operation, lambda i: 500 + i % 200),
    (prime_operation, lambda i: 20_000 + i % 1_000),
    (complex_operation, lambda i: 5_000 + i % 500),
    (heavy_operation, lambda i: 0.002),
    (write_json_fast, lambda i: i),
    (write_blob_moderate, lambda i: i),
    (append_log_slow, lambda i: i),
)
