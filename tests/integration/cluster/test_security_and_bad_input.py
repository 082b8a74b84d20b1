"""Credentials on every RPC, and each bad input answered with a clear error."""

from __future__ import annotations

import grpc
import pytest
from tokengate.shared.auth import call_metadata
from tokengate.shared.client import ClusterClient
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import GatewayUnavailable, PayloadTooLarge, Unauthenticated
from tokengate.shared.redis_server import free_port
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc


@pytest.fixture
def stub(shared_cluster):
    channel = grpc.insecure_channel(shared_cluster.address)
    yield rpc.GatewayStub(channel)
    channel.close()


@pytest.mark.parametrize("metadata", [None, call_metadata("wrong-token"),
                                      (("authorization", "cluster-test-token-0123456789"),)])
def test_calls_without_the_right_token_are_rejected(stub, metadata):
    with pytest.raises(grpc.RpcError) as info:
        stub.Status(pb.StatusRequest(), metadata=metadata, timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    session = stub.Session(iter([pb.ClientFrame()]), metadata=metadata, timeout=5)
    with pytest.raises(grpc.RpcError) as info:
        list(session)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    link = stub.AgentLink(iter([pb.AgentFrame(hello=pb.Hello(name="x", incarnation="y"))]),
                          metadata=metadata, timeout=5)
    with pytest.raises(grpc.RpcError) as info:
        list(link)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_client_with_wrong_token_gets_unauthenticated(shared_cluster):
    with pytest.raises(Unauthenticated):
        shared_cluster.client(token="not-the-token")


def test_unreachable_gateway_is_gateway_unavailable():
    client = ClusterClient(ClientConfig(address=f"127.0.0.1:{free_port()}", token="t"))
    with pytest.raises(GatewayUnavailable):
        client.ping(timeout=1)
    client.close()


def _session(stub, items):
    frames = stub.Session(iter([pb.ClientFrame(submit=items)]),
                          metadata=call_metadata("cluster-test-token-0123456789"), timeout=10)
    return next(iter(frames))


def test_gateway_rejects_bad_items_clearly(stub):
    big = b"\x92\x91\x01\x80" + b"x" * (5 * 1024 * 1024)
    reply = _session(stub, [
        pb.TaskItem(token_id="bad-weight", task="cluster_tasks:add", weight="huge"),
        pb.TaskItem(token_id="bad-name", task="no_colon"),
        pb.TaskItem(token_id="", task="cluster_tasks:add"),
        pb.TaskItem(token_id="too-big", task="cluster_tasks:add", payload=big),
        pb.TaskItem(token_id="pickled", task="cluster_tasks:add", codec=pb.PICKLE),
    ])
    errors = {r.token_id: (r.error_type, r.error_message) for r in reply.rejected}
    assert errors["bad-weight"][0] == "BadRequest" and "heavy" in errors["bad-weight"][1]
    assert errors["bad-name"][0] == "BadRequest"
    assert errors[""][0] == "BadRequest"
    assert errors["too-big"][0] == "PayloadTooLarge"
    assert errors["pickled"][0] == "BadArguments" and "pickle" in errors["pickled"][1]
    assert not reply.accepted


def test_non_python_style_submission_by_name_and_bad_payload(stub):
    """What any gRPC client does: a registered name and msgpack [args, kwargs] bytes."""
    import msgpack
    metadata = call_metadata("cluster-test-token-0123456789")
    items = [pb.TaskItem(token_id="raw-1", task="cluster_tasks:add",
                         payload=msgpack.packb([[20, 22], {}]), weight="light"),
             pb.TaskItem(token_id="raw-2", task="cluster_tasks:add", payload=b"\xc1garbage")]
    frames = stub.Session(iter([pb.ClientFrame(submit=items)]), metadata=metadata, timeout=15)
    results = {}
    for reply in frames:
        for result in reply.results:
            results[result.token_id] = result
        if len(results) == 2:
            break
    frames.cancel()
    assert results["raw-1"].state == pb.COMPLETED
    assert msgpack.unpackb(results["raw-1"].payload) == 42
    assert results["raw-2"].state == pb.FAILED and results["raw-2"].error_type == "BadArguments"


def test_client_refuses_oversized_arguments_at_the_edge(shared_cluster):
    client = shared_cluster.client(max_payload=1024)
    with pytest.raises(PayloadTooLarge):
        client.submit_by_name("cluster_tasks:add", ("x" * 2048, ""))
