"""Runs one job command and records its exit code durably, so a restarted agent can read it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

EXIT_CODE_FILE = "exit_code"
STARTED_FILE = "started"
# Run as a script (python -I), so it cannot import executors.base, whose name this must match.
START_ERROR_FILE = "start_error"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
EXEC_FAILED = 127


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


def run(folder: Path, command: list[str]) -> int:
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
            returncode = child.wait()
            code = 128 - returncode if returncode < 0 else returncode
    _record(folder, code)
    return code


def _default_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def main(argv: list[str]) -> int:
    """`wrapper.py FOLDER -- COMMAND...`."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: wrapper.py FOLDER -- COMMAND...", file=sys.stderr)
        return 2
    return run(Path(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
