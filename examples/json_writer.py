"""The seed's JSON-file writer, on TokenGate: ten medium tasks on MODERATE storage.

Run it in a scratch folder: it writes output_0.json .. output_9.json there.
"""

import asyncio
import json
import random
import time

from tokengate import OperationsCoordinator, task_token_guard


@task_token_guard(
    operation_type="json_file_moderate",
    # weight picks the cores; storage_speed caps concurrent writers (MODERATE: 25).
    tags={"weight": "medium", "storage_speed": "MODERATE"},
)
def create_json_file(index: int) -> dict:
    """Pretend to prepare a record for half a second, then write it as JSON."""
    record = {
        "index": index,
        "random_value": random.randint(0, 100_000),
        "timestamp": time.time(),
        "message": f"simulated JSON file number {index}",
    }
    time.sleep(0.5)
    with open(f"output_{index}.json", "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    return record


async def main() -> None:
    # The decorated function stays a plain def; an asyncio program may still submit to it.
    coordinator = OperationsCoordinator()
    coordinator.start()
    try:
        for index in range(10):
            create_json_file(index)
    finally:
        coordinator.stop()  # lets every admitted token finish first


if __name__ == "__main__":
    asyncio.run(main())
