"""Child processes of the demo: starting them in their own sessions and stopping every one."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

POLL_S = 0.05
PROC = Path("/proc")


class ProcessError(RuntimeError):
    """A child process exited or stayed silent when the demo needed it."""


@dataclass
class Child:
    """One started process, its log file and its own process group (pgid == pid)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The process id (also its process group and session id)."""
        return self.popen.pid

    def tail(self, chars: int = 1500) -> str:
        """The end of its log, for error messages."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class ProcessSet:
    """Every process the demo started, marked by one environment variable that their
    descendants inherit; `stop_all` is idempotent."""

    marker_name: str
    marker_value: str = field(default_factory=lambda: uuid.uuid4().hex)
    children: list[Child] = field(default_factory=list)
    stopped: bool = False

    def spawn(self, name: str, argv: Sequence[str], *, cwd: Path, log_path: Path) -> Child:
        """Start `argv` in a new session with stdout and stderr to `log_path`."""
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", self.marker_name: self.marker_value},
            )
        child = Child(name, popen, log_path)
        self.children.append(child)
        log.debug("started name=%s pid=%d", name, popen.pid)
        return child

    def wait_for_line(self, child: Child, pattern: re.Pattern[str], timeout_s: float) -> str:
        """The first match of `pattern` in the child's log; raises if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = pattern.search(child.tail(1_000_000))
            if match:
                return match.group(1)
            if child.popen.poll() is not None:
                raise ProcessError(
                    f"{child.name} exited ({child.popen.returncode}): {child.tail()}"
                )
            time.sleep(POLL_S)
        raise ProcessError(f"{child.name} printed no {pattern.pattern!r} in {timeout_s:g} s")

    def check_alive(self) -> None:
        """Raise if any started process has exited."""
        for child in self.children:
            if child.popen.poll() is not None:
                raise ProcessError(
                    f"{child.name} exited ({child.popen.returncode}): {child.tail()}"
                )

    def stop_all(self, grace_s: float) -> None:
        """SIGTERM every child (agents before the broker), SIGKILL after the grace, then kill
        whatever still carries the marker (jobs run in sessions of their own)."""
        if self.stopped:
            return
        self.stopped = True
        agents = [c for c in self.children if c.name != "broker"]
        brokers = [c for c in self.children if c.name == "broker"]
        for group in (agents, brokers):
            _terminate(group, grace_s)
        marker = f"{self.marker_name}={self.marker_value}"
        for pid in stragglers(marker):
            _kill(pid, signal.SIGKILL, group=False)
        deadline = time.monotonic() + grace_s
        while stragglers(marker) and time.monotonic() < deadline:
            time.sleep(POLL_S)


def _terminate(children: list[Child], grace_s: float) -> None:
    for child in children:
        if child.popen.poll() is None:
            _kill(child.pid, signal.SIGTERM, group=False)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("killing name=%s pid=%d after %.1f s", child.name, child.pid, grace_s)
        # The group may hold helpers the child started; kill them even if it exited cleanly.
        _kill(child.pid, signal.SIGKILL, group=True)
        child.popen.wait()


def _kill(pid: int, sig: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stragglers(marker: str) -> list[int]:
    """Pids of live processes (other than this one) whose environment holds `marker`
    (`NAME=VALUE`): everything the demo started, down to the jobs, inherits it."""
    needle = marker.encode()
    found: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ and not _is_zombie(entry):
            found.append(int(entry.name))
    return found


def _is_zombie(entry: Path) -> bool:
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
