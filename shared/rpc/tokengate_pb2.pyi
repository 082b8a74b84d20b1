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
    __slots__ = ("token_id", "task", "payload", "codec", "weight", "not_idempotent", "operation_type", "attempt", "session")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    NOT_IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    task: str
    payload: bytes
    codec: Codec
    weight: str
    not_idempotent: bool
    operation_type: str
    attempt: int
    session: str
    def __init__(self, token_id: _Optional[str] = ..., task: _Optional[str] = ..., payload: _Optional[bytes] = ..., codec: _Optional[_Union[Codec, str]] = ..., weight: _Optional[str] = ..., not_idempotent: _Optional[bool] = ..., operation_type: _Optional[str] = ..., attempt: _Optional[int] = ..., session: _Optional[str] = ...) -> None: ...

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

class ClientFrame(_message.Message):
    __slots__ = ("submit", "watch", "resubmit", "received")
    SUBMIT_FIELD_NUMBER: _ClassVar[int]
    WATCH_FIELD_NUMBER: _ClassVar[int]
    RESUBMIT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    submit: _containers.RepeatedCompositeFieldContainer[TaskItem]
    watch: _containers.RepeatedScalarFieldContainer[str]
    resubmit: bool
    received: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, submit: _Optional[_Iterable[_Union[TaskItem, _Mapping]]] = ..., watch: _Optional[_Iterable[str]] = ..., resubmit: _Optional[bool] = ..., received: _Optional[_Iterable[str]] = ...) -> None: ...

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
    __slots__ = ("name", "incarnation", "host", "pid", "topology", "tasks", "held")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    name: str
    incarnation: str
    host: str
    pid: int
    topology: bytes
    tasks: _containers.RepeatedScalarFieldContainer[str]
    held: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., incarnation: _Optional[str] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., topology: _Optional[bytes] = ..., tasks: _Optional[_Iterable[str]] = ..., held: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentFrame(_message.Message):
    __slots__ = ("hello", "credits", "results", "seq", "snapshot", "leaving")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    LEAVING_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    credits: _containers.RepeatedCompositeFieldContainer[Credit]
    results: _containers.RepeatedCompositeFieldContainer[ResultItem]
    seq: int
    snapshot: bytes
    leaving: bool
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., credits: _Optional[_Iterable[_Union[Credit, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[ResultItem, _Mapping]]] = ..., seq: _Optional[int] = ..., snapshot: _Optional[bytes] = ..., leaving: _Optional[bool] = ...) -> None: ...

class DispatchFrame(_message.Message):
    __slots__ = ("tasks", "kill", "ack_seq", "drain_reason")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    ACK_SEQ_FIELD_NUMBER: _ClassVar[int]
    DRAIN_REASON_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskItem]
    kill: _containers.RepeatedScalarFieldContainer[str]
    ack_seq: int
    drain_reason: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskItem, _Mapping]]] = ..., kill: _Optional[_Iterable[str]] = ..., ack_seq: _Optional[int] = ..., drain_reason: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("name", "state", "reason", "host", "inflight", "credits", "last_seen", "topology", "snapshot")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    reason: str
    host: str
    inflight: int
    credits: _containers.RepeatedCompositeFieldContainer[Credit]
    last_seen: float
    topology: bytes
    snapshot: bytes
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., host: _Optional[str] = ..., inflight: _Optional[int] = ..., credits: _Optional[_Iterable[_Union[Credit, _Mapping]]] = ..., last_seen: _Optional[float] = ..., topology: _Optional[bytes] = ..., snapshot: _Optional[bytes] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("state", "reason", "nodes", "counts", "pending", "inflight", "uptime", "recent")
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
    state: str
    reason: str
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    counts: _containers.ScalarMap[str, int]
    pending: _containers.ScalarMap[str, int]
    inflight: int
    uptime: float
    recent: _containers.RepeatedCompositeFieldContainer[ResultItem]
    def __init__(self, state: _Optional[str] = ..., reason: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., counts: _Optional[_Mapping[str, int]] = ..., pending: _Optional[_Mapping[str, int]] = ..., inflight: _Optional[int] = ..., uptime: _Optional[float] = ..., recent: _Optional[_Iterable[_Union[ResultItem, _Mapping]]] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("node", "reason")
    NODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    node: str
    reason: str
    def __init__(self, node: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class KillRequest(_message.Message):
    __slots__ = ("token_id",)
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    def __init__(self, token_id: _Optional[str] = ...) -> None: ...

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
