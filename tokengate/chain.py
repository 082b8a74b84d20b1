"""Chains: ordered steps, each receiving the previous step's result.

``chain(parse, enrich, store)(raw)`` submits ``parse(raw)`` at once; when it completes,
``enrich(<its result>)`` is submitted, and so on. Many chains run concurrently; within a chain
the steps run strictly in order. Continuations are submitted from the worker that finished the
previous step (never by a waiting thread), so a chain needs no thread of its own. In cluster
mode that is the client's session thread, where a submission never waits for the window (it
parks, see ``ClusterClient._must_not_wait``); a next step that cannot be submitted at all
fails the chain with that error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from tokengate import _backend
from tokengate.shared.errors import ConfigurationError, TokenGateError, TokenTimeout
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.registry import TaskSpec, spec_of
from tokengate.shared.token import TaskToken

logger = logging.getLogger(__name__)


class ChainHandle:
    """The running chain: its step tokens so far, and the final result via ``get``."""

    def __init__(self, specs: list[TaskSpec], backend: _backend.Backend) -> None:
        self._specs = specs
        self._backend = backend
        self.tokens: list[TaskToken] = []
        self._done = threading.Event()
        self._result: Any = None
        self._failed_token: TaskToken | None = None
        self._error: TokenGateError | None = None  # a next step that could not be submitted

    def _start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._submit_step(0, args, kwargs)

    def _submit_step(self, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        token = self._backend.submit(self._specs[index], args, kwargs)
        self.tokens.append(token)
        token.add_done_callback(lambda finished: self._on_step_done(index, finished))

    def _on_step_done(self, index: int, token: TaskToken) -> None:
        if token.state is not TokenState.COMPLETED:
            self._failed_token = token
            self._done.set()
        elif index + 1 == len(self._specs):
            self._result = token.result
            self._done.set()
        else:
            try:
                self._submit_step(index + 1, (token.result,), {})
            except TokenGateError as exc:  # refused (closed client, full lot): the chain fails
                logger.warning("chain step %d of %d not submitted: %s", index + 2,
                               len(self._specs), exc)
                self._error = exc
                self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def get(self, timeout: float | None = None) -> Any:
        """The last step's result, or the first failing step's error re-raised."""
        if not self._done.wait(timeout):
            raise TokenTimeout(
                f"chain not finished after {timeout}s ({len(self.tokens)} of "
                f"{len(self._specs)} steps submitted)"
            )
        if self._error is not None:
            raise self._error
        if self._failed_token is not None:
            return self._failed_token.get(0)
        return self._result


class Chain:
    """A reusable sequence of decorated functions; call it to start one run."""

    def __init__(self, steps: tuple[Callable[..., Any], ...]) -> None:
        if not steps:
            raise ConfigurationError("chain() needs at least one step")
        specs = []
        for step in steps:
            spec = spec_of(step)
            if spec is None:
                raise ConfigurationError(
                    f"chain steps must be @task_token_guard functions; {step!r} is not"
                )
            specs.append(spec)
        self.specs = specs

    def __call__(self, *args: Any, **kwargs: Any) -> ChainHandle:
        handle = ChainHandle(self.specs, _backend.current())
        handle._start(args, kwargs)
        return handle


def chain(*steps: Callable[..., Any]) -> Chain:
    return Chain(steps)
