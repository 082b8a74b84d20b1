"""The seed's series-saturation demo: more long heavy tasks than workers, on purpose.

Submission returns at once; the first tokens resolve after about one task duration and the
later ones wait in their mailboxes, so resolution times spread out: backpressure made visible.
"""

import math
import os
import time

from tokengate import OperationsCoordinator, task_token_guard

BURST_SIZE = 20
DURATION_PER_TASK = float(os.environ.get("SERIES_DURATION", "1.0"))


@task_token_guard(operation_type="series_long", tags={"weight": "heavy"})
def series_long(duration: float = 2.0):
    """Keep a worker busy for about ``duration`` seconds of arithmetic."""
    deadline = time.monotonic() + duration
    acc, step = 2.0, 0
    while time.monotonic() < deadline:
        acc = math.sqrt(abs(math.cos(acc))) + math.log(step + 2)
        step += 1
    return round(acc, 6)


def run_series_saturation_demo():
    coordinator = OperationsCoordinator()
    coordinator.start()
    print("=" * 70)
    print("SERIES SATURATION: Intentional pool pressure")
    print("=" * 70)
    print(f"Submitting {BURST_SIZE} x {DURATION_PER_TASK}s tasks.")
    try:
        submitted = []
        for _ in range(BURST_SIZE):
            began = time.monotonic()
            submitted.append((series_long(DURATION_PER_TASK), began))
        resolved = []
        for token, began in submitted:
            token.get(timeout=60)
            resolved.append(time.monotonic() - began)
        print(f" Earliest resolution: {min(resolved):.3f}s")
        print(f" Latest resolution: {max(resolved):.3f}s")
        print(f" Spread (backpressure window): {max(resolved) - min(resolved):.3f}s")
        print("SERIES SATURATION PASSED - backpressure observed, no failures.")
        return resolved
    finally:
        coordinator.stop()


if __name__ == "__main__":
    run_series_saturation_demo()
