"""Hosts of their own for cluster tests: Linux network namespaces on a bridge.

:class:`Network` makes a bridge in the root namespace with a private ``10.x.y.1/24`` address
(the "switch", and the root namespace's address on it) and, per :meth:`Network.add`, a
namespace whose ``eth0`` is one end of a veth pair; the other end is a port of the bridge.
A process started with :meth:`Host.command` lives in that namespace and reaches the root
namespace (a gateway, a client) only through its ``eth0`` and the bridge. Taking the port
down (:meth:`Host.cut`) is a cable pulled at the switch: nothing is sent to either side (no
RST, no ICMP), packets just stop, which is what a lost host looks like.

Names are unique per run (``tgns-<pid>-<hex>-<n>``), the subnet is one no route here covers,
and :meth:`Network.close` always removes everything it made (processes still inside a
namespace are killed first). What a killed test run left behind (its pid no longer alive) is
swept when the next network is made. Needs root and ``ip`` (iproute2);
:func:`unavailable` says why a namespace cannot be made here, for a skip.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass

import psutil

logger = logging.getLogger(__name__)

PREFIX = "tgns-"
IP_TIMEOUT = 10.0


class NetnsError(RuntimeError):
    """An ``ip`` command failed."""


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _json(*args: str) -> list[dict]:
    text = ip("-j", *args).strip()
    return json.loads(text) if text else []


def unavailable() -> str | None:
    """Why network namespaces cannot be made here (None: they can)."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{PREFIX}probe-{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot make a network namespace: {exc}"
    ip("netns", "del", probe, check=False)
    return None


def _owner(name: str) -> int | None:
    """The pid in a name this module made (``tgns-<pid>-...``), else None."""
    if not name.startswith(PREFIX):
        return None
    head = name[len(PREFIX):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _kill_inside(namespace: str) -> None:
    """SIGKILL what still runs in ``namespace`` (only processes a test started there)."""
    for text in ip("netns", "pids", namespace, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(text), signal.SIGKILL)


def sweep() -> None:
    """Remove namespaces and bridges left by test runs that are no longer alive."""
    for entry in _json("netns", "list"):
        owner = _owner(entry.get("name", ""))
        if owner is not None and not psutil.pid_exists(owner):
            _kill_inside(entry["name"])
            ip("netns", "del", entry["name"], check=False)
    for link in _json("link", "show", "type", "bridge"):
        owner = _owner(link.get("ifalias", ""))
        if owner is not None and not psutil.pid_exists(owner):
            ip("link", "del", link["ifname"], check=False)


def _taken() -> list[ipaddress.IPv4Network]:
    nets = []
    for route in _json("-4", "route", "show", "table", "all"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            nets.append(ipaddress.ip_network(dst, strict=False))
    return nets


def free_subnet(tries: int = 50) -> ipaddress.IPv4Network:
    """A ``10.x.y.0/24`` that no route here covers or overlaps."""
    taken = _taken()
    for _ in range(tries):
        net = ipaddress.ip_network(f"10.{random.randint(100, 254)}.{random.randint(0, 254)}.0/24")
        if not any(net.overlaps(other) for other in taken):
            return net
    raise NetnsError("no free 10.x.y.0/24 subnet found")


@dataclass(frozen=True)
class Host:
    """One namespace on the network: its name, address, and the bridge port it hangs off."""

    name: str
    address: str
    port: str  # the veth end in the root namespace, a port of the bridge

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """Pull the cable: the bridge port goes down, packets stop both ways, silently."""
        ip("link", "set", self.port, "down")

    def mend(self) -> None:
        ip("link", "set", self.port, "up")


class Network:
    """A bridge with the root namespace at ``.1`` and namespaces at ``.2``, ``.3``, ..."""

    def __init__(self) -> None:
        sweep()
        self.tag = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._short = uuid.uuid4().hex[:6]  # interface names: at most 15 characters
        self.bridge = f"tgb{self._short}"
        self.hosts: list[Host] = []
        self.subnet = free_subnet()
        self.gateway_ip = str(self.subnet.network_address + 1)
        ip("link", "add", self.bridge, "type", "bridge")
        try:
            ip("link", "set", self.bridge, "alias", self.tag)
            ip("addr", "add", f"{self.gateway_ip}/{self.subnet.prefixlen}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self) -> Host:
        n = len(self.hosts)
        host = Host(name=f"{self.tag}-{n}", address=str(self.subnet.network_address + 2 + n),
                    port=f"tgv{self._short}{n}")
        ip("netns", "add", host.name)
        self.hosts.append(host)  # from here on, close() removes it
        ip("link", "add", host.port, "type", "veth", "peer", "name", "eth0",
           "netns", host.name)
        ip("link", "set", host.port, "master", self.bridge)
        ip("link", "set", host.port, "up")
        ip("-n", host.name, "addr", "add", f"{host.address}/{self.subnet.prefixlen}",
           "dev", "eth0")
        ip("-n", host.name, "link", "set", "eth0", "up")
        ip("-n", host.name, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        """Remove every namespace (and what still runs in it) and the bridge; never raises
        for what is already gone."""
        for host in self.hosts:
            _kill_inside(host.name)
            ip("netns", "del", host.name, check=False)  # its eth0 and our port go with it
            ip("link", "del", host.port, check=False)
        self.hosts = []
        ip("link", "del", self.bridge, check=False)
