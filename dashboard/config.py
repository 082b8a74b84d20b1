"""Dashboard settings: one keyword-only dataclass, every default documented here.

Read from ``TOKENGATE_*`` through :mod:`tokengate.shared.envconfig` (the table of all
variables: ``docs/configuration.md``); the CLI's flags win. Secrets (the cluster token, the
operator token, the password) may come from a file named by the variable plus ``_FILE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokengate.shared import envconfig
from tokengate.shared.auth import is_loopback
from tokengate.shared.channel import TlsConfig
from tokengate.shared.client_config import DEFAULT_GATEWAY
from tokengate.shared.envconfig import setting
from tokengate.shared.errors import ConfigurationError

PASSWORD_ENV = "TOKENGATE_DASHBOARD_PASSWORD"
MIN_REMOTE_PASSWORD = 12  # characters, when the dashboard listens beyond loopback


@dataclass(frozen=True, kw_only=True)
class DashboardConfig:
    """How the dashboard listens, reaches the gateway and guards its door."""

    listen: str = setting("127.0.0.1:8080", env="TOKENGATE_DASHBOARD_LISTEN",
                          doc="HTTP and WebSocket address (port 0: any free one); beyond "
                              "loopback the password needs 12 characters or more")
    gateway: str = setting(DEFAULT_GATEWAY, env="TOKENGATE_GATEWAY",
                           doc="HOST:PORT of the gateway the dashboard reads")
    token: str = setting("", secret=True, doc="the cluster's shared token (reads, launches)")
    operator_token: str = setting("", secret=True, doc="the gateway's operator token, when it "
                                  "has one: the dashboard's controls are sent with it")
    password: str = setting("", env=PASSWORD_ENV, secret=True,
                            doc="the operators' password (required)")
    show_payloads: bool = setting(False, env="TOKENGATE_DASHBOARD_SHOW_PAYLOADS",
                                  doc="show argument summaries and launch results")
    poll_interval: float = setting(1.0, env="TOKENGATE_DASHBOARD_POLL_INTERVAL",
                                   doc="seconds between reads of the gateway while a page "
                                       "is open (none are made while no page is)")
    session_idle: float = setting(1800.0, env="TOKENGATE_DASHBOARD_SESSION_IDLE",
                                  doc="seconds a login lives unused (an open page counts as "
                                      "use)")
    session_max: float = setting(8 * 3600.0, env="TOKENGATE_DASHBOARD_SESSION_MAX",
                                 doc="seconds a login lives at most")
    login_backoff: float = setting(1.0, env="TOKENGATE_DASHBOARD_LOGIN_BACKOFF",
                                   doc="after the n-th failed login from an address, it waits "
                                       "this * 2**(n-1) seconds before its next try")
    login_backoff_max: float = setting(60.0, env="TOKENGATE_DASHBOARD_LOGIN_BACKOFF_MAX",
                                       doc="the longest wait after failed logins")
    allowed_hosts: tuple[str, ...] = setting((), env="TOKENGATE_DASHBOARD_ALLOWED_HOSTS",
                                             doc="Host names the page may be reached by, "
                                                 "besides the listen host and loopback (a "
                                                 "wildcard listen accepts any unless set)")
    feed_per_push: int = setting(25, env="TOKENGATE_DASHBOARD_FEED_PER_PUSH",
                                 doc="most executions one push adds to the feed (failures "
                                     "first)")
    tls: TlsConfig = field(default_factory=TlsConfig)

    @classmethod
    def from_env(cls, **overrides: Any) -> DashboardConfig:
        """Settings from the environment, then the ``overrides`` that are not None."""
        return envconfig.from_env(cls, **envconfig.given(**overrides))

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

    def validate(self, *, needs_gateway: bool = True) -> DashboardConfig:
        """Checks every setting; ``needs_gateway`` False (embedded: the dashboard reads its
        own process) leaves out the cluster token."""
        if ":" not in self.listen or not self.listen.rpartition(":")[2].isdigit():
            raise ConfigurationError(f"--listen {self.listen!r}: use HOST:PORT")
        if not self.password:
            raise ConfigurationError(
                f"the dashboard needs a password: set {PASSWORD_ENV} or --password-file")
        if not is_loopback(self.listen_host) and len(self.password) < MIN_REMOTE_PASSWORD:
            raise ConfigurationError(
                f"refusing to listen on {self.listen} beyond loopback with a password shorter "
                f"than {MIN_REMOTE_PASSWORD} characters")
        if needs_gateway and not self.gateway_token:
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
