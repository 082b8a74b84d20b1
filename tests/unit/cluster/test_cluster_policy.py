"""Pure parts of the cluster: credit policy, admission checks, codec, auth, errors, config."""

from __future__ import annotations

import grpc
import pytest
from tokengate.gateway import credits as policy
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.items import check_item, result_from_record
from tokengate.shared import codec
from tokengate.shared.auth import call_metadata, is_loopback, token_matches
from tokengate.shared.errors import (
    AgentLost,
    BadArguments,
    ConfigurationError,
    PayloadTooLarge,
    TaskFailed,
    Unauthenticated,
)
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.wire_errors import rebuild_exception, status_for


def book(**agents: dict[str, int]) -> dict[str, dict[str, int]]:
    return {name: dict(c) for name, c in agents.items()}


@pytest.mark.parametrize("credits, weights, expected", [
    ({"a": {"heavy": 2}, "b": {"heavy": 2}}, ["heavy"] * 4, ["a", "b", "a", "b"]),
    ({"a": {"heavy": 1}, "b": {"heavy": 0}}, ["heavy"] * 3, ["a", "", ""]),
    ({"a": {"light": 5}, "b": {"light": 1}}, ["light"] * 3, ["a", "a", "a"]),
    ({"a": {"heavy": 3, "light": 0}}, ["light", "heavy"], ["", "a"]),
    ({}, ["medium"], [""]),
])
def test_assign_follows_free_credit_and_never_overspends(credits, weights, expected):
    before = {a: sum(c.values()) for a, c in credits.items()}
    assert policy.assign(weights, credits, list(credits)) == expected
    spent = sum(before[a] - sum(c.values()) for a, c in credits.items())
    assert spent == sum(1 for t in expected if t)
    assert all(n >= 0 for c in credits.values() for n in c.values())


def test_eight_cpu_tasks_spread_over_two_agents_not_one():
    credits = book(a={"heavy": 960}, b={"heavy": 960})
    assert policy.split(8, "heavy", credits, ["a", "b"]) == {"a": 4, "b": 4}


def test_ineligible_agents_get_nothing_and_refund_restores():
    credits = book(a={"medium": 3}, b={"medium": 3})
    assert policy.assign(["medium"] * 2, credits, ["b"]) == ["b", "b"]
    policy.refund(credits, "b", "medium", 2)
    assert credits["b"]["medium"] == 3
    assert policy.total(credits, "medium", ["a", "b"]) == 6


@pytest.mark.parametrize("free, want, ready", [(480, 10, True), (5, 10, False), (10, 10, True),
                                               (120, 5000, True), (119, 5000, False)])
def test_ready_sends_at_once_when_idle_and_coalesces_under_load(free, want, ready):
    credits, grants = book(a={"light": free}), book(a={"light": 480})
    assert (policy.ready(want, "light", credits, ["a"], grants) == ["a"]) is ready


def _item(**fields):
    base = {"token_id": "t1", "task": "m:f", "payload": b"\x92\x90\x80", "weight": "light"}
    base.update(fields)
    return pb.TaskItem(**base)


@pytest.mark.parametrize("fields, error", [
    ({}, None),
    ({"weight": ""}, None),
    ({"weight": "HEAVY"}, None),
    ({"weight": "huge"}, "BadRequest"),
    ({"token_id": ""}, "BadRequest"),
    ({"token_id": "x" * 201}, "BadRequest"),
    ({"task": "nocolon"}, "BadRequest"),
    ({"task": ":f"}, "BadRequest"),
    ({"codec": pb.PICKLE}, "BadArguments"),
    ({"payload": b"x" * 101}, "PayloadTooLarge"),
])
def test_admission_checks(fields, error):
    found = check_item(_item(**fields), max_payload=100, allow_pickle=False)
    assert (type(found).__name__ if found else None) == error


def test_records_give_back_final_results_only():
    assert result_from_record("t", {"s": b"admitted"}) is None
    lost = result_from_record("t", {"s": b"failed", "e": b"AgentLost", "m": b"gone", "a": b"2"})
    assert lost.error_type == "AgentLost" and lost.attempt == 2 and lost.state == pb.FAILED
    stored = pb.ResultItem(token_id="t", state=pb.COMPLETED, payload=b"\x01")
    assert result_from_record("t", {"s": b"completed", "r": stored.SerializeToString()}) == stored


def test_codec_round_trips_and_refuses_clearly():
    data = codec.encode_call((1, "a"), {"k": [1, 2]})
    assert codec.decode_call(data, codec.MSGPACK, allow_pickle=False) == ((1, "a"), {"k": [1, 2]})
    with pytest.raises(BadArguments, match="plain data"):
        codec.encode_call((object(),), {})
    with pytest.raises(PayloadTooLarge):
        codec.encode_call(("x" * 100,), {}, limit=50)
    pickled = codec.encode_call((object,), {}, codec.PICKLE)
    with pytest.raises(BadArguments, match="refused"):
        codec.decode_call(pickled, codec.PICKLE, allow_pickle=False)
    with pytest.raises(BadArguments):
        codec.decode_call(b"\xc1", codec.MSGPACK, allow_pickle=False)
    with pytest.raises(BadArguments, match="array"):
        codec.decode_call(codec.encode_result(5), codec.MSGPACK, allow_pickle=False)
    assert codec.decode_result(codec.encode_result({"a": 1}), codec.MSGPACK,
                               allow_pickle=False) == {"a": 1}


def test_token_check_is_exact():
    assert token_matches("s3cret", call_metadata("s3cret"))
    assert not token_matches("s3cret", call_metadata("s3cre"))
    assert not token_matches("s3cret", (("authorization", "s3cret"),))
    assert not token_matches("", call_metadata(""))
    assert not token_matches("s3cret", None)


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("localhost", True), ("[::1]", True),
                                        ("0.0.0.0", False), ("[::]", False), ("10.0.0.5", False),
                                        ("", False)])
def test_loopback_detection(host, loop):
    assert is_loopback(host) is loop


def test_gateway_refuses_to_run_without_token_or_open_with_a_weak_one():
    with pytest.raises(ConfigurationError, match="token"):
        GatewayConfig(token="").validate()
    with pytest.raises(ConfigurationError, match="loopback"):
        GatewayConfig(listen="0.0.0.0:50051", token="short").validate()
    GatewayConfig(listen="0.0.0.0:50051", token="x" * 24).validate()
    GatewayConfig(token="short").validate()


def test_gateway_config_from_env(monkeypatch):
    monkeypatch.setenv("TOKENGATE_TOKEN", "tok")
    monkeypatch.setenv("TOKENGATE_MAX_ATTEMPTS", "5")
    config = GatewayConfig.from_env(listen="127.0.0.1:0")
    assert (config.token, config.max_attempts, config.listen) == ("tok", 5, "127.0.0.1:0")


def test_errors_map_to_status_codes_and_back():
    assert status_for(Unauthenticated("x")) == grpc.StatusCode.UNAUTHENTICATED
    assert status_for(PayloadTooLarge("x")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_for(RuntimeError("x")) == grpc.StatusCode.INTERNAL
    assert isinstance(rebuild_exception("AgentLost", "gone"), AgentLost)
    assert isinstance(rebuild_exception("KeyError", "k"), KeyError)
    odd = rebuild_exception("SystemExit", "no")  # not an Exception subclass: never rebuilt
    assert isinstance(odd, TaskFailed) and odd.error_type == "SystemExit"
