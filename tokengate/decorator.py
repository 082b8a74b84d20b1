"""``@task_token_guard``: calls of a plain function become task tokens."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from tokengate import _backend
from tokengate.node_agent.guards.options import make_options, set_function_options
from tokengate.node_agent.guards.retry import RetryPolicy
from tokengate.node_agent.procpool import function_reference
from tokengate.shared.call_options import CallOptions
from tokengate.shared.errors import AsyncFunctionRefused, ConfigurationError, WorkerProcessError
from tokengate.shared.registry import SPEC_ATTRIBUTE, TaskSpec, register, task_name
from tokengate.shared.tags import ExecutionMode, parse_tags
from tokengate.shared.token import TaskToken

P = ParamSpec("P")
R = TypeVar("R")


def task_token_guard(
    operation_type: str | Callable[..., Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    retries: RetryPolicy | int | None = None,
    spike_check: bool | None = None,
) -> Any:
    """Decorate a plain ``def`` so that calling it returns a :class:`TaskToken` at once.

    ``operation_type`` labels the work for tracking (default: the function's name); ``tags``
    are checked here, at decoration, and an unknown key or value raises ``InvalidTags``
    naming the valid ones. ``async def`` functions are refused: the token system runs them
    on worker threads, so they must be plain functions.

    Guard options: ``retries`` (a :class:`RetryPolicy`, or how many retries of a transient
    error; default: the policy of the function's complexity level) and ``spike_check``
    (True/False: judge this function's calls for spikes whatever the coordinator's
    ``spike_detection``; None follows it).

    From a coroutine, ``await fn.submit_async(*args)`` returns the token once the call is
    admitted, or parked behind fewer than ``submit_lead`` calls (backpressure for the
    coroutine, never for its event loop); a plain call made
    on an event loop's thread returns its token at once and the call waits, parked, for
    room. ``await token`` gives the result.
    """
    if callable(operation_type):  # used bare: @task_token_guard
        return task_token_guard()(operation_type)
    parsed = parse_tags(tags)
    guard_options = make_options(retries, spike_check)

    def decorate(func: Callable[P, R]) -> Callable[P, TaskToken[R]]:
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            raise AsyncFunctionRefused(
                f"{func.__qualname__} is 'async def'; @task_token_guard needs a plain 'def' "
                "function (TokenGate runs it on a worker thread and gives you the token)"
            )
        if not callable(func):
            raise ConfigurationError(f"@task_token_guard decorates functions, not {func!r}")
        if parsed.execution is ExecutionMode.PROCESS:
            try:
                function_reference(func)
            except WorkerProcessError as exc:
                raise ConfigurationError(str(exc)) from None
        spec = TaskSpec(
            name=task_name(func),
            operation_type=operation_type or func.__name__,
            tags=parsed,
            func=func,
        )
        register(spec)
        set_function_options(spec.name, guard_options)

        @functools.wraps(func)
        def submit_call(*args: P.args, **kwargs: P.kwargs) -> TaskToken[R]:
            return _backend.current().submit(spec, args, kwargs)

        async def submit_async(*args: P.args, **kwargs: P.kwargs) -> TaskToken[R]:
            """Submit from a coroutine: return the token once the call is admitted (or parked
            within ``submit_lead``); the coroutine waits for room, the event loop does not."""
            return await _backend.submit_async(spec, args, kwargs)

        submit_async.__qualname__ = f"{func.__qualname__}.submit_async"
        setattr(submit_call, "submit_async", submit_async)  # noqa: B010 - a function attribute
        setattr(submit_call, SPEC_ATTRIBUTE, spec)
        submit_call.options = _options_of(spec)  # type: ignore[attr-defined]
        return submit_call

    return decorate


# -- per-call options: fn.options(key=...)(*args) ---------------------------------------------


def _options_of(spec: TaskSpec) -> Callable[..., Callable[..., TaskToken[Any]]]:
    def options(*, key: str | None = None) -> Callable[..., TaskToken[Any]]:
        """``fn.options(key="order-42")(*args)``: this call carries an idempotency key; the
        same key again is the same token (its id and outcome), not a second run."""
        call_options = CallOptions(key=key)  # a bad key raises here, before any call

        def submit_with_options(*args: Any, **kwargs: Any) -> TaskToken[Any]:
            return _backend.current().submit(spec, args, kwargs, call_options)

        async def submit_async(*args: Any, **kwargs: Any) -> TaskToken[Any]:
            return await _backend.submit_async(spec, args, kwargs, call_options)

        submit_with_options.submit_async = submit_async  # type: ignore[attr-defined]
        return submit_with_options

    return options
