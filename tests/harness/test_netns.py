"""The namespace harness: nodes reach the host over the bridge, partitions cut them, stale go."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.harness.netns import PREFIX, Bridge, bridge_or_skip, remove_stale
from tests.harness.services import run, which

CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)"


def _connects(bridge: Bridge, label: str, port: int) -> bool:
    argv = bridge.nodes[label].command([sys.executable, "-c", CONNECT, bridge.address, str(port)])
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0


def test_a_node_reaches_the_host_until_partitioned(bridge: Bridge) -> None:
    bridge.add_node("alpha")
    bridge.add_node("beta")
    with socket.create_server((bridge.address, 0)) as server:
        port = server.getsockname()[1]
        assert _connects(bridge, "alpha", port)
        bridge.partition("alpha")
        assert not _connects(bridge, "alpha", port)
        assert _connects(bridge, "beta", port)  # only alpha is cut off
        bridge.heal("alpha")
        assert _connects(bridge, "alpha", port)


def test_namespaces_and_links_of_a_dead_owner_are_removed() -> None:
    with bridge_or_skip():  # skips where namespaces cannot be made
        gone = subprocess.Popen(["true"])
        gone.wait()
        token = f"{gone.pid:x}0"
        ip = which("ip")
        namespace, link, peer = f"{PREFIX}{token}n9-old", f"{PREFIX}{token}h9", f"{PREFIX}{token}p9"
        run([ip, "netns", "add", namespace])
        run([ip, "link", "add", link, "type", "veth", "peer", "name", peer])
        removed = remove_stale()
        assert {namespace, link} <= set(removed)
        assert namespace not in run([ip, "netns", "list"]).stdout
        assert link not in run([ip, "-o", "link", "show"]).stdout
