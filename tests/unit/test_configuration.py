"""One loader for every setting: names, secrets from files, nested TLS, and the docs table."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokengate.gateway.config import GatewayConfig
from tokengate.node_agent.link_config import LinkConfig
from tokengate.shared import envconfig
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import ConfigurationError

from tokengate.settings import render

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_table_is_current():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert text == render(), "docs/configuration.md is stale: python -m tokengate.settings"


def test_variables_secrets_and_nested_tls(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    env = {"TOKENGATE_REDIS": "redis://r:1/0", "TOKENGATE_TOKEN_FILE": str(secret),
           "TOKENGATE_MAX_SESSIONS": "12", "TOKENGATE_TLS_CA": "/ca.pem",
           "TOKENGATE_HEARTBEAT_TIMEOUT": "2.5"}
    config = envconfig.from_env(GatewayConfig, env)
    assert (config.redis_url, config.token, config.max_sessions) == ("redis://r:1/0", "from-a-file",
                                                          12)
    assert config.tls.ca == "/ca.pem" and config.heartbeat_timeout == 2.5
    assert envconfig.from_env(GatewayConfig, {**env, "TOKENGATE_TOKEN": "direct"}).token \
        == "direct", "the variable itself wins over its file"
    link = envconfig.from_env(LinkConfig, {"TOKENGATE_INCLUDE": "a, b,,c"})
    assert link.includes == ("a", "b", "c")


def test_a_bad_value_names_its_variable():
    with pytest.raises(ConfigurationError, match="TOKENGATE_CLIENT_WINDOW"):
        envconfig.from_env(ClientConfig, {"TOKENGATE_CLIENT_WINDOW": "lots"})
    with pytest.raises(ConfigurationError, match="TOKENGATE_TOKEN_FILE"):
        envconfig.from_env(ClientConfig, {"TOKENGATE_TOKEN_FILE": "/no/such/file"})


def test_flags_left_unset_do_not_override():
    config = GatewayConfig.from_env(listen=None, max_sessions=9, token="t")
    assert config.listen == "127.0.0.1:50051" and config.max_sessions == 9


def test_the_threaded_gateways_workers_setting_is_refused_with_what_replaced_it(capsys,
                                                                               monkeypatch):
    from tokengate.cli import main

    monkeypatch.setenv("TOKENGATE_TOKEN", "t")
    assert main(["gateway", "--workers", "64"]) != 0
    said = capsys.readouterr().err
    assert "--workers" in said and "--max-sessions" in said, said
    monkeypatch.setenv("TOKENGATE_GATEWAY_WORKERS", "64")
    assert main(["gateway"]) != 0
    assert "--max-agents" in capsys.readouterr().err
