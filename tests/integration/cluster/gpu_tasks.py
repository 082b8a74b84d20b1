"""Tasks only some test agents include (``--include gpu_tasks``); some need agent labels."""

from __future__ import annotations

from tokengate.decorator import task_token_guard


@task_token_guard(operation_type="on_a100", tags={"weight": "light",
                                                  "requires": {"gpu": "a100"}})
def on_a100(tag: int = 0) -> int:
    return tag


@task_token_guard(operation_type="on_h100", tags={"weight": "light",
                                                  "requires": {"gpu": "h100"}})
def on_h100(tag: int = 0) -> int:
    return tag


@task_token_guard(operation_type="gpu_only", tags={"weight": "light"})
def gpu_only(tag: int = 0) -> int:
    """No labels needed, but only agents that include this module have it."""
    return tag
