"""docker-compose.yml and the Dockerfile agree with the CLI (no Docker engine needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tokengate.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
yaml = pytest.importorskip("yaml")


def _expand(text: str) -> str:
    """Substitute ${VAR:-default} and ${VAR:?message} as docker compose would, for a test."""
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)
    return re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "test-token-0123456789abcdef", text)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(_expand((ROOT / "docker-compose.yml").read_text()))


def _commands(parser) -> set[str]:
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def test_services_are_redis_gateway_two_agents_and_dashboard(compose):
    assert set(compose["services"]) == {"redis", "gateway", "agent1", "agent2", "dashboard"}
    assert "--requirepass" in compose["services"]["redis"]["command"]


@pytest.mark.parametrize("service", ["gateway", "agent1", "agent2", "dashboard"])
def test_each_service_command_parses_with_the_cli(compose, service):
    parser = build_parser()
    argv = compose["services"][service]["command"]
    if argv[0] not in _commands(parser):
        pytest.skip(f"the CLI has no '{argv[0]}' command yet")
    args = parser.parse_args(argv)
    assert args.command == argv[0]


def test_agents_reach_the_gateway_service_and_the_gateway_has_credentials(compose):
    services = compose["services"]
    listen = services["gateway"]["command"][services["gateway"]["command"].index("--listen") + 1]
    port = listen.rpartition(":")[2]
    for name in ("agent1", "agent2"):
        command = services[name]["command"]
        assert command[command.index("--gateway") + 1] == f"gateway:{port}"
        assert command[command.index("--name") + 1] == name
    env = services["gateway"]["environment"]
    assert len(env["TOKENGATE_TOKEN"]) >= 16 and env["TOKENGATE_REDIS"].startswith("redis://:")
    assert services["gateway"]["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_dockerfile_runs_the_tokengate_entry_point():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["tokengate"]' in text
    for package in ("shared", "gateway", "node_agent", "dashboard", "tokengate"):
        assert f"COPY {package} ./{package}" in text
        assert (ROOT / package / "__init__.py").exists()


def test_the_dashboard_service_reads_the_gateway_and_is_published_on_loopback(compose):
    service = compose["services"]["dashboard"]
    args = build_parser().parse_args(service["command"])
    assert args.gateway == "gateway:50051" and args.listen.startswith("0.0.0.0:")
    port = args.listen.rpartition(":")[2]
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
    env = service["environment"]
    assert env["TOKENGATE_DASHBOARD_PASSWORD"] and env["TOKENGATE_TOKEN"]
    raw = (ROOT / "docker-compose.yml").read_text()
    assert "TOKENGATE_DASHBOARD_PASSWORD: ${TOKENGATE_DASHBOARD_PASSWORD:?" in raw
