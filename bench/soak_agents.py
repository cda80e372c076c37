"""The soak's agents: real `computenet-agent run` processes, and the job processes they leave."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.support.pki import Pki

CARDS_PER_SITE = 8


class Agents:
    """Real `computenet-agent run` processes, one per site, that stop their jobs on exit."""

    def __init__(
        self, workdir: Path, broker: str, pki: Pki | None, log_level: str = "WARNING"
    ) -> None:
        self.workdir = workdir
        self.broker = broker
        """One address, or several comma-separated (the replicas of a cluster)."""
        self.pki = pki
        self.log_level = log_level
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def folder(self, site: str) -> Path:
        return self.workdir / f"agent-{site}"

    def start(self, site: str) -> None:
        folder = self.folder(site)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "site": site,
            "broker": self.broker,
            "capacity": {
                "source": "static",
                "pools": [{"model": "a800", "count": CARDS_PER_SITE}],
                "cpu_cores": 64,
                "memory_gb": 512,
            },
            "executor": {
                "kind": "local",
                "stop_jobs_on_exit": True,
                "cancel_grace_s": 2,
                "poll_interval_s": 0.2,
            },
            "state_dir": str(folder / "state"),
            "log_level": self.log_level,
        }
        if self.pki is not None:
            config["tls"] = self.pki.site_tls(site)
        path = folder / "agent.yaml"
        path.write_text(yaml.safe_dump(config))
        with open(folder / "agent.log", "ab") as log:
            self.procs[site] = subprocess.Popen(
                [sys.executable, "-m", "site_agent", "run", "--config", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill(self, site: str) -> None:
        proc = self.procs[site]
        proc.kill()
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        stop_processes(list(self.procs.values()), grace_s=15.0)
        for site in self.procs:
            kill_job_processes(self.folder(site) / "state")


def stop_processes(procs: list[subprocess.Popen[Any]], grace_s: float) -> None:
    """SIGTERM every live process, then SIGKILL those still running after grace_s."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def kill_job_processes(state_dir: Path) -> int:
    """SIGKILL the process group of every attempt the local executor launched that still runs."""
    from site_agent.executors.local import LAUNCH_FILE, process_start_ticks

    killed = 0
    for launch in state_dir.rglob(LAUNCH_FILE):
        try:
            info = json.loads(launch.read_text())
            pid, ticks = int(info["pid"]), int(info["start_ticks"])
        except (OSError, ValueError, KeyError):
            continue
        if pid > 0 and process_start_ticks(pid) == ticks:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
                killed += 1
    return killed


def job_starts(marker: Path) -> list[tuple[str, int, str]]:
    """(job id, attempt, site) of every start the jobs wrote to `marker`, one line each."""
    if not marker.exists():
        return []
    rows = [line.split() for line in marker.read_text().splitlines() if line.strip()]
    return [(r[0], int(r[1]), r[2]) for r in rows if len(r) >= 3]
