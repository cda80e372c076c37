"""Shared harness plumbing: skip-or-fail policy, free ports, bounded waits, stale cleanup."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

logger = logging.getLogger(__name__)

OWNER_FILE = "owner.pid"
"""Name of the file, inside a harness run directory, holding the pid of the owning process."""

KEEP_ENV = "COMPUTENET_HARNESS_KEEP"
"""Set to 1 to keep harness run directories (data, logs) after the session for debugging."""


class ServiceUnavailable(RuntimeError):
    """A service could not be started; `log_tail` carries the most useful log lines."""

    def __init__(self, message: str, *, log_tail: str = "", install_hint: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail
        self.install_hint = install_hint


def in_ci() -> bool:
    """True when running under CI, where a missing service is a failure rather than a skip."""
    return os.environ.get("CI") == "true"


def require_service(
    name: str, reason: str, *, log_tail: str = "", install_hint: str = ""
) -> NoReturn:
    """Fail the current test in CI (CI=true), otherwise skip it, naming what is missing."""
    message = f"{name} unavailable: {reason}"
    if install_hint:
        message += f" (install: {install_hint})"
    if in_ci():
        if log_tail:
            message += f"\n--- log tail ---\n{log_tail}"
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_from(name: str, error: ServiceUnavailable) -> NoReturn:
    """`require_service` for a caught `ServiceUnavailable`."""
    require_service(name, str(error), log_tail=error.log_tail, install_hint=error.install_hint)


def missing_commands(commands: Iterable[str]) -> list[str]:
    """The commands from `commands` not found on PATH (sbin directories included)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [c for c in commands if shutil.which(c, path=path) is None]


def which(command: str) -> str:
    """Absolute path of `command`, searching sbin directories too; raises if missing."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(command, path=path)
    if found is None:
        raise ServiceUnavailable(f"command not found: {command}")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll `predicate` until it returns True or `timeout_s` passes; returns the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<{path}: {exc.strerror}>"
    return "\n".join(text.splitlines()[-lines:])


def tails(paths: Sequence[Path], lines: int = 30) -> str:
    """Labelled tails of several log files."""
    return "\n".join(f"== {p} ==\n{tail(p, lines)}" for p in paths)


def run(
    cmd: Sequence[str],
    *,
    timeout_s: float = 60,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a bounded wait; raise `ServiceUnavailable` on failure when `check`."""
    try:
        proc = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceUnavailable(f"{cmd[0]} timed out after {timeout_s:.0f}s") from exc
    except OSError as exc:
        raise ServiceUnavailable(f"cannot run {cmd[0]}: {exc}") from exc
    if check and proc.returncode != 0:
        raise ServiceUnavailable(
            f"{' '.join(cmd)} exited {proc.returncode}",
            log_tail=(proc.stdout + proc.stderr)[-4000:],
        )
    return proc


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def read_pid(path: Path) -> int | None:
    """The pid stored in a pid file, or None if absent or unreadable."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cmdline(pid: int) -> str:
    """The command line of a process, space-joined ('' if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def terminate(pid: int, *, marker: str, grace_s: float = 10) -> None:
    """SIGTERM then SIGKILL a process, but only if its command line contains `marker`."""
    if not pid_alive(pid) or marker not in cmdline(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_until(lambda: not pid_alive(pid), timeout_s=grace_s, interval_s=0.1):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), timeout_s=5, interval_s=0.1)


def make_run_dir(prefix: str) -> Path:
    """A fresh run directory under the system temp dir, stamped with this process as owner."""
    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    (run_dir / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return run_dir


def stale_run_dirs(prefix: str) -> list[Path]:
    """Run directories with `prefix` whose owning process has exited."""
    stale = []
    for candidate in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        owner = read_pid(candidate / OWNER_FILE)
        if owner is not None and owner != os.getpid() and not pid_alive(owner):
            stale.append(candidate)
    return stale


def live_run_dirs(prefix: str) -> list[Path]:
    """Run directories with `prefix` owned by another live process (a concurrent session)."""
    live = []
    for candidate in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        owner = read_pid(candidate / OWNER_FILE)
        if owner is not None and owner != os.getpid() and pid_alive(owner):
            live.append(candidate)
    return live


def remove_run_dir(run_dir: Path) -> None:
    """Delete a run directory unless COMPUTENET_HARNESS_KEEP=1 asks to keep it."""
    if os.environ.get(KEEP_ENV) == "1":
        logger.info("keeping harness dir path=%s", run_dir)
        return
    shutil.rmtree(run_dir, ignore_errors=True)
