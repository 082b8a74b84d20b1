"""Keepalive: one setting for every role, read from the environment, turned into gRPC's
channel and server arguments (the gateway pings its peers too)."""

from __future__ import annotations

import pytest
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.server import server_options
from tokengate.node_agent.link_config import LinkConfig
from tokengate.shared import envconfig
from tokengate.shared.channel import CHANNEL_OPTIONS, Keepalive, channel_options
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import ConfigurationError

ENV = {"TOKENGATE_KEEPALIVE": "3", "TOKENGATE_KEEPALIVE_TIMEOUT": "1.5"}


@pytest.mark.parametrize("cls", [GatewayConfig, LinkConfig, ClientConfig])
def test_every_role_reads_the_same_keepalive_variables(cls):
    assert envconfig.from_env(cls, ENV).keepalive == Keepalive(interval=3.0, timeout=1.5)
    assert envconfig.from_env(cls, {}).keepalive == Keepalive(interval=10.0, timeout=5.0)


def test_channel_options_carry_the_keepalive_and_keep_the_rest():
    options = dict(channel_options(Keepalive(interval=3, timeout=1.5)))
    assert options["grpc.keepalive_time_ms"] == 3000
    assert options["grpc.keepalive_timeout_ms"] == 1500
    assert options["grpc.http2.max_pings_without_data"] == 0, "pings go out on a quiet link"
    assert {k: v for k, v in options.items() if "keepalive" not in k and "pings" not in k} \
        == {k: v for k, v in CHANNEL_OPTIONS if "keepalive" not in k and "pings" not in k}
    assert channel_options() is CHANNEL_OPTIONS
    assert len(options) == len(CHANNEL_OPTIONS), "replaced, not added twice"


def test_the_gateway_pings_its_peers_and_takes_their_pings():
    options = dict(server_options(Keepalive(interval=2, timeout=1)))
    assert (options["grpc.keepalive_time_ms"], options["grpc.keepalive_timeout_ms"]) \
        == (2000, 1000), "without these a peer gone silent holds its stream for TCP's retries"
    assert options["grpc.keepalive_permit_without_calls"] == 1
    # A peer may ping as often as the shortest interval it may be set to (else: GOAWAY).
    assert options["grpc.http2.min_ping_interval_without_data_ms"] <= 1000


@pytest.mark.parametrize("interval, timeout", [(0.5, 5.0), (10.0, 0.0), (10.0, -1.0)])
def test_a_keepalive_out_of_range_is_refused(interval, timeout):
    with pytest.raises(ConfigurationError, match="keepalive"):
        Keepalive(interval=interval, timeout=timeout)
