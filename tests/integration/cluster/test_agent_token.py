"""Who may join as an agent, what one client may read of another's tokens, and who runs a
cluster token.

- With an agent token set (``--agent-token-file``), an agent holding only the cluster token
  is refused (exit 2, says why) and so cannot be sent other clients' calls; an agent with the
  agent token joins and runs work; the agent token opens nothing but the agent link.
- ``Token`` shows a client the arguments, error message and traceback of its own tokens
  only; another client sees states and times (``redacted``); an operator sees everything.
- A token submitted through the gateway runs on an agent only, even when a local worker
  thread waits on it.
"""

from __future__ import annotations

import faults2_tasks  # noqa: F401 - registers the tasks (their weights) in this process
import grpc
import pytest
from _faults2 import TASKS, TOKEN, Runs, f2_clusters, metadata, wait_exit, wait_until
from tokengate.shared.channel import CHANNEL_OPTIONS
from tokengate.shared.errors import PermissionDenied, TokenCancelled, UnknownToken
from tokengate.shared.registry import TaskSpec, lookup
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc
from tokengate.shared.tags import parse_tags
from tokengate.shared.token import TaskToken

from tokengate.cli_up import role_command
from tokengate.coordinator import OperationsCoordinator

AGENT_TOKEN = "agent-token-for-the-join-tests-0123456"
OPERATOR_TOKEN = "operator-token-for-the-view-tests-0123"


@pytest.fixture
def f2_cluster(redis_url, tmp_path):
    yield from f2_clusters(redis_url, tmp_path)


def _agent(cluster, name: str, token: str):
    return cluster.spawn(name, role_command(
        "agent", "--gateway", cluster.address, "--name", name, "--include", TASKS),
        env=dict(cluster.env, TOKENGATE_TOKEN=token))


def test_with_an_agent_token_the_cluster_token_cannot_join(f2_cluster, tmp_path):
    token_file = tmp_path / "agent-token"
    token_file.write_text(AGENT_TOKEN)
    cluster = f2_cluster({}, gateway_options=("--agent-token-file", str(token_file)))

    intruder = _agent(cluster, "intruder", TOKEN)
    code = wait_exit(intruder, 10.0)
    output = cluster.log("intruder")
    assert code == 2, f"an agent with the cluster token still retries (exit {code})"
    assert "agent token" in output, output[-2000:]

    _agent(cluster, "trusted", AGENT_TOKEN)
    cluster.wait_nodes(lambda nodes: nodes.get("trusted") == "UP", "the agent-token agent up")
    assert "intruder" not in {n["name"] for n in cluster.status()["nodes"]}
    runs = Runs(tmp_path)
    client = cluster.client()
    assert client.submit_by_name(f"{TASKS}:record", (str(runs.log), "ran")).get(timeout=10) == "ran"
    assert runs.total() == 1

    with grpc.insecure_channel(cluster.address, options=CHANNEL_OPTIONS) as channel:
        stub = rpc.GatewayStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Status(pb.StatusRequest(), metadata=metadata(AGENT_TOKEN), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, \
            "the agent token opens the agent link only"
        stub.Status(pb.StatusRequest(), metadata=metadata(TOKEN), timeout=5)


def _state(client, token_id: str) -> str:
    try:
        return client.token_detail(token_id).state
    except UnknownToken:  # submitted a moment ago: not stored yet
        return ""


def test_another_clients_token_detail_is_redacted(f2_cluster, tmp_path):
    cluster = f2_cluster(env={"TOKENGATE_OPERATOR_TOKEN": OPERATOR_TOKEN})
    runs = Runs(tmp_path)
    owner = cluster.client()
    token = owner.submit_by_name(f"{TASKS}:gated_light", runs.args("secret-tag"))
    try:  # held at its gate: the arguments are still in the ledger
        wait_until(lambda: _state(owner, token.token_id) == "executing", what="executing")
        mine = owner.token_detail(token.token_id)
        assert mine.args_summary and not mine.redacted, "the owner sees its own arguments"
        other = cluster.client().token_detail(token.token_id)
        assert other.state == "executing" and other.times, "another client sees the states"
        assert other.redacted and other.args_summary == ""
        operator = cluster.client(token=OPERATOR_TOKEN).token_detail(token.token_id)
        assert operator.args_summary == mine.args_summary and not operator.redacted
        with grpc.insecure_channel(cluster.address, options=CHANNEL_OPTIONS) as channel:
            stub = rpc.GatewayStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Token(pb.TokenRequest(token_id="x" * 301), metadata=metadata(TOKEN), timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            anonymous = stub.Token(pb.TokenRequest(token_id=token.token_id),
                                   metadata=metadata(TOKEN), timeout=5)
            assert anonymous.redacted, "a caller naming no client id is nobody's owner"
        with pytest.raises(PermissionDenied, match="only its own tokens"):
            cluster.client().kill(token.token_id)
        # Its owner may cancel its own token without the operator token (token.cancel()).
        mine_too = owner.submit_by_name(f"{TASKS}:gated_light", runs.args("cancel-me"))
        wait_until(lambda: _state(owner, mine_too.token_id) == "executing", what="executing")
        assert owner.kill(mine_too.token_id).outcome == "cancel_requested"
    finally:
        runs.open_gate()
    assert token.get(timeout=10) == "secret-tag", "another client's kill changed nothing"
    with pytest.raises(TokenCancelled):
        mine_too.get(timeout=10)



def test_a_worker_waiting_on_a_cluster_token_does_not_run_it_itself(f2_cluster, tmp_path):
    """An embedded worker that calls ``get`` on a token submitted through the gateway waits
    for the agent's result: it used to claim the token (state WAITING) and run it inline too,
    so the call ran twice (once here, once on the agent)."""
    cluster = f2_cluster()
    runs = Runs(tmp_path)
    client = cluster.client()
    spec = lookup(f"{TASKS}:record")
    child: list[TaskToken] = []

    def parent() -> str:
        child.append(client.submit(spec, (str(runs.log), "once"), {}))
        return child[0].get(timeout=10)

    parent_spec = TaskSpec(name="test:parent", func=parent, operation_type="parent",
                           tags=parse_tags({"weight": "light"}))
    with OperationsCoordinator(cores=1, workers_per_core=1) as coord:
        assert coord.submit(parent_spec, (), {}).get(timeout=15) == "once"
    assert child[0].node == "a1", f"ran on {child[0].node or 'this process'}, not the agent"
    wait_until(lambda: client.outstanding() == 0 and runs.total() >= 1, what="settled")
    assert runs.counts() == {"once": 1}, "the call ran on the agent only"
