"""Dashboard settings: one keyword-only dataclass, every default documented here.

``DashboardConfig.from_env()`` reads ``TOKENGATE_DASHBOARD_*`` variables (and the client's
``TOKENGATE_GATEWAY`` / ``TOKENGATE_TOKEN``); the CLI overrides them from flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tokengate.shared import envconfig
from tokengate.shared.auth import is_loopback, read_token
from tokengate.shared.channel import TlsConfig
from tokengate.shared.client_config import DEFAULT_GATEWAY
from tokengate.shared.errors import ConfigurationError

PASSWORD_ENV = "TOKENGATE_DASHBOARD_PASSWORD"
OPERATOR_TOKEN_ENV = "TOKENGATE_OPERATOR_TOKEN"
OPERATOR_TOKEN_FILE_ENV = "TOKENGATE_OPERATOR_TOKEN_FILE"
MIN_REMOTE_PASSWORD = 12  # characters, when the dashboard listens beyond loopback


@dataclass(frozen=True, kw_only=True)
class DashboardConfig:
    """How the dashboard listens, reaches the gateway and guards its door.

    - ``listen`` ("127.0.0.1:8080"): HTTP address; port 0 picks a free one. Beyond loopback
      the password must have at least 12 characters (TOKENGATE_DASHBOARD_LISTEN).
    - ``gateway`` / ``token``: the gateway's address and the cluster token, as for any client
      (reads and launches). ``operator_token`` (TOKENGATE_OPERATOR_TOKEN[_FILE]), when the
      gateway has one: the controls are sent with it.
    - ``password``: the operators' password (TOKENGATE_DASHBOARD_PASSWORD or a file).
    - ``show_payloads`` (False): show task argument summaries and launch results.
    - ``poll_interval`` (1.0 s): how often the poller reads the gateway while a page is open.
    - ``session_idle`` (1800 s) / ``session_max`` (28800 s): a login expires after this long
      without a request or an open page, and after this long in any case.
    - ``login_backoff`` (1.0 s) / ``login_backoff_max`` (60 s): after the n-th failed login
      from one address, it waits ``login_backoff * 2**(n-1)`` (capped) before it may try again.
    - ``allowed_hosts``: Host names the page may be reached by, besides the listen host and
      loopback names (a wildcard listen accepts any Host unless some are listed).
    - ``feed_per_push`` (25): most executions one push adds to the feed (failures first).
    """

    listen: str = "127.0.0.1:8080"
    gateway: str = DEFAULT_GATEWAY
    token: str = ""
    operator_token: str = ""
    password: str = ""
    show_payloads: bool = False
    poll_interval: float = 1.0
    session_idle: float = 1800.0
    session_max: float = 8 * 3600.0
    login_backoff: float = 1.0
    login_backoff_max: float = 60.0
    allowed_hosts: tuple[str, ...] = ()
    feed_per_push: int = 25
    tls: TlsConfig = field(default_factory=TlsConfig)

    @classmethod
    def from_env(cls, **overrides: object) -> DashboardConfig:
        """Settings from the environment, then the ``overrides`` that are not None."""
        env = os.environ
        values: dict[str, object] = {
            "token": read_token(), "tls": TlsConfig.from_env(),
            "password": env.get(PASSWORD_ENV, ""), "operator_token": read_operator_token()}
        if env.get("TOKENGATE_GATEWAY"):
            values["gateway"] = env["TOKENGATE_GATEWAY"]
        for name, kind in (("listen", "str"), ("show_payloads", "bool"),
                           ("poll_interval", "float"), ("session_idle", "float"),
                           ("session_max", "float")):
            raw = env.get(f"TOKENGATE_DASHBOARD_{name.upper()}")
            if raw is not None:
                values[name] = envconfig.convert(f"DASHBOARD_{name.upper()}", kind, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def gateway_token(self) -> str:
        """The bearer token of reads and launches (the operator's if it has only that)."""
        return self.token or self.operator_token

    def validate(self) -> DashboardConfig:
        if ":" not in self.listen or not self.listen.rpartition(":")[2].isdigit():
            raise ConfigurationError(f"--listen {self.listen!r}: use HOST:PORT")
        if not self.password:
            raise ConfigurationError(
                f"the dashboard needs a password: set {PASSWORD_ENV} or --password-file")
        if not is_loopback(self.listen_host) and len(self.password) < MIN_REMOTE_PASSWORD:
            raise ConfigurationError(
                f"refusing to listen on {self.listen} beyond loopback with a password shorter "
                f"than {MIN_REMOTE_PASSWORD} characters")
        if not self.gateway_token:
            raise ConfigurationError("the dashboard needs the cluster token (TOKENGATE_TOKEN "
                                     "or --token-file) to reach the gateway")
        if self.poll_interval <= 0 or self.session_idle <= 0 or self.session_max <= 0:
            raise ConfigurationError("poll_interval, session_idle and session_max must be > 0")
        return self


def read_password_file(path: str) -> str:
    """The password in ``path`` (first line, stripped); a clear error if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8").strip().splitlines()[0].strip()
    except (OSError, IndexError) as exc:
        raise ConfigurationError(f"cannot read a password from {path}: {exc}") from None


def read_operator_token(path: str | None = None) -> str:
    """The operator token from ``path``, TOKENGATE_OPERATOR_TOKEN or its _FILE variable."""
    path = path or os.environ.get(OPERATOR_TOKEN_FILE_ENV, "")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the operator token {path}: {exc}") from None
    return os.environ.get(OPERATOR_TOKEN_ENV, "").strip()
