"""Which ledger step moves a token from which state to which: the cluster's state table.

Every Lua script moves tokens only along these rows, in :mod:`tokengate.shared.lifecycle`'s
names, and the rows are checked where the moves happen: :func:`lua_prelude` turns a step's row
into the Lua loaded in front of its script, whose ``move_token`` is the one place a script
writes a token's state; it refuses a move the row does not list (an error naming
:data:`ILLEGAL`, which the ledger raises as
:class:`~tokengate.shared.errors.IllegalTransition`). ``docs/cluster.md`` shows the same
table and a test checks the ledger against it. A report from an agent (start, complete) is
applied only when the token is still held by that agent at that attempt: the fence that keeps
a lost agent's late reports, or a resent frame, from changing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokengate.gateway.ledger.schema import Field
from tokengate.shared.lifecycle import TokenState, can_transition

W, A, E = TokenState.WAITING, TokenState.ADMITTED, TokenState.EXECUTING
C, F, K = TokenState.COMPLETED, TokenState.FAILED, TokenState.KILLED


Move = tuple[TokenState | None, TokenState | None]  # (None, x): new; (x, None): deleted


@dataclass(frozen=True, slots=True)
class Step:
    """One ledger step and every move it may make."""

    script: str
    moves: tuple[Move, ...]
    what: str

    @property
    def sources(self) -> tuple[TokenState, ...]:
        return tuple(dict.fromkeys(s for s, _ in self.moves if s is not None))


STEPS: tuple[Step, ...] = (
    Step("submit", ((None, W), (None, A)),
         "a new token waits, or goes straight to an agent with credit"),
    Step("claim", ((W, A),), "the dispatcher gives waiting tokens to an agent"),
    Step("start", ((A, E),), "the holding agent reports that this attempt began"),
    Step("complete", ((A, C), (A, F), (A, K), (E, C), (E, F), (E, K)),
         "the holding agent reports the outcome of this attempt (KILLED: it never started, "
         "or it was cancelled while running and stopped)"),
    Step("requeue", ((A, W), (E, W), (A, F), (E, F)),
         "the holding agent was lost, or the tokens never reached it: back to the front of "
         "the queue (attempt + 1 after a loss), or FAILED (AgentLost) if they may not run "
         "again"),
    Step("join", ((A, W), (E, W), (A, F), (E, F)),
         "an agent registers: what it should hold but does not is requeued, and a new process "
         "under its name inherits nothing (its predecessor's tokens are requeued as lost)"),
    Step("kill", ((W, K),), "an operator kills a waiting token (a held one is forwarded: its "
         "agent kills it if queued, or asks its running call to stop)"),
    Step("expire", ((W, F),),
         "no live agent has the task or labels of a waiting token past the placement timeout: "
         "FAILED (PlacementTimeout)"),
    Step("forget", ((C, None), (F, None), (K, None)),
         "the client has the result: the token is deleted"),
)

BY_SCRIPT = {step.script: step for step in STEPS}


def allowed(script: str, source: TokenState | None, target: TokenState | None) -> bool:
    """Whether ``script`` may move a token from ``source`` (None: new) to ``target``
    (None: deleted)."""
    return (source, target) in BY_SCRIPT[script].moves


ILLEGAL = "ILLEGAL_TRANSITION"  # how a script's refusal starts: "<ILLEGAL> step from to id"
NEW, DELETED = "new", "deleted"  # a move's missing ends, in the refusal's words


def _lua_rows(script: str) -> str:
    """``script``'s moves as a Lua table: from -> {to -> true}; "" for new, and deleted."""
    rows: dict[str, list[str]] = {}
    for source, target in BY_SCRIPT[script].moves:
        rows.setdefault("" if source is None else source.value, []).append(
            "" if target is None else target.value)
    return "{" + ", ".join(
        f"['{source}'] = {{" + ", ".join(f"['{t}'] = true" for t in targets) + "}"
        for source, targets in rows.items()) + "}"


def lua_prelude(script: str) -> str:
    """The Lua put in front of ``script``'s text: its row of the table, ``check_move`` that
    stops the script (``error``) on a move the row does not list, and ``move_token``, the
    one way a script writes a token's state (``HSET key state to ...``, the other fields
    after it). A missing ``from`` is a new token; ``check_move(id, from, nil)`` is a
    deletion. Redis does not roll a script back: the scripts read a token's state before
    they decide, so a refusal is a bug caught before that token's write, not a policy."""
    names = ", ".join(f"['{state.value}'] = '{state.name}'" for state in TokenState)
    return "\n".join((
        f"-- generated from tokengate/gateway/ledger/transitions.py: the moves of {script}.lua",
        f"local STEP, MOVES = '{script}', {_lua_rows(script)}",
        f"local STATE_NAMES = {{{names}}}",
        "local function state_name(s, absent)",
        "  if not s then return absent end",
        "  return STATE_NAMES[s] or tostring(s)",
        "end",
        "local function illegal(id, from, to)",
        f"  error('{ILLEGAL} ' .. STEP .. ' ' .. state_name(from, '{NEW}') .. ' ' ..",
        f"        state_name(to, '{DELETED}') .. ' ' .. tostring(id))",
        "end",
        "local function check_move(id, from, to)",
        "  local row = MOVES[from or '']",
        "  if not (row and row[to or '']) then illegal(id, from, to) end",
        "end",
        "-- the check inlined (one Lua call per move on the hot path, not two); redis.call an",
        "-- upvalue (no global lookup per write)",
        "local call = redis.call",
        "local function move_token(key, id, from, to, ...)",
        "  local row = MOVES[from or '']",
        "  if not (row and row[to or '']) then illegal(id, from, to) end",
        f"  call('HSET', key, '{Field.STATE}', to, ...)",
        "end",
        ""))


def lifecycle_consistent(step: Step) -> bool:
    """Every move of ``step`` is a lifecycle transition, or two when an outcome arrives
    before its start was reported (ADMITTED -> EXECUTING -> COMPLETED)."""
    for source, target in step.moves:
        if source is None or target is None:
            continue
        direct = can_transition(source, target)
        via_start = can_transition(source, E) and can_transition(E, target)
        if not (direct or via_start):
            return False
    return True


def table_markdown() -> str:
    """The table as ``docs/cluster.md`` shows it: one row per move."""
    lines = ["| step (script) | from | to | when |", "|---|---|---|---|"]
    for step in STEPS:
        moves: dict[TokenState | None, list[str]] = {}
        for source, target in step.moves:
            moves.setdefault(source, []).append("(deleted)" if target is None else target.name)
        for source, targets in moves.items():
            lines.append(f"| `{step.script}.lua` | {'(new)' if source is None else source.name}"
                         f" | {', '.join(targets)} | {step.what} |")
    return "\n".join(lines)
