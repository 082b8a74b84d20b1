"""Reproductions of issue 8's defects 11 (two gateways on one Redis) and 12 (bounds, room for
control calls, the TLS hint, a wrong agent token); run through ``python -m benchmarks.faults2``.
"""

from __future__ import annotations

import signal
import subprocess
import time

import grpc
import redis
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.server import create_server, stop_server
from tokengate.shared import wire
from tokengate.shared.channel import CHANNEL_OPTIONS, TlsConfig
from tokengate.shared.client import open_client
from tokengate.shared.errors import TokenGateError
from tokengate.shared.redis_server import free_port
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc

from tokengate.cli_up import role_command

# faults2_rig puts tests/integration/cluster on sys.path: it is imported first.
# isort: off
from benchmarks.faults2_rig import TASKS, Gate, Rig, node, outcomes, verdict, wait_for
from _faults2 import TOKEN, RawSession, make_certificate, metadata, results, task_item
# isort: on


def twogateways() -> None:
    print("== defect 11: a second gateway on the same Redis and prefix, 400 calls via the first")
    with Rig() as rig:
        rig.gateway()
        rig.agent("a1", "--cores", "2", "--mailbox-capacity", "5")
        client = rig.client()
        gate = Gate(rig, "two")
        tokens = [client.submit_by_name(f"{TASKS}:gated_light", gate.args(i)) for i in range(400)]
        second = _second_gateway(rig)
        store = redis.Redis.from_url(rig.redis_url)
        wait_for(lambda: second.poll() is not None
                 or store.scard(f"{rig.prefix}inflight:a2") > 0, 15)
        gate.open()
        result = outcomes(tokens, 15)
        runs = gate.runs()
        code = second.poll()
        print(f"  second gateway: {'exit ' + str(code) if code is not None else 'running'} "
              f"[{verdict(code != 2)}]; 'another gateway' in its output: "
              f"{'another gateway' in rig.log('gateway2').lower()}")
        print(f"  submitted 400; delivered {400 - result.get('lost', 0)}, never pushed "
              f"{result.get('lost', 0)} [{verdict(result.get('lost', 0) > 0)}]; ran "
              f"{len(runs)} distinct, ran twice {sum(n > 1 for n in runs.values())}")
        rig.stop("gateway2")
        rig.stop("gateway", signal.SIGKILL)
        start = time.monotonic()
        rig.gateway("gateway3")
        took = time.monotonic() - start
        print(f"  SIGKILL of the first, a new gateway answers Ping after {took:.1f}s "
              f"[{verdict(took > 5.5)}]")


def _second_gateway(rig: Rig) -> subprocess.Popen[bytes]:
    address = f"127.0.0.1:{free_port()}"
    second = rig.spawn("gateway2", role_command(
        "gateway", "--listen", address, "--redis", rig.redis_url, verbose=True))
    rig.spawn("a2", role_command("agent", "--gateway", address, "--name", "a2", "--include",
                                 TASKS, "--cores", "2", verbose=True))
    return second


# -- defect 12 ------------------------------------------------------------------------------------


def bounds() -> None:
    print("== defect 12: bounds on free text, room for control calls, TLS hint, wrong token")
    with Rig() as rig:
        rig.gateway()
        rig.agent("a1", "--cores", "2")
        rig.agent("a2", "--cores", "2")  # each node's status repeats the drain reason
        for chars in (22 * 2**20, 600):
            _drain_reason(rig, chars)
        _wrong_token(rig)
    with Rig() as rig:  # one agent; the sessions then fill every place a session may have
        rig.gateway("gateway", "--max-sessions", "6")
        rig.agent("a1", "--cores", "2")
        _sessions_held(rig, 6)
    _tls_hint()


def _drain_reason(rig: Rig, chars: int) -> None:
    options = [(k, v) for k, v in CHANNEL_OPTIONS if k != "grpc.max_send_message_length"]
    channel = grpc.insecure_channel(rig.address, options=[
        *options, ("grpc.max_send_message_length", 128 * 2**20)])
    stub = rpc.GatewayStub(channel)
    try:
        stub.Drain(pb.DrainRequest(reason="r" * chars), metadata=metadata(), timeout=30)
        drain = "accepted"
    except grpc.RpcError as exc:
        drain = f"{exc.code().name} {exc.details()[:40]}"
    try:
        state = rig.status()["state"]  # as the CLI and the dashboard read it
    except TokenGateError as exc:
        state = f"FAILS: {str(exc)[:90]}"
    stub.Resume(pb.DrainRequest(), metadata=metadata(), timeout=10)
    channel.close()
    print(f"  drain with a {chars:,}-char reason: {drain} "
          f"[{verdict(not drain.startswith('INVALID_ARGUMENT'))}]; Status then: {state}")


def _sessions_held(rig: Rig, limit: int) -> None:
    sessions, opened = [], 0
    for i in range(limit + 1):
        session = RawSession(rig.address, client_id=f"holder{i}")
        sessions.append(session)
        session.send(pb.ClientFrame(submit=[task_item("noop", ())]))
        got = session.collect(lambda r: len(results(r)) >= 1, timeout=5)
        if session.error is not None or not results(got):
            break
        opened += 1
    admin = rig.client(connect=False)
    answers = []
    for name, call in (("Ping", lambda: admin.ping(timeout=5)), ("Status", admin.status)):
        try:
            call()
            answers.append(f"{name} ok")
        except TokenGateError as exc:
            answers.append(f"{name} FAILS ({str(exc)[:50]})")
    rig.agent("late", "--cores", "2", wait=False)
    joined = wait_for(lambda: _state_or_error(rig, "late") == "UP", 15)
    for session in sessions:
        session.close()
    said = ", ".join(answers)
    refused = sessions[-1].error
    busy = refused is not None and refused.details().startswith(wire.GATEWAY_BUSY)
    print(f"  --max-sessions {limit}: {opened} sessions open, the next refused with "
          f"GatewayBusy: {busy}; {said}; a new agent registered: {joined} "
          f"[{verdict(not joined or 'FAILS' in said or opened != limit or not busy)}]")


def _state_or_error(rig: Rig, name: str) -> str:
    try:
        return node(rig.status(), name).get("state", "")
    except TokenGateError as exc:
        return type(exc).__name__


def _wrong_token(rig: Rig) -> None:
    env = dict(rig.env, TOKENGATE_TOKEN="not-the-cluster-token-0000")
    start = time.monotonic()
    agent = rig.spawn("intruder", role_command("agent", "--gateway", rig.address, "--name",
                                               "intruder", "--include", TASKS), env=env)
    try:
        code: int | None = agent.wait(12)
    except subprocess.TimeoutExpired:
        code = None
    took = time.monotonic() - start
    print(f"  agent with a wrong token: {'exit ' + str(code) if code is not None else 'retrying'}"
          f" after {took:.1f}s [{verdict(code != 2)}]")


def _tls_hint() -> None:
    with Rig() as rig:
        cert, key = make_certificate(rig.logdir)
        config = GatewayConfig(listen="127.0.0.1:0", redis_url=rig.redis_url, token=TOKEN,
                               key_prefix=rig.key_prefix,
                               tls=TlsConfig(cert=str(cert), key=str(key)))
        server, port, gateway = create_server(config)
        start = time.monotonic()
        try:
            open_client(f"127.0.0.1:{port}", token=TOKEN, connect_timeout=5.0).close()
            message = "connected?!"
        except TokenGateError as exc:
            message = str(exc)
        took = time.monotonic() - start
        stop_server(server, gateway)
    print(f"  plaintext client vs TLS gateway after {took:.1f}s: {message!r} "
          f"[{verdict('tls' not in message.lower())}]")
