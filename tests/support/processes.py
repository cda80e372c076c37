"""Starting ComputeNet processes (broker, agents) as real subprocesses for tests."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from computenet import Client
from tests.support.pki import Pki

_LISTENING = re.compile(r"listening on (\S+)")


def wait_for_line(
    proc: subprocess.Popen[str], pattern: re.Pattern[str], timeout_s: float = 30.0
) -> re.Match[str]:
    """Read the process's stdout until a line matches, or fail after timeout_s.

    Reads byte by byte from the pipe (no read-ahead), so a later call sees the next lines.
    """
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = _read_line(proc.stdout.fileno())
            if not line:
                break
            seen.append(line)
            match = pattern.search(line)
            if match:
                return match
    finally:
        selector.close()
    proc.kill()
    raise AssertionError(f"no line matching {pattern.pattern!r}; output: {''.join(seen)[-2000:]}")


_AGENTS = re.compile(r"agents on (\S+)")


@dataclass
class BrokerProcess:
    """A running `computenet-broker serve` and where it listens."""

    proc: subprocess.Popen[str]
    address: str
    agent_address: str
    pki: Pki | None = None

    def client(self, who: str = "operator", **kwargs: object) -> Client:
        """An SDK client of this broker (TLS and `who`'s token when the broker has a PKI)."""
        if self.pki is None:
            return Client(address=self.address, **kwargs)  # type: ignore[arg-type]
        return self.pki.client(self.address, who, **kwargs)

    def channel(self) -> grpc.Channel:
        """A raw client channel (TLS when the broker has a PKI)."""
        if self.pki is None:
            return grpc.insecure_channel(self.address)
        return grpc.secure_channel(self.address, self.pki.channel_credentials())

    def metadata(self, who: str = "operator") -> tuple[tuple[str, str], ...]:
        """Call metadata carrying `who`'s token, for raw stubs."""
        if self.pki is None:
            return ()
        return (("authorization", f"Bearer {self.pki.tokens[who]}"),)


def _read_line(fd: int) -> str:
    """One line from a pipe without reading beyond it."""
    out = bytearray()
    while True:
        chunk = os.read(fd, 1)
        if not chunk:
            break
        out += chunk
        if chunk == b"\n":
            break
    return out.decode()


def start_broker(
    workdir: Path,
    *extra: str,
    db_url: str | None = None,
    listen: str = "127.0.0.1:0",
    agent_listen: str = "",
    pki: Pki | None = None,
) -> BrokerProcess:
    """Start `computenet-broker serve` on loopback (TLS with `pki`, else explicitly insecure)."""
    db = db_url or f"sqlite:///{workdir / 'broker.db'}"
    security = pki.broker_args() if pki is not None else ["--insecure"]
    if pki is not None and agent_listen:
        security += ["--agent-listen", agent_listen]
    log = open(workdir / "broker.log", "a")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "broker",
            "serve",
            "--listen",
            listen,
            "--db",
            db,
            *security,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    address = wait_for_line(proc, _LISTENING).group(1)
    agents = wait_for_line(proc, _AGENTS).group(1) if pki is not None else address
    return BrokerProcess(proc, address, agents, pki)


def start_agent(
    workdir: Path,
    site: str,
    broker: str,
    *,
    pools: list[dict[str, object]] | None = None,
    executor: str = "local",
    capacity: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    pki: Pki | None = None,
    checkpoints: dict[str, object] | None = None,
) -> subprocess.Popen[str]:
    """Start `computenet-agent run` for a site (mTLS with `pki`) with its own state folder;
    `checkpoints` is the agent's checkpoint store section (e.g. a store folder the sites share)."""
    import yaml

    folder = workdir / f"agent-{site}"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "site": site,
        "broker": broker,
        "capacity": capacity
        or {"source": "static", "pools": pools or [], "cpu_cores": 64, "memory_gb": 512},
        "executor": {"kind": executor},
        "state_dir": str(folder / "state"),
    }
    if pki is not None:
        config["tls"] = pki.site_tls(site)
    if checkpoints is not None:
        config["checkpoints"] = checkpoints
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(folder / "agent.log", "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "site_agent", "run", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=folder,
        env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
    )
