"""The token's two hot-path steps, ``admit`` and ``claim``, test its state against fixed
sets instead of consulting the lifecycle table on every call: from every state, each move
they make must be one the table allows (README, Architecture)."""

from __future__ import annotations

import itertools

import pytest
from tokengate.shared.lifecycle import TokenState, can_transition
from tokengate.shared.tags import TaskTags
from tokengate.shared.token import TaskToken

S = TokenState


def token_in(state: TokenState) -> TaskToken[None]:
    token: TaskToken[None] = TaskToken(None, (), {}, operation_type="op", tags=TaskTags())
    token.state = state  # placed directly: the subject is the step taken from here
    return token


@pytest.mark.parametrize("state", list(S), ids=lambda s: s.value)
def test_admit_moves_only_along_the_table(state):
    token = token_in(state)
    moved = token.admit()
    path = [S.CREATED, S.WAITING, S.ADMITTED] if state is S.CREATED else [state, S.ADMITTED]
    legal = all(can_transition(a, b) for a, b in itertools.pairwise(path))
    assert moved == (state in (S.CREATED, S.WAITING))
    if moved:
        assert legal and token.state is S.ADMITTED
        assert all(s in token.timestamps for s in path[1:])
    else:
        assert token.state is state


@pytest.mark.parametrize("state", list(S), ids=lambda s: s.value)
def test_claim_moves_only_along_the_table(state):
    token = token_in(state)
    moved = token.claim(core_id=1, worker_id="w")
    assert moved == (state in (S.WAITING, S.ADMITTED))
    if moved:
        assert can_transition(state, S.EXECUTING) and token.state is S.EXECUTING
    else:
        assert token.state is state


def test_a_remote_token_is_never_claimed_here():
    token = token_in(S.ADMITTED)
    token.remote = True
    assert not token.claim() and token.state is S.ADMITTED
