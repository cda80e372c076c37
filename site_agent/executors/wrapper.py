"""Runs one job command and records its exit code durably, so a restarted agent can read it.

With a lease file it is also the attempt's watchdog: the agent publishes its lease there, and the
wrapper (a process of its own, which an agent stall does not stop) sends the job SIGTERM when the
lease is about to end and SIGKILL when it ends. Standard library only: it runs under `python -I`.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

EXIT_CODE_FILE = "exit_code"
STARTED_FILE = "started"
# Run as a script (python -I), so it cannot import executors.base, whose name this must match.
START_ERROR_FILE = "start_error"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
EXEC_FAILED = 127
LEASE_KILLED = 128 + signal.SIGKILL
WATCH_INTERVAL_S = 0.1
"""How often the watchdog reads the lease: well inside any clock-skew margin."""
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def monotonic_ms() -> int:
    """Milliseconds on the clock the lease is measured on, shared by all processes of one boot
    (CLOCK_BOOTTIME: it keeps counting while the machine is suspended)."""
    clock = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
    return int(time.clock_gettime(clock) * 1000)


@functools.cache
def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


def write_lease(path: Path, expiry_mono_ms: int, stop_lead_ms: int) -> None:
    """Publish the lease atomically (no fsync: it only matters to processes of this boot)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{_boot_id()} {expiry_mono_ms} {stop_lead_ms}\n", encoding="utf-8")
    os.replace(tmp, path)


def read_lease(path: Path) -> tuple[int, int] | None:
    """(expiry_mono_ms, stop_lead_ms) of this boot's lease; None if absent or from another boot."""
    try:
        boot, expiry, lead = path.read_text(encoding="utf-8").split()
        if boot != _boot_id():
            return None
        return int(expiry), int(lead)
    except (OSError, ValueError):
        return None


def _record(folder: Path, code: int) -> None:
    _write_durably(folder, EXIT_CODE_FILE, f"{code}\n")


def _write_durably(folder: Path, name: str, text: str) -> None:
    tmp = folder / (name + ".tmp")
    with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, folder / name)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(folder: Path, command: list[str], lease: Path | None = None) -> int:
    """Run `command` in `folder` (same process group), wait, and record its exit code."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # The agent signals the whole group; the job handles it, the wrapper outlives it.
        signal.signal(sig, signal.SIG_IGN)
    with (
        open(folder / STDOUT_FILE, "ab") as out,
        open(folder / STDERR_FILE, "ab") as err,
    ):
        try:
            child = subprocess.Popen(
                command,
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                restore_signals=True,
                preexec_fn=_default_signals,
            )
        except (OSError, ValueError) as exc:
            # The command never ran: say so apart from its exit code, so the agent reports a
            # launch failure rather than a job that failed on its own.
            why = f"cannot start {command[0][:200]!r}: {getattr(exc, 'strerror', None) or exc}"
            err.write(f"computenet: {why}\n".encode(errors="backslashreplace"))
            _write_durably(folder, START_ERROR_FILE, why + "\n")
            code = EXEC_FAILED
        else:
            _write_durably(folder, STARTED_FILE, f"{child.pid}\n")
            returncode = child.wait() if lease is None else _watch(folder, child, lease)
            code = 128 - returncode if returncode < 0 else returncode
    _record(folder, code)
    return code


def _watch(folder: Path, child: subprocess.Popen[bytes], lease: Path) -> int:
    """Wait for the child; stop the whole group when the published lease runs out."""
    warned = False
    while True:
        try:
            return child.wait(timeout=WATCH_INTERVAL_S)
        except subprocess.TimeoutExpired:
            pass
        held = read_lease(lease)
        if held is None:
            continue
        expiry_ms, lead_ms = held
        now_ms = monotonic_ms()
        if now_ms >= expiry_ms:
            # record first: SIGKILL to the group ends the wrapper too
            _record(folder, LEASE_KILLED)
            os.killpg(0, signal.SIGKILL)
        if not warned and now_ms >= expiry_ms - lead_ms:
            warned = True  # the job's chance to checkpoint; the wrapper ignores SIGTERM
            os.killpg(0, signal.SIGTERM)


def _default_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def main(argv: list[str]) -> int:
    """`wrapper.py FOLDER [--lease FILE] -- COMMAND...`."""
    lease = None
    if len(argv) >= 3 and argv[1] == "--lease":
        lease, argv = Path(argv[2]), [argv[0], *argv[3:]]
    if len(argv) < 3 or argv[1] != "--":
        print("usage: wrapper.py FOLDER [--lease FILE] -- COMMAND...", file=sys.stderr)
        return 2
    return run(Path(argv[0]), argv[2:], lease)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
