"""A throw-away federation on loopback: one broker and one local-executor agent per site."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import yaml

from computenet.client import Client
from computenet.demo.pki import DemoPki
from computenet.demo.processes import ProcessError, ProcessSet
from computenet.types import SiteInfo, SiteStatus
from topology import Site, Topology

LISTENING = re.compile(r"listening on (\S+)")
AGENTS = re.compile(r"agents on (\S+)")
MARKER_ENV = "COMPUTENET_DEMO_RUN"
BROKER_START_TIMEOUT_S = 60.0
ACTIVE_TIMEOUT_S = 90.0


def agent_config(
    site: Site,
    broker: str,
    state_dir: Path,
    pki: DemoPki,
    pools: Sequence[tuple[str, int]],
) -> dict[str, object]:
    """An agent config offering `pools` (model, cards), the site's CPU and memory as static
    capacity, connecting with the site's certificate. Pools without a card are left out."""
    return {
        "site": site.id,
        "broker": broker,
        "capacity": {
            "source": "static",
            "pools": [{"model": model, "count": cards} for model, cards in pools if cards > 0],
            "cpu_cores": site.cpu_cores,
            "memory_gb": site.memory_gb,
        },
        "executor": {"kind": "local", "cancel_grace_s": 2, "stop_jobs_on_exit": True},
        "state_dir": str(state_dir),
        "log_level": "WARNING",
        "tls": pki.site_tls(site.id),
    }


def start_broker(
    processes: ProcessSet, workdir: Path, suspect_s: float, lost_s: float, pki: DemoPki
) -> tuple[str, str]:
    """Start `python -m broker serve` with TLS on free loopback ports; returns the client and
    the agent addresses."""
    argv = [
        sys.executable, "-m", "broker", "serve",
        "--listen", "127.0.0.1:0",
        "--db", f"sqlite:///{workdir / 'broker.db'}",
        "--suspect-after", f"{suspect_s:g}",
        "--lost-after", f"{lost_s:g}",
        "--log-level", "WARNING",
        *pki.broker_args(),
    ]  # fmt: skip
    child = processes.spawn("broker", argv, cwd=workdir, log_path=workdir / "broker.log")
    address = processes.wait_for_line(child, LISTENING, BROKER_START_TIMEOUT_S)
    agents = processes.wait_for_line(child, AGENTS, BROKER_START_TIMEOUT_S)
    return address, agents


def start_agents(
    processes: ProcessSet,
    topology: Topology,
    broker: str,
    workdir: Path,
    pki: DemoPki,
    pools: Mapping[str, Sequence[tuple[str, int]]],
) -> None:
    """Write a config and start `python -m site_agent run` for every site of the topology,
    offering the site's `pools`."""
    for site in topology.sites:
        folder = workdir / "agents" / site.id
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "agent.yaml"
        settings = agent_config(site, broker, folder / "state", pki, pools[site.id])
        config.write_text(yaml.safe_dump(settings))
        argv = [sys.executable, "-m", "site_agent", "run", "--config", str(config)]
        processes.spawn(f"agent {site.id}", argv, cwd=folder, log_path=folder / "agent.log")


def wait_until_active(
    client: Client,
    processes: ProcessSet,
    expected: int,
    on_update: Callable[[list[SiteInfo]], None] | None = None,
    timeout_s: float = ACTIVE_TIMEOUT_S,
) -> list[SiteInfo]:
    """Poll the broker until `expected` sites are active; raises if a process dies or time
    runs out."""
    deadline = time.monotonic() + timeout_s
    sites: list[SiteInfo] = []
    while time.monotonic() < deadline:
        processes.check_alive()
        sites = client.sites()
        if on_update is not None:
            on_update(sites)
        if sum(s.status is SiteStatus.ACTIVE for s in sites) >= expected:
            return sites
        time.sleep(0.25)
    waiting = [s.site_id for s in sites if s.status is not SiteStatus.ACTIVE]
    raise ProcessError(f"sites not active after {timeout_s:g} s: {', '.join(waiting)}")
