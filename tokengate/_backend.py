"""Where decorated calls go: the embedded scheduler or a cluster connection.

Exactly one backend is current at a time. ``OperationsCoordinator.start()`` installs the
embedded one; ``tokengate.connect()`` installs a cluster client. Calling a decorated function
with neither raises :class:`NoBackend`.

A backend may also offer ``async submit_async(spec, args, kwargs, options) -> TaskToken``: the
awaitable submission behind ``await fn.submit_async(...)``, which returns once the call is
admitted (or parked within the backend's lead), waiting without blocking the event loop.
Both backends have it; for one without it, :func:`submit_async` runs the blocking ``submit``
on a thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol

from tokengate.shared.call_options import CallOptions
from tokengate.shared.errors import NoBackend
from tokengate.shared.registry import TaskSpec
from tokengate.shared.token import TaskToken


class Backend(Protocol):
    def submit(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: CallOptions | None = None) -> TaskToken:
        """Create a token for one call and hand it on; return it at once. ``options``
        (an idempotency key) may name the call: then the same key is the same token."""
        ...


_lock = threading.Lock()  # guards _stack
_stack: list[Backend] = []


def install(backend: Backend) -> None:
    with _lock:
        _stack.append(backend)


def uninstall(backend: Backend) -> None:
    with _lock:
        if backend in _stack:
            _stack.remove(backend)


def current() -> Backend:
    stack = _stack
    if not stack:
        raise NoBackend(
            "no TokenGate backend: start one with OperationsCoordinator().start() "
            "(embedded) or tokengate.connect('host:port', token=...) (cluster)"
        )
    return stack[-1]


async def submit_async(spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                       options: CallOptions | None = None) -> TaskToken:
    """Submit through the current backend from a coroutine (see ``ParkingLot.submit``)."""
    backend = current()
    method = getattr(backend, "submit_async", None)
    if method is None:
        return await asyncio.to_thread(backend.submit, spec, args, kwargs, options)
    token: TaskToken = await method(spec, args, kwargs, options)
    return token
