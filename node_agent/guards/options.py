"""Per-function guard options, set by the decorator and read by the guards.

``@task_token_guard(..., retries=3, spike_check=False)`` records a :class:`FunctionOptions`
here under the function's task name (``"<module>:<qualname>"``). Agents import the same modules,
so the same decoration registers the same options in every process that runs the function.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tokengate.node_agent.guards.retry import RetryPolicy, coerce_policy
from tokengate.shared.errors import ConfigurationError


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionOptions:
    """A function's own guard settings; None means "use the scheduler's default"."""

    retry: RetryPolicy | None = None
    spike_check: bool | None = None


DEFAULT_OPTIONS = FunctionOptions()

_options_lock = threading.Lock()  # guards _options
_options: dict[str, FunctionOptions] = {}


def make_options(retries: RetryPolicy | int | None = None,
                 spike_check: bool | None = None) -> FunctionOptions | None:
    """Validated options from a decorator's keywords; None when none were given."""
    if retries is None and spike_check is None:
        return None
    if spike_check is not None and not isinstance(spike_check, bool):
        raise ConfigurationError(f"spike_check must be True, False or None, got {spike_check!r}")
    return FunctionOptions(retry=coerce_policy(retries), spike_check=spike_check)


def set_function_options(name: str, options: FunctionOptions | None) -> None:
    with _options_lock:
        if options is None:
            _options.pop(name, None)
        else:
            _options[name] = options


def function_options(name: str) -> FunctionOptions:
    return _options.get(name, DEFAULT_OPTIONS)
