"""TLS between clients and the gateway: a certificate is required when configured."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.server import create_server, stop_server
from tokengate.shared.channel import TlsConfig
from tokengate.shared.client import ClusterClient
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import GatewayUnavailable
from tokengate.shared.redis_server import free_port

TOKEN = "tls-test-token-0123456789"


@pytest.fixture
def certificate(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return tmp_path / "cert.pem", tmp_path / "key.pem"


def test_tls_gateway_serves_tls_clients_and_refuses_plaintext(redis_url, certificate):
    cert, key = certificate
    port = free_port()
    config = GatewayConfig(listen=f"0.0.0.0:{port}", redis_url=redis_url, token=TOKEN,
                           key_prefix="tg-tls:", tls=TlsConfig(cert=str(cert), key=str(key)))
    server, port, gateway = create_server(config)
    try:
        secure = ClusterClient(ClientConfig(address=f"localhost:{port}", token=TOKEN,
                                            tls=TlsConfig(ca=str(cert))))
        assert secure.ping(timeout=10).version
        assert secure.status().state == "RUNNING"
        secure.close()
        plain = ClusterClient(ClientConfig(address=f"127.0.0.1:{port}", token=TOKEN))
        with pytest.raises(GatewayUnavailable):
            plain.ping(timeout=2)
        plain.close()
    finally:
        stop_server(server, gateway)


def test_mutual_tls_requires_a_client_certificate(redis_url, certificate):
    cert, key = certificate  # one self-signed pair stands for both CA and client here
    config = GatewayConfig(listen="127.0.0.1:0", redis_url=redis_url, token=TOKEN,
                           key_prefix="tg-mtls:",
                           tls=TlsConfig(cert=str(cert), key=str(key), ca=str(cert)))
    server, port, gateway = create_server(config)
    try:
        with_cert = ClusterClient(ClientConfig(
            address=f"localhost:{port}", token=TOKEN,
            tls=TlsConfig(ca=str(cert), cert=str(cert), key=str(key))))
        assert with_cert.ping(timeout=10).version
        with_cert.close()
        without = ClusterClient(ClientConfig(address=f"localhost:{port}", token=TOKEN,
                                             tls=TlsConfig(ca=str(cert))))
        with pytest.raises(GatewayUnavailable):
            without.ping(timeout=2)
        without.close()
    finally:
        stop_server(server, gateway)
