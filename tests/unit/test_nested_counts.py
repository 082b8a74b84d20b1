"""The agent's count of nested tasks (pure bookkeeping: a stand-in runtime, no threads)."""

from __future__ import annotations

from tokengate.node_agent.nested import NestedTasks
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import TaskTags
from tokengate.shared.token import TaskToken


class _Runtime:
    """Hands back each new token unstarted, as the scheduler would a queued one."""

    def __init__(self) -> None:
        self.tokens: list[TaskToken] = []

    def submit(self, spec, args, kwargs, options=None):
        token = TaskToken(None, args, kwargs, operation_type="child", tags=TaskTags())
        self.tokens.append(token)
        return token


def _run(token: TaskToken) -> None:
    token.advance(TokenState.WAITING, TokenState.ADMITTED, TokenState.EXECUTING)


def test_counts_follow_each_nested_call_to_its_outcome():
    runtime = _Runtime()
    nested = NestedTasks(runtime)
    for i in range(4):
        nested.submit(None, (i,), {})
    assert nested.snapshot() == {"submitted": 4, "active": 4, "completed": 0, "failed": 0,
                                 "killed": 0}
    done, failed, killed, _running = runtime.tokens
    _run(done)
    done.set_result(1)
    _run(failed)
    failed.set_error(ValueError("child failed"))
    killed.advance(TokenState.WAITING)
    assert killed.kill()
    assert nested.snapshot() == {"submitted": 4, "active": 1, "completed": 1, "failed": 1,
                                 "killed": 1}
