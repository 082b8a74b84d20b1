from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Codec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MSGPACK: _ClassVar[Codec]
    PICKLE: _ClassVar[Codec]

class FinalState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINAL_UNSPECIFIED: _ClassVar[FinalState]
    COMPLETED: _ClassVar[FinalState]
    FAILED: _ClassVar[FinalState]
    KILLED: _ClassVar[FinalState]
MSGPACK: Codec
PICKLE: Codec
FINAL_UNSPECIFIED: FinalState
COMPLETED: FinalState
FAILED: FinalState
KILLED: FinalState

class TaskItem(_message.Message):
    __slots__ = ("token_id", "task", "payload", "codec", "weight", "not_idempotent", "operation_type", "attempt", "session", "requires", "key")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    NOT_IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    task: str
    payload: bytes
    codec: Codec
    weight: str
    not_idempotent: bool
    operation_type: str
    attempt: int
    session: str
    requires: _containers.RepeatedScalarFieldContainer[str]
    key: str
    def __init__(self, token_id: _Optional[str] = ..., task: _Optional[str] = ..., payload: _Optional[bytes] = ..., codec: _Optional[_Union[Codec, str]] = ..., weight: _Optional[str] = ..., not_idempotent: _Optional[bool] = ..., operation_type: _Optional[str] = ..., attempt: _Optional[int] = ..., session: _Optional[str] = ..., requires: _Optional[_Iterable[str]] = ..., key: _Optional[str] = ...) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("name", "weight", "idempotent", "time_limit", "operation_type", "requires", "storage_speed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_SPEED_FIELD_NUMBER: _ClassVar[int]
    name: str
    weight: str
    idempotent: bool
    time_limit: float
    operation_type: str
    requires: _containers.RepeatedScalarFieldContainer[str]
    storage_speed: str
    def __init__(self, name: _Optional[str] = ..., weight: _Optional[str] = ..., idempotent: _Optional[bool] = ..., time_limit: _Optional[float] = ..., operation_type: _Optional[str] = ..., requires: _Optional[_Iterable[str]] = ..., storage_speed: _Optional[str] = ...) -> None: ...

class ResultItem(_message.Message):
    __slots__ = ("token_id", "state", "payload", "codec", "error_type", "error_message", "traceback", "attempt", "node", "core", "worker", "started_at", "finished_at", "session", "operation_type")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    state: FinalState
    payload: bytes
    codec: Codec
    error_type: str
    error_message: str
    traceback: str
    attempt: int
    node: str
    core: int
    worker: str
    started_at: float
    finished_at: float
    session: str
    operation_type: str
    def __init__(self, token_id: _Optional[str] = ..., state: _Optional[_Union[FinalState, str]] = ..., payload: _Optional[bytes] = ..., codec: _Optional[_Union[Codec, str]] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., traceback: _Optional[str] = ..., attempt: _Optional[int] = ..., node: _Optional[str] = ..., core: _Optional[int] = ..., worker: _Optional[str] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., session: _Optional[str] = ..., operation_type: _Optional[str] = ...) -> None: ...

class Started(_message.Message):
    __slots__ = ("token_id", "attempt", "core", "worker", "started_at")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    attempt: int
    core: int
    worker: str
    started_at: float
    def __init__(self, token_id: _Optional[str] = ..., attempt: _Optional[int] = ..., core: _Optional[int] = ..., worker: _Optional[str] = ..., started_at: _Optional[float] = ...) -> None: ...

class ClientFrame(_message.Message):
    __slots__ = ("submit", "watch", "resubmit", "received", "watch_any")
    SUBMIT_FIELD_NUMBER: _ClassVar[int]
    WATCH_FIELD_NUMBER: _ClassVar[int]
    RESUBMIT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    WATCH_ANY_FIELD_NUMBER: _ClassVar[int]
    submit: _containers.RepeatedCompositeFieldContainer[TaskItem]
    watch: _containers.RepeatedScalarFieldContainer[str]
    resubmit: bool
    received: _containers.RepeatedScalarFieldContainer[str]
    watch_any: bool
    def __init__(self, submit: _Optional[_Iterable[_Union[TaskItem, _Mapping]]] = ..., watch: _Optional[_Iterable[str]] = ..., resubmit: _Optional[bool] = ..., received: _Optional[_Iterable[str]] = ..., watch_any: _Optional[bool] = ...) -> None: ...

class Rejected(_message.Message):
    __slots__ = ("token_id", "error_type", "error_message")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    error_type: str
    error_message: str
    def __init__(self, token_id: _Optional[str] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class ClientReply(_message.Message):
    __slots__ = ("accepted", "rejected", "results")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    accepted: _containers.RepeatedScalarFieldContainer[str]
    rejected: _containers.RepeatedCompositeFieldContainer[Rejected]
    results: _containers.RepeatedCompositeFieldContainer[ResultItem]
    def __init__(self, accepted: _Optional[_Iterable[str]] = ..., rejected: _Optional[_Iterable[_Union[Rejected, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[ResultItem, _Mapping]]] = ...) -> None: ...

class Credit(_message.Message):
    __slots__ = ("weight", "count")
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    weight: str
    count: int
    def __init__(self, weight: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("name", "incarnation", "host", "pid", "topology", "tasks", "held", "task_info", "labels", "storage")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    TASK_INFO_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    incarnation: str
    host: str
    pid: int
    topology: bytes
    tasks: _containers.RepeatedScalarFieldContainer[str]
    held: _containers.RepeatedScalarFieldContainer[str]
    task_info: _containers.RepeatedCompositeFieldContainer[TaskInfo]
    labels: _containers.RepeatedScalarFieldContainer[str]
    storage: str
    def __init__(self, name: _Optional[str] = ..., incarnation: _Optional[str] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., topology: _Optional[bytes] = ..., tasks: _Optional[_Iterable[str]] = ..., held: _Optional[_Iterable[str]] = ..., task_info: _Optional[_Iterable[_Union[TaskInfo, _Mapping]]] = ..., labels: _Optional[_Iterable[str]] = ..., storage: _Optional[str] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("id", "kind", "target")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: str
    target: str
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class CommandReply(_message.Message):
    __slots__ = ("id", "ok", "message", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: int
    ok: bool
    message: str
    data: bytes
    def __init__(self, id: _Optional[int] = ..., ok: _Optional[bool] = ..., message: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class AgentFrame(_message.Message):
    __slots__ = ("hello", "credits", "results", "seq", "snapshot", "leaving", "received", "started", "replies", "stuck", "returned", "blocked")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    LEAVING_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    STUCK_FIELD_NUMBER: _ClassVar[int]
    RETURNED_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    credits: _containers.RepeatedCompositeFieldContainer[Credit]
    results: _containers.RepeatedCompositeFieldContainer[ResultItem]
    seq: int
    snapshot: bytes
    leaving: bool
    received: int
    started: _containers.RepeatedCompositeFieldContainer[Started]
    replies: _containers.RepeatedCompositeFieldContainer[CommandReply]
    stuck: int
    returned: _containers.RepeatedScalarFieldContainer[str]
    blocked: int
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., credits: _Optional[_Iterable[_Union[Credit, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[ResultItem, _Mapping]]] = ..., seq: _Optional[int] = ..., snapshot: _Optional[bytes] = ..., leaving: _Optional[bool] = ..., received: _Optional[int] = ..., started: _Optional[_Iterable[_Union[Started, _Mapping]]] = ..., replies: _Optional[_Iterable[_Union[CommandReply, _Mapping]]] = ..., stuck: _Optional[int] = ..., returned: _Optional[_Iterable[str]] = ..., blocked: _Optional[int] = ...) -> None: ...

class DispatchFrame(_message.Message):
    __slots__ = ("tasks", "kill", "ack_seq", "drain_reason", "revoke", "commands", "seen_seq", "lease")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    ACK_SEQ_FIELD_NUMBER: _ClassVar[int]
    DRAIN_REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKE_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    SEEN_SEQ_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskItem]
    kill: _containers.RepeatedScalarFieldContainer[str]
    ack_seq: int
    drain_reason: str
    revoke: _containers.RepeatedScalarFieldContainer[str]
    commands: _containers.RepeatedCompositeFieldContainer[Command]
    seen_seq: int
    lease: float
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskItem, _Mapping]]] = ..., kill: _Optional[_Iterable[str]] = ..., ack_seq: _Optional[int] = ..., drain_reason: _Optional[str] = ..., revoke: _Optional[_Iterable[str]] = ..., commands: _Optional[_Iterable[_Union[Command, _Mapping]]] = ..., seen_seq: _Optional[int] = ..., lease: _Optional[float] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("name", "state", "reason", "host", "inflight", "credits", "last_seen", "topology", "snapshot", "executing", "stuck", "tasks", "pid", "blocked", "workers", "labels", "storage", "storage_cap", "storage_out")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    EXECUTING_FIELD_NUMBER: _ClassVar[int]
    STUCK_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_CAP_FIELD_NUMBER: _ClassVar[int]
    STORAGE_OUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    reason: str
    host: str
    inflight: int
    credits: _containers.RepeatedCompositeFieldContainer[Credit]
    last_seen: float
    topology: bytes
    snapshot: bytes
    executing: int
    stuck: int
    tasks: _containers.RepeatedCompositeFieldContainer[TaskInfo]
    pid: int
    blocked: int
    workers: int
    labels: _containers.RepeatedScalarFieldContainer[str]
    storage: str
    storage_cap: int
    storage_out: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., host: _Optional[str] = ..., inflight: _Optional[int] = ..., credits: _Optional[_Iterable[_Union[Credit, _Mapping]]] = ..., last_seen: _Optional[float] = ..., topology: _Optional[bytes] = ..., snapshot: _Optional[bytes] = ..., executing: _Optional[int] = ..., stuck: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[TaskInfo, _Mapping]]] = ..., pid: _Optional[int] = ..., blocked: _Optional[int] = ..., workers: _Optional[int] = ..., labels: _Optional[_Iterable[str]] = ..., storage: _Optional[str] = ..., storage_cap: _Optional[int] = ..., storage_out: _Optional[int] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("state", "reason", "nodes", "counts", "pending", "inflight", "uptime", "recent", "executing", "redis_ok", "redis_memory", "drain_since", "held")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PendingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    EXECUTING_FIELD_NUMBER: _ClassVar[int]
    REDIS_OK_FIELD_NUMBER: _ClassVar[int]
    REDIS_MEMORY_FIELD_NUMBER: _ClassVar[int]
    DRAIN_SINCE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    state: str
    reason: str
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    counts: _containers.ScalarMap[str, int]
    pending: _containers.ScalarMap[str, int]
    inflight: int
    uptime: float
    recent: _containers.RepeatedCompositeFieldContainer[ResultItem]
    executing: int
    redis_ok: bool
    redis_memory: int
    drain_since: float
    held: int
    def __init__(self, state: _Optional[str] = ..., reason: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., counts: _Optional[_Mapping[str, int]] = ..., pending: _Optional[_Mapping[str, int]] = ..., inflight: _Optional[int] = ..., uptime: _Optional[float] = ..., recent: _Optional[_Iterable[_Union[ResultItem, _Mapping]]] = ..., executing: _Optional[int] = ..., redis_ok: _Optional[bool] = ..., redis_memory: _Optional[int] = ..., drain_since: _Optional[float] = ..., held: _Optional[int] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("node", "reason", "actor")
    NODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    node: str
    reason: str
    actor: str
    def __init__(self, node: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class KillRequest(_message.Message):
    __slots__ = ("token_id", "actor")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    actor: str
    def __init__(self, token_id: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class TokenRequest(_message.Message):
    __slots__ = ("token_id",)
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    def __init__(self, token_id: _Optional[str] = ...) -> None: ...

class StateTime(_message.Message):
    __slots__ = ("state", "at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    state: str
    at: float
    def __init__(self, state: _Optional[str] = ..., at: _Optional[float] = ...) -> None: ...

class TokenDetail(_message.Message):
    __slots__ = ("token_id", "state", "task", "operation_type", "weight", "attempt", "idempotent", "node", "core", "worker", "times", "args_summary", "args_bytes", "error_type", "error_message", "traceback", "redacted")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OPERATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    ARGS_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    ARGS_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    REDACTED_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    state: str
    task: str
    operation_type: str
    weight: str
    attempt: int
    idempotent: bool
    node: str
    core: int
    worker: str
    times: _containers.RepeatedCompositeFieldContainer[StateTime]
    args_summary: str
    args_bytes: int
    error_type: str
    error_message: str
    traceback: str
    redacted: bool
    def __init__(self, token_id: _Optional[str] = ..., state: _Optional[str] = ..., task: _Optional[str] = ..., operation_type: _Optional[str] = ..., weight: _Optional[str] = ..., attempt: _Optional[int] = ..., idempotent: _Optional[bool] = ..., node: _Optional[str] = ..., core: _Optional[int] = ..., worker: _Optional[str] = ..., times: _Optional[_Iterable[_Union[StateTime, _Mapping]]] = ..., args_summary: _Optional[str] = ..., args_bytes: _Optional[int] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., traceback: _Optional[str] = ..., redacted: _Optional[bool] = ...) -> None: ...

class GuardsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FunctionHealth(_message.Message):
    __slots__ = ("name", "attempts", "successes", "failures", "mean_time", "health", "blocked_on", "blocked")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    MEAN_TIME_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_ON_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    name: str
    attempts: int
    successes: int
    failures: int
    mean_time: float
    health: str
    blocked_on: _containers.RepeatedScalarFieldContainer[str]
    blocked: bool
    def __init__(self, name: _Optional[str] = ..., attempts: _Optional[int] = ..., successes: _Optional[int] = ..., failures: _Optional[int] = ..., mean_time: _Optional[float] = ..., health: _Optional[str] = ..., blocked_on: _Optional[_Iterable[str]] = ..., blocked: _Optional[bool] = ...) -> None: ...

class QuarantinedCall(_message.Message):
    __slots__ = ("id", "node", "task", "operation_type", "deviation", "reason", "args_summary", "at", "replayable")
    ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OPERATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEVIATION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ARGS_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REPLAYABLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    node: str
    task: str
    operation_type: str
    deviation: float
    reason: str
    args_summary: str
    at: float
    replayable: bool
    def __init__(self, id: _Optional[str] = ..., node: _Optional[str] = ..., task: _Optional[str] = ..., operation_type: _Optional[str] = ..., deviation: _Optional[float] = ..., reason: _Optional[str] = ..., args_summary: _Optional[str] = ..., at: _Optional[float] = ..., replayable: _Optional[bool] = ...) -> None: ...

class GuardsReply(_message.Message):
    __slots__ = ("functions", "quarantine", "mode", "failure_threshold", "min_attempts", "blocked", "executions", "failures", "refusals")
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    QUARANTINE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    REFUSALS_FIELD_NUMBER: _ClassVar[int]
    functions: _containers.RepeatedCompositeFieldContainer[FunctionHealth]
    quarantine: _containers.RepeatedCompositeFieldContainer[QuarantinedCall]
    mode: str
    failure_threshold: float
    min_attempts: int
    blocked: _containers.RepeatedScalarFieldContainer[str]
    executions: int
    failures: int
    refusals: int
    def __init__(self, functions: _Optional[_Iterable[_Union[FunctionHealth, _Mapping]]] = ..., quarantine: _Optional[_Iterable[_Union[QuarantinedCall, _Mapping]]] = ..., mode: _Optional[str] = ..., failure_threshold: _Optional[float] = ..., min_attempts: _Optional[int] = ..., blocked: _Optional[_Iterable[str]] = ..., executions: _Optional[int] = ..., failures: _Optional[int] = ..., refusals: _Optional[int] = ...) -> None: ...

class ReenableRequest(_message.Message):
    __slots__ = ("function", "actor")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    function: str
    actor: str
    def __init__(self, function: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class QuarantineRequest(_message.Message):
    __slots__ = ("id", "action", "node", "actor")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    action: str
    node: str
    actor: str
    def __init__(self, id: _Optional[str] = ..., action: _Optional[str] = ..., node: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class SeriesRequest(_message.Message):
    __slots__ = ("seconds", "since")
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    seconds: int
    since: float
    def __init__(self, seconds: _Optional[int] = ..., since: _Optional[float] = ...) -> None: ...

class SeriesPoint(_message.Message):
    __slots__ = ("t", "completed", "failed", "submitted", "p50", "p95")
    T_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P95_FIELD_NUMBER: _ClassVar[int]
    t: float
    completed: int
    failed: int
    submitted: int
    p50: float
    p95: float
    def __init__(self, t: _Optional[float] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., submitted: _Optional[int] = ..., p50: _Optional[float] = ..., p95: _Optional[float] = ...) -> None: ...

class SeriesReply(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[SeriesPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[SeriesPoint, _Mapping]]] = ...) -> None: ...

class AuditRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("at", "actor", "action", "target", "ok", "result")
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    at: float
    actor: str
    action: str
    target: str
    ok: bool
    result: str
    def __init__(self, at: _Optional[float] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., ok: _Optional[bool] = ..., result: _Optional[str] = ...) -> None: ...

class AuditReply(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...

class ControlReply(_message.Message):
    __slots__ = ("ok", "message", "outcome")
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    message: str
    outcome: str
    def __init__(self, ok: _Optional[bool] = ..., message: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingReply(_message.Message):
    __slots__ = ("version", "time")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    version: str
    time: float
    def __init__(self, version: _Optional[str] = ..., time: _Optional[float] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("limit", "node")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    node: str
    def __init__(self, limit: _Optional[int] = ..., node: _Optional[str] = ...) -> None: ...

class NodeHistory(_message.Message):
    __slots__ = ("node", "answered", "message", "total_recorded", "capacity", "records")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RECORDED_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    node: str
    answered: bool
    message: str
    total_recorded: int
    capacity: int
    records: bytes
    def __init__(self, node: _Optional[str] = ..., answered: _Optional[bool] = ..., message: _Optional[str] = ..., total_recorded: _Optional[int] = ..., capacity: _Optional[int] = ..., records: _Optional[bytes] = ...) -> None: ...

class HistoryReply(_message.Message):
    __slots__ = ("nodes", "at")
    NODES_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeHistory]
    at: float
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeHistory, _Mapping]]] = ..., at: _Optional[float] = ...) -> None: ...
