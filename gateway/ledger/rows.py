"""The typed rows that go into and come out of a ledger: no ints or tuples with meanings.

The hot-path rows (one per token and step) are plain slotted dataclasses, not frozen ones:
a frozen dataclass costs four times as much to build, and these are built by the hundred
thousand a second. They are not changed once built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

from tokengate.gateway.ledger.schema import Field
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import Weight


class SubmitStatus(IntEnum):
    """What ``submit`` did with one new token (the script's reply codes)."""

    DUPLICATE = -1  # a token with this id exists: nothing changed
    QUEUED = 0      # WAITING in its weight's queue
    DISPATCHED = 1  # ADMITTED to the agent it was placed on
    CONFLICT = -2   # a keyed call whose id exists for another call (IdempotencyConflict)


class KillOutcome(str, Enum):
    KILLED = "killed"        # it was waiting: now KILLED
    FORWARDED = "forwarded"  # an agent holds it: the kill goes to that agent
    FINISHED = "finished"    # already final
    UNKNOWN = "unknown"      # no such token (never submitted, or expired)


@dataclass(slots=True)
class NewToken:
    """One accepted call, as ``submit`` stores it."""

    token_id: str
    task: str
    weight: Weight
    idempotent: bool
    item: bytes           # the TaskItem, protobuf bytes
    agent: str = ""       # placed on this agent; "" waits
    owner: str = ""       # the submitting client's id
    session: str = ""     # the session owed its outcome
    queue: str = ""       # the queue it waits in (gateway/needs.py); "": its weight's own
    key: str = ""         # keyed calls: the digest of (task, codec, payload); "": no key

    @property
    def queue_name(self) -> str:
        return self.queue or self.weight.value


@dataclass(slots=True)
class Claimed:
    token_id: str
    attempt: int
    item: bytes


@dataclass(slots=True)
class StartReport:
    token_id: str
    attempt: int
    at: float


@dataclass(slots=True)
class Outcome:
    """An agent's report of how one attempt ended."""

    token_id: str
    state: TokenState     # COMPLETED, FAILED or KILLED
    attempt: int
    result: bytes         # the ResultItem, protobuf bytes


@dataclass(slots=True)
class Applied:
    """Whether an outcome was stored now (``applied``), or by this same report before
    (``again``: a resent frame); with the token's creation time (latency)."""

    token_id: str
    applied: bool
    created: float = 0.0
    again: bool = False

    @property
    def stored(self) -> bool:
        return self.applied or self.again


@dataclass(frozen=True, slots=True)
class LostToken:
    """A token a lost agent held that may not run again: FAILED with AgentLost."""

    token_id: str
    attempt: int
    session: str


@dataclass(slots=True)
class Requeued:
    """What giving back an agent's tokens did."""

    failed: list[LostToken] = field(default_factory=list)
    requeued: dict[str, int] = field(default_factory=dict)  # queue name -> tokens

    def merge(self, other: Requeued) -> Requeued:
        self.failed.extend(other.failed)
        for weight, n in other.requeued.items():
            self.requeued[weight] = self.requeued.get(weight, 0) + n
        return self


@dataclass(slots=True)
class Adoption:
    """The outcome of an agent's registration: what it must drop, what went back."""

    revoked: list[str] = field(default_factory=list)  # held by it, but no longer its own
    requeue: Requeued = field(default_factory=Requeued)
    restarted: bool = False  # a new process under a known name


@dataclass(frozen=True, slots=True)
class TaskRule:
    """What the agents say of a task: may its tokens run again after an agent loss, and
    (for admission) its weight."""

    name: str
    idempotent: bool
    weight: Weight | None = None
    requires: tuple[tuple[str, str], ...] = ()  # agent labels its calls need, sorted


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token hash, parsed."""

    token_id: str
    state: TokenState
    attempt: int
    weight: str
    idempotent: bool
    task: str
    agent: str
    owner: str
    session: str
    times: dict[TokenState, float]
    item: bytes
    result: bytes
    error_type: str
    error_message: str
    queue: str = ""  # the queue it waits in when WAITING: weight, task and required labels

    @classmethod
    def parse(cls, token_id: str, raw: dict[str, bytes]) -> TokenRecord | None:
        """The record of a hash as ``HGETALL`` returns it (field -> bytes); None if empty."""
        if not raw:
            return None

        def text(name: str, default: str = "") -> str:
            value = raw.get(name)
            return default if value is None else value.decode()

        times = {}
        for state, name in ((TokenState.WAITING, Field.CREATED),
                            (TokenState.EXECUTING, Field.STARTED_AT)):
            if name in raw:
                times[state] = float(raw[name])
        if Field.ROUTE in raw:  # the Redis ledger's one field for weight, session and task
            weight, session, task = raw[Field.ROUTE].decode().split("\t", 2)
            raw = {**raw, Field.WEIGHT: weight.encode(), Field.SESSION: session.encode(),
                   Field.TASK: task.encode()}
        queue = text(Field.WEIGHT)  # a queue name: the weight, then the need (if any)
        state = TokenState(text(Field.STATE, TokenState.WAITING.value))
        if Field.FINISHED_AT in raw and state.is_final:
            times[state] = float(raw[Field.FINISHED_AT])
        return cls(token_id=token_id, state=state, attempt=int(text(Field.ATTEMPT, "1")),
                   weight=queue.partition("|")[0], queue=queue,
                   idempotent=text(Field.IDEMPOTENT, "1") == "1",
                   task=text(Field.TASK), agent=text(Field.AGENT), owner=text(Field.OWNER),
                   session=text(Field.SESSION),
                   times=times, item=raw.get(Field.ITEM, b""), result=raw.get(Field.RESULT, b""),
                   error_type=text(Field.ERROR_TYPE), error_message=text(Field.ERROR_MESSAGE))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    actor: str
    action: str
    target: str
    ok: bool
    result: str
