"""Runs one job command and records its exit code durably, so a restarted agent can read it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

EXIT_CODE_FILE = "exit_code"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
EXEC_FAILED = 127


def _record(folder: Path, code: int) -> None:
    tmp = folder / (EXIT_CODE_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(f"{code}\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, folder / EXIT_CODE_FILE)
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
        except OSError as exc:
            err.write(f"computenet: cannot start {command[0]!r}: {exc.strerror}\n".encode())
            code = EXEC_FAILED
        else:
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
