"""The seed's ``async def main()`` on TokenGate, then what it promised: awaiting tokens.

Run it in a scratch folder: it writes output_0.json .. output_19.json there. The first loop is
the seed's, as written (a plain decorated call from a coroutine returns its token at once and
never blocks the loop); the second submits with backpressure and awaits the results while a
heartbeat coroutine keeps running on the same loop.
"""

import asyncio
import itertools
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
    """Prepare a record for half a second (a stand-in for real work), then write it."""
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


async def heartbeat(beats: list[float], stop: asyncio.Event) -> None:
    """Beat every 10 ms; a blocked loop would show as missing beats."""
    while not stop.is_set():
        beats.append(time.perf_counter())
        await asyncio.sleep(0.01)


async def main() -> None:
    coordinator = OperationsCoordinator()
    coordinator.start()
    beats: list[float] = []
    stop = asyncio.Event()
    beating = asyncio.create_task(heartbeat(beats, stop))
    try:
        # Simulate submitting multiple tasks (the seed's loop, unchanged).
        for i in range(10):
            create_json_file(i)
        # Submit with backpressure (the coroutine waits for room, the loop does not),
        # then await the results.
        tokens = [await create_json_file.submit_async(i) for i in range(10, 20)]
        records = await asyncio.gather(*tokens)
        print(f"awaited {len(records)} records: indexes {[r['index'] for r in records]}")
    finally:
        stop.set()
        await beating
        coordinator.stop()  # lets every admitted token finish first
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    print(f"heartbeat: {len(beats)} beats, longest gap {max(gaps, default=0) * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
