"""Frame sizes: every batched frame stays far below gRPC's message limit.

Frames are filled until they hold ``FRAME_SOFT_LIMIT`` bytes of payload (or their item cap);
the item that crosses the mark still goes in, so a frame is at most the soft limit plus one
payload (``DEFAULT_MAX_PAYLOAD``), well under ``shared.channel.MAX_MESSAGE_BYTES``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

FRAME_SOFT_LIMIT = 8 * 1024 * 1024
ITEM_OVERHEAD = 96  # ids, names and field tags of one item, roughly


def task_bytes(item: Any) -> int:
    """Approximate wire size of a TaskItem (cheap: no serialization)."""
    return len(item.payload) + ITEM_OVERHEAD


def result_bytes(item: Any) -> int:
    """Approximate wire size of a ResultItem (cheap: no serialization)."""
    return len(item.payload) + len(item.traceback) + ITEM_OVERHEAD


def split(items: Sequence[T], limit: int = FRAME_SOFT_LIMIT, count: int = 1000,
          ) -> Iterator[list[T]]:
    """Consecutive chunks of at most ``count`` TaskItems and about ``limit`` bytes each."""
    chunk: list[T] = []
    size = 0
    for item in items:
        chunk.append(item)
        size += task_bytes(item)
        if size >= limit or len(chunk) >= count:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
