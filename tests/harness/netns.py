"""Network namespaces for tests: a bridge on the host, one namespace per agent over a veth pair.

Names carry the owning pid in hex (`cnx<pid>...`), so a run can remove what a killed run left
behind (namespaces and links whose owner is gone) before it creates its own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness.services import (
    ServiceUnavailable,
    missing_commands,
    pid_alive,
    require_from,
    run,
    which,
)

logger = logging.getLogger(__name__)

PREFIX = "cnx"
"""Every namespace and link this harness makes starts with this."""
SUBNET_POOL = ipaddress.IPv4Network("10.232.0.0/16")
"""Private /24s for test bridges are taken from here; nothing outside the namespaces uses them."""
_OWNED = re.compile(rf"^{PREFIX}([0-9a-f]+)[hnpr]")
"""Owner token (pid in hex plus one sequence digit) then a kind letter that is not a hex digit."""
NETNS_DIR = Path("/var/run/netns")


@dataclass(frozen=True)
class Node:
    """One namespace joined to the bridge: its name, address and the host side of its veth."""

    name: str
    address: str
    host_link: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this namespace."""
        return [which("ip"), "netns", "exec", self.name, *argv]


@dataclass
class Bridge:
    """A bridge in the root namespace with an address; nodes are namespaces attached to it."""

    name: str
    network: ipaddress.IPv4Network
    token: str
    nodes: dict[str, Node] = field(default_factory=dict)
    made: int = 0
    """Nodes made so far (names and addresses are never reused within a bridge)."""

    @property
    def address(self) -> str:
        """The host's address on the bridge (where the broker listens for agents)."""
        return str(self.network.network_address + 1)

    def add_node(self, label: str) -> Node:
        """A new namespace with a veth into the bridge and the next free address."""
        self.made += 1
        index = self.made
        name = f"{PREFIX}{self.token}n{index}-{label}"
        host_link = f"{PREFIX}{self.token}h{index}"
        peer = f"{PREFIX}{self.token}p{index}"
        address = str(self.network.network_address + 10 + index)
        ip = which("ip")
        run([ip, "netns", "add", name])
        node = Node(name, address, host_link)
        self.nodes[label] = node
        run([ip, "link", "add", host_link, "type", "veth", "peer", "name", peer])
        run([ip, "link", "set", peer, "netns", name])
        run([ip, "link", "set", host_link, "master", self.name])
        run([ip, "link", "set", host_link, "up"])
        inside = [ip, "-n", name]
        run([*inside, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", peer])
        run([*inside, "link", "set", peer, "name", "eth0"])
        run([*inside, "link", "set", "eth0", "up"])
        run([*inside, "link", "set", "lo", "up"])
        return node

    def partition(self, label: str) -> None:
        """Cut a node off completely: its veth goes down on the host side."""
        run([which("ip"), "link", "set", self.nodes[label].host_link, "down"])

    def heal(self, label: str) -> None:
        """Undo `partition`."""
        run([which("ip"), "link", "set", self.nodes[label].host_link, "up"])

    def destroy_node(self, label: str) -> None:
        """Remove one node's namespace and veth pair."""
        node = self.nodes.pop(label)
        ip = which("ip")
        run([ip, "netns", "delete", node.name], check=False)
        run([ip, "link", "delete", node.host_link], check=False)

    def destroy(self) -> None:
        """Remove the namespaces (their veth peers go with them) and the bridge."""
        ip = which("ip")
        for node in self.nodes.values():
            run([ip, "netns", "delete", node.name], check=False)
            run([ip, "link", "delete", node.host_link], check=False)
        run([ip, "link", "delete", self.name], check=False)
        self.nodes.clear()


def netns_problem() -> str | None:
    """Why namespaces cannot be made here (None if they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = missing_commands(["ip"])
    if missing:
        return "the ip command (iproute2) is missing"
    return None


def remove_stale() -> list[str]:
    """Delete namespaces and links named by this harness whose owning process is gone."""
    ip = which("ip")
    removed = []
    listed = run([ip, "netns", "list"], check=False).stdout.split("\n")
    for name in (line.split()[0] for line in listed if line.strip()):
        if _stale(name):
            run([ip, "netns", "delete", name], check=False)
            removed.append(name)
    links = run([ip, "-o", "link", "show"], check=False).stdout.splitlines()
    for line in links:
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        if _stale(name):
            run([ip, "link", "delete", name], check=False)
            removed.append(name)
    if removed:
        logger.info("removed stale namespaces and links names=%s", ",".join(removed))
    return removed


def _stale(name: str) -> bool:
    match = _OWNED.match(name)
    return match is not None and not pid_alive(int(match.group(1)[:-1], 16))


def _free_subnet(token: str) -> ipaddress.IPv4Network:
    """A /24 from SUBNET_POOL with no route on the host yet (chosen from the token, then probed)."""
    routes = run([which("ip"), "-4", "route", "show"], check=False).stdout
    used: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = {
        ipaddress.ip_network(word, strict=False)
        for line in routes.splitlines()
        for word in line.split()[:1]
        if word[0].isdigit()
    }
    subnets: list[ipaddress.IPv4Network] = list(SUBNET_POOL.subnets(new_prefix=24))
    start = int(token, 16) % len(subnets)
    for k in range(len(subnets)):
        candidate = subnets[(start + k) % len(subnets)]
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise ServiceUnavailable(f"no free /24 left in {SUBNET_POOL}")


_counter = iter(range(1, 16**2))


def make_bridge() -> Bridge:
    """A new bridge with a free subnet; namespaces are added with `Bridge.add_node`."""
    # the pid (hex) then one hex digit of sequence: stale detection strips that last digit
    token = f"{os.getpid():x}{next(_counter) % 16:x}"
    network = _free_subnet(token)
    name = f"{PREFIX}{token}r"
    ip = which("ip")
    run([ip, "link", "add", name, "type", "bridge"])
    bridge = Bridge(name, network, token)
    try:
        run([ip, "addr", "add", f"{bridge.address}/{network.prefixlen}", "dev", name])
        run([ip, "link", "set", name, "up"])
    except ServiceUnavailable:
        bridge.destroy()
        raise
    return bridge


@contextlib.contextmanager
def bridge_or_skip() -> Iterator[Bridge]:
    """A bridge for one test, removed afterwards; skips (fails in CI) where none can be made."""
    problem = netns_problem()
    if problem is not None:
        require_from("network namespaces", ServiceUnavailable(problem))
    try:
        remove_stale()
        bridge = make_bridge()
    except ServiceUnavailable as exc:
        require_from("network namespaces", exc)
    try:
        bridge.add_node("probe")  # `ip netns add` and veth pairs work here
    except ServiceUnavailable as exc:
        bridge.destroy()
        require_from("network namespaces", exc)
    bridge.destroy_node("probe")
    try:
        yield bridge
    finally:
        bridge.destroy()


def netem_available() -> bool:
    """Whether the kernel has the netem qdisc (tried on a scratch veth pair in the root ns)."""
    ip, tc = which("ip"), missing_commands(["tc"])
    if tc:
        return False
    name = f"{PREFIX}{os.getpid():x}0h0"
    peer = f"{PREFIX}{os.getpid():x}0p0"
    if run([ip, "link", "add", name, "type", "veth", "peer", "name", peer], check=False).returncode:
        return False
    try:
        probe = [which("tc"), "qdisc", "add", "dev", name, "root", "netem", "delay", "1ms"]
        return run(probe, check=False).returncode == 0
    finally:
        run([ip, "link", "delete", name], check=False)


def add_netem(node: Node, *args: str) -> None:
    """Shape both directions of a node's link with netem (e.g. `delay 80ms loss 5%`)."""
    tc = which("tc")
    run([*node.command([tc]), "qdisc", "add", "dev", "eth0", "root", "netem", *args])
    run([tc, "qdisc", "add", "dev", node.host_link, "root", "netem", *args])


def popen_in(node: Node, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
    """Start `argv` inside a node's namespace (`ip netns exec`; it execs, so the pid is argv's)."""
    return subprocess.Popen(node.command(argv), **kwargs)  # type: ignore[call-overload,no-any-return]


@pytest.fixture
def bridge() -> Iterator[Bridge]:
    """A bridge with no nodes yet; removed with its namespaces when the test ends."""
    with bridge_or_skip() as made:
        yield made
