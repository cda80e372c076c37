"""The executor contract, the launch description it receives, and the per-attempt folder layout."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from computenet.spec import JobSpec
from site_agent.records import AttemptKey, AttemptRecord, ExecutorUpdate

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CLAIM_FILE = "claim"


class ExecutorError(RuntimeError):
    """An attempt could not be started; the message says why in one line."""


START_ERROR_FILE = "start_error"
"""Written by whatever runs the command (the wrapper, the batch script) when it cannot start it:
the attempt failed to launch, as opposed to a command that ran and exited non-zero."""
_SHOWN_CHARS = 60
CHECKPOINT_DIR_VAR = "COMPUTENET_CHECKPOINT_DIR"
"""The job's checkpoint folder: it writes its checkpoint there when asked to stop (SIGTERM)."""
RESTORE_DIR_VAR = "COMPUTENET_RESTORE_DIR"
"""Set only for an attempt that resumes a checkpoint: the folder holding it."""


@dataclass(frozen=True, slots=True)
class Launch:
    """What an executor needs to start one attempt."""

    job_id: str
    attempt: int
    fencing_token: int
    spec: JobSpec
    site: str
    restore_dir: str = ""
    """The imported checkpoint the attempt resumes from ("" to start fresh)."""

    @property
    def key(self) -> AttemptKey:
        """The (job_id, attempt) pair."""
        return (self.job_id, self.attempt)

    def job_env(self) -> dict[str, str]:
        """Variables every job sees, on top of the agent's environment."""
        env = {
            "COMPUTENET_JOB_ID": self.job_id,
            "COMPUTENET_ATTEMPT": str(self.attempt),
            "COMPUTENET_SITE": self.site,
            "COMPUTENET_FENCING_TOKEN": str(self.fencing_token),
        }
        if self.restore_dir:
            env[RESTORE_DIR_VAR] = self.restore_dir
        return env


class Executor(Protocol):
    """Runs attempts at the site. Calls may block briefly; the runtime calls them from a thread.

    `start` is idempotent per attempt across agent restarts: a folder already claimed for the
    attempt is adopted (or reported lost), never launched a second time.
    """

    kind: str

    def start(self, launch: Launch) -> str:
        """Launch the attempt and return its handle (pid, Slurm job id); raise ExecutorError."""
        ...

    def poll(self) -> list[ExecutorUpdate]:
        """State changes since the last poll; a final update is the last one for an attempt."""
        ...

    def cancel(self, key: AttemptKey, checkpoint: bool = False) -> None:
        """Begin stopping the attempt; its final update follows from `poll`.

        With `checkpoint` the job gets SIGTERM (its cue to write its checkpoint and exit), the
        checkpoint grace to exit, then SIGKILL; its checkpoint folder is kept.
        """
        ...

    def recover(self, records: Sequence[AttemptRecord]) -> None:
        """Watch attempts launched by an earlier agent process (from their handles and folders)."""
        ...

    def set_lease(self, expiry_mono_ms: int, stop_lead_ms: int) -> None:
        """The agent's lease now ends at `expiry_mono_ms` (boot-time clock); an executor that can
        stops requeue attempts by then on its own, even while the agent is stalled."""
        ...

    def lease(self) -> int | None:
        """The lease expiry an earlier agent process of this boot published; None if none."""
        ...


def attempt_dir(state_dir: Path, job_id: str, attempt: int) -> Path:
    """`state_dir/jobs/<job_id>/<attempt>/`; rejects ids that are not safe path components."""
    if not _SAFE_ID.match(job_id):
        raise ExecutorError(f"job id {job_id!r} is not a safe folder name")
    return state_dir / "jobs" / job_id / str(attempt)


def claim(folder: Path) -> bool:
    """Create the folder's claim file; False if an earlier launch already claimed it."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / CLAIM_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    fsync_dir(folder)
    return True


def write_atomic(path: Path, text: str) -> None:
    """Write a small file so a crash leaves either the old content or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename or create in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_launchable(command: Sequence[str], env: Mapping[str, str]) -> None:
    """Raise ExecutorError if the OS could not take this argv and environment at all.

    Catches what `exec` would refuse with an exception in the agent itself (empty argv, NUL
    bytes, strings the file system encoding cannot carry, malformed variable names), so the
    attempt fails with a clear reason instead.
    """
    if not command:
        raise ExecutorError("the command is empty")
    for i, arg in enumerate(command, start=1):
        _check_os_string(arg, f"argument {i} of the command")
    for name, value in env.items():
        if not name or "=" in name:
            raise ExecutorError(f"environment variable name {_shown(name)} is not valid")
        _check_os_string(name, f"environment variable name {_shown(name)}")
        _check_os_string(value, f"environment variable {_shown(name)}")


def _check_os_string(text: str, what: str) -> None:
    if not isinstance(text, str):
        raise ExecutorError(f"{what} is not a string")
    if "\0" in text:
        raise ExecutorError(f"{what} holds a NUL byte")
    try:
        os.fsencode(text)
    except UnicodeEncodeError as exc:
        raise ExecutorError(f"{what} cannot be encoded for the OS: {exc.reason}") from None


def _shown(text: str) -> str:
    """`text` quoted for a one-line message: escaped and cut short."""
    shown = ascii(text[:_SHOWN_CHARS])
    return shown + ("..." if len(text) > _SHOWN_CHARS else "")


def read_start_error(folder: Path) -> str | None:
    """Why the attempt's command could not be started, if its runner recorded that."""
    try:
        text = (folder / START_ERROR_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text.strip() or "the command could not be started"


def merged_env(base: Mapping[str, str] | None, extra: Mapping[str, str]) -> dict[str, str]:
    """The agent's environment (or `base`) plus `extra`."""
    return {**(dict(base) if base is not None else dict(os.environ)), **extra}
