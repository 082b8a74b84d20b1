"""Tasks for the cluster example; agents run them with ``--include shapes``."""

from __future__ import annotations

import math

from tokengate.decorator import task_token_guard


@task_token_guard(operation_type="area", tags={"weight": "light"})
def area(radius: float) -> float:
    return math.pi * radius * radius


@task_token_guard(operation_type="primes", tags={"weight": "heavy"})
def primes_below(n: int) -> int:
    """CPU-bound: the agents run these in parallel, one per core of the cluster."""
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(sieve[i * i::i]))
    return sum(sieve)
