"""Starting ComputeNet processes (broker, agents) as real subprocesses for tests."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

_LISTENING = re.compile(r"listening on (\S+)")


def wait_for_line(
    proc: subprocess.Popen[str], pattern: re.Pattern[str], timeout_s: float = 30.0
) -> re.Match[str]:
    """Read the process's stdout until a line matches, or fail after timeout_s."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
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


def start_broker(
    workdir: Path, *extra: str, db_url: str | None = None, listen: str = "127.0.0.1:0"
) -> tuple[subprocess.Popen[str], str]:
    """Start `computenet-broker serve` (on a free loopback port unless told); returns it and its
    address."""
    db = db_url or f"sqlite:///{workdir / 'broker.db'}"
    log = open(workdir / "broker.log", "a")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--listen", listen, "--db", db, *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    match = wait_for_line(proc, _LISTENING)
    return proc, match.group(1)


def start_agent(
    workdir: Path,
    site: str,
    broker: str,
    *,
    pools: list[dict[str, object]] | None = None,
    executor: str = "local",
    capacity: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start `computenet-agent run` for a site with its own config and state folder."""
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
