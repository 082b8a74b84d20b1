"""Pure parts of the cluster: credit policy, admission checks, codec, auth, errors, config."""

from __future__ import annotations

import grpc
import pytest
from tokengate.gateway import placement
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.items import check_item, result_from_record
from tokengate.gateway.ledger import TokenRecord
from tokengate.gateway.ledger.schema import Field
from tokengate.shared import codec, wire
from tokengate.shared.auth import call_metadata, is_loopback, token_matches
from tokengate.shared.errors import (
    AgentLost,
    BadArguments,
    BadRequest,
    ConfigurationError,
    PayloadTooLarge,
    TaskFailed,
    Unauthenticated,
)
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.tags import Weight
from tokengate.shared.wire_errors import rebuild_exception, status_for


def book(**agents: dict[str, int]) -> placement.Book:
    out = {}
    for name, free in agents.items():
        credit = placement.AgentCredit()
        credit.report({Weight(w): n for w, n in free.items()}, 0)
        out[name] = credit
    return out


def free(credits: placement.Book) -> dict[str, dict[str, int]]:
    return {name: {w.value: n for w, n in c.snapshot().items()} for name, c in credits.items()}


@pytest.mark.parametrize("credits, weights, expected", [
    ({"a": {"heavy": 2}, "b": {"heavy": 2}}, ["heavy"] * 4, ["a", "b", "a", "b"]),
    ({"a": {"heavy": 1}, "b": {"heavy": 0}}, ["heavy"] * 3, ["a", "", ""]),
    ({"a": {"light": 5}, "b": {"light": 1}}, ["light"] * 3, ["a", "a", "a"]),
    ({"a": {"heavy": 3, "light": 0}}, ["light", "heavy"], ["", "a"]),
    ({}, ["medium"], [""]),
])
def test_assign_follows_free_credit_and_never_overspends(credits, weights, expected):
    ledger = book(**credits)
    assert placement.assign([Weight(w) for w in weights], ledger, list(credits)) == expected
    for name, credit in ledger.items():
        sent = expected.count(name)
        assert credit.sent == sent and credit.in_transit() == sent
        assert all(n >= 0 for n in credit.snapshot().values())


def test_a_token_in_transit_counts_against_every_weight_the_agent_shares():
    """Weights share cores (heavy may use any): whatever was sent may fill any slot."""
    credits = book(a={"heavy": 20, "medium": 10, "light": 10})
    assert placement.assign([Weight.MEDIUM] * 10, credits, ["a"]) == ["a"] * 10
    assert free(credits)["a"] == {"heavy": 10, "medium": 0, "light": 0}
    credits["a"].report({Weight.HEAVY: 10, Weight.MEDIUM: 0, Weight.LIGHT: 0}, 10)
    assert free(credits)["a"] == {"heavy": 10, "medium": 0, "light": 0}
    credits["a"].report({Weight.HEAVY: 20, Weight.MEDIUM: 10, Weight.LIGHT: 10}, 9)
    assert credits["a"].received == 10, "an older measurement is ignored"


def test_eight_cpu_tasks_spread_over_two_agents_not_one():
    credits = book(a={"heavy": 960}, b={"heavy": 960})
    assert placement.split(8, Weight.HEAVY, credits, ["a", "b"]) == {"a": 4, "b": 4}


def test_ineligible_agents_get_nothing_and_refund_restores():
    credits = book(a={"medium": 3}, b={"medium": 3})
    assert placement.assign([Weight.MEDIUM] * 2, credits, ["b"]) == ["b", "b"]
    placement.refund(credits, "b", 2)
    assert credits["b"].available(Weight.MEDIUM) == 3 and credits["a"].sent == 0


@pytest.mark.parametrize("available, want, ready", [(480, 10, True), (5, 10, False),
                                                    (10, 10, True), (120, 5000, True),
                                                    (119, 5000, False)])
def test_ready_sends_at_once_when_idle_and_coalesces_under_load(available, want, ready):
    credits = book(a={"light": 480})
    credits["a"].report({Weight.LIGHT: available}, 0)
    assert (placement.ready(want, Weight.LIGHT, credits, ["a"]) == ["a"]) is ready


def test_saturated_means_it_can_take_none_of_what_waits():
    credits = book(a={"heavy": 1, "medium": 0, "light": 0})
    assert not placement.saturated(credits["a"])
    assert placement.saturated(credits["a"], {Weight.LIGHT: 5}), "only light waits"
    assert not placement.saturated(credits["a"], {Weight.HEAVY: 1, Weight.LIGHT: 5})
    placement.assign([Weight.HEAVY], credits, ["a"])
    assert placement.saturated(credits["a"])


def _item(**fields):
    base = {"token_id": "t1", "task": "m:f", "payload": b"\x92\x90\x80", "weight": "light"}
    base.update(fields)
    return pb.TaskItem(**base)


@pytest.mark.parametrize("fields, error", [
    ({}, None),
    ({"weight": ""}, None),
    ({"weight": "HEAVY"}, None),
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


@pytest.mark.parametrize("text, weight", [("", Weight.MEDIUM), ("HEAVY", Weight.HEAVY),
                                          (" light ", Weight.LIGHT)])
def test_weights_have_one_spelling_on_the_wire(text, weight):
    assert wire.weight_of(text) is weight


def test_an_unknown_weight_names_the_valid_ones():
    with pytest.raises(BadRequest, match="heavy, medium, light"):
        wire.weight_of("huge")


def _record(**fields: bytes) -> TokenRecord:
    return TokenRecord.parse("t", {Field.CREATED: b"1.0", **fields})


def test_records_give_back_final_results_only():
    assert result_from_record(_record(s=b"admitted")) is None
    lost = result_from_record(_record(s=b"failed", e=b"AgentLost", m=b"gone", a=b"2", n=b"s1"))
    assert lost.error_type == "AgentLost" and lost.attempt == 2 and lost.state == pb.FAILED
    assert lost.session == "s1", "a decided outcome is routed to the session owed it"
    killed = result_from_record(_record(s=b"killed"))
    assert killed.error_type == "TokenKilled" and killed.state == pb.KILLED
    stored = pb.ResultItem(token_id="t", state=pb.COMPLETED, payload=b"\x01")
    assert result_from_record(_record(s=b"completed", r=stored.SerializeToString())) == stored


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
