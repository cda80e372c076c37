"""Moves checkpoints between the agent's folders and the site's checkpoint store."""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from site_agent.executors.base import (
    CHECKPOINT_DIR_VAR,
    CLAIM_FILE,
    RESTORE_DIR_VAR,
    ExecutorError,
    attempt_dir,
)

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
RESTORE_DIR = "restore"
__all__ = ["CHECKPOINT_DIR_VAR", "RESTORE_DIR_VAR", "CheckpointTransfer", "checkpoint_dir"]
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}/[0-9]{1,9}$")
_SHOWN_CHARS = 300


class CheckpointError(ExecutorError):
    """A checkpoint could not be imported; the message says why in one line."""


def checkpoint_dir(state_dir: Path, job_id: str) -> Path:
    """`state_dir/checkpoints/<job_id>/`: one folder per job, shared by all its attempts here."""
    attempt_dir(state_dir, job_id, 0)  # the same check of the id as a safe folder name
    return state_dir / CHECKPOINTS_DIR / job_id


def restore_dir(state_dir: Path, job_id: str, attempt: int) -> Path:
    """`state_dir/restore/<job_id>/<attempt>/`: the checkpoint one attempt starts from."""
    attempt_dir(state_dir, job_id, attempt)
    return state_dir / RESTORE_DIR / job_id / str(attempt)


def checkpoint_ref(job_id: str, attempt: int) -> str:
    """The name of an attempt's checkpoint in the store: `<job_id>/<attempt>`."""
    return f"{job_id}/{attempt}"


def folder_bytes(folder: Path) -> int:
    """Total size of the regular files under `folder` (0 if it does not exist)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass(frozen=True, slots=True)
class Exported:
    """Where an attempt's checkpoint went; an empty `ref` means nowhere usable."""

    ref: str = ""
    size_bytes: int = 0


class CheckpointTransfer:
    """Copies checkpoints to and from the site's store: a directory every site can reach (a
    shared file system, an object store mount), or commands the site configures instead.

    Commands are templates: `{src}`, `{dest}` and `{ref}` are replaced in each argument (split
    like a shell would, run without one) and must exit 0 within `timeout_s`.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        store: Path | None = None,
        export_command: str | None = None,
        import_command: str | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self._state_dir = state_dir
        self._store = store
        self._export_command = export_command
        self._import_command = import_command
        self._timeout_s = timeout_s

    def warnings(self) -> list[str]:
        """What looks wrong with the store from here (it may be mounted later: not an error)."""
        if self._store is None or self._store.is_dir():
            return []
        return [f"checkpoint store {self._store} is not a directory here; exports will fail"]

    @property
    def configured(self) -> bool:
        """True if checkpoints leave this site at all (a store or an export command is set)."""
        return self._store is not None or bool(self._export_command)

    def export(self, job_id: str, attempt: int) -> Exported:
        """Copy the job's checkpoint folder to `<store>/<job_id>/<attempt>/`; never raises.

        An empty or missing folder, or a failed copy, exports nothing (a WARNING says why).
        """
        if not self.configured:
            log.info("checkpoint kept local job_id=%s attempt=%d (no store)", job_id, attempt)
            return Exported()
        ref = checkpoint_ref(job_id, attempt)
        src = checkpoint_dir(self._state_dir, job_id)
        if not src.is_dir() or not any(src.iterdir()):
            log.warning(
                "checkpoint not exported job_id=%s attempt=%d reason=the checkpoint folder %s "
                "is empty or missing",
                job_id,
                attempt,
                src,
            )
            return Exported()
        size = folder_bytes(src)
        began = time.monotonic()
        try:
            if self._export_command:
                self._run(self._export_command, src=src, dest=self._dest_of(ref), ref=ref)
            else:
                assert self._store is not None
                copy_atomic(src, self._store / ref)
        except (OSError, CheckpointError) as exc:
            log.warning(
                "checkpoint not exported job_id=%s attempt=%d reason=%s",
                job_id,
                attempt,
                _one_line(exc),
            )
            return Exported()
        seconds = time.monotonic() - began
        log.info(
            "checkpoint exported job_id=%s attempt=%d ref=%s bytes=%d seconds=%.3f mb_per_s=%.1f",
            job_id,
            attempt,
            ref,
            size,
            seconds,
            size / 1e6 / max(seconds, 1e-6),
        )
        return Exported(ref, size)

    def restore(self, job_id: str, attempt: int, ref: str) -> Path:
        """Import checkpoint `ref` into a fresh restore folder for the attempt and return it;
        raise CheckpointError if it cannot be had (the attempt must not start fresh instead)."""
        if not _REF.match(ref):
            raise CheckpointError(f"cannot restore checkpoint {ref!r}: not a checkpoint name")
        if self._store is None and not self._import_command:
            raise CheckpointError(
                f"cannot restore checkpoint {ref}: this agent has no checkpoint store configured"
            )
        dest = restore_dir(self._state_dir, job_id, attempt)
        if dest.is_dir() and (attempt_dir(self._state_dir, job_id, attempt) / CLAIM_FILE).exists():
            # launched before the agent restarted: the job may be reading it, and the executor
            # adopts that launch rather than starting another
            return dest
        began = time.monotonic()
        try:
            if dest.exists():
                shutil.rmtree(dest)  # left by a launch cut short: start from the store again
            dest.parent.mkdir(parents=True, exist_ok=True)
            if self._import_command:
                self._import_by_command(ref, dest)
            else:
                assert self._store is not None
                src = self._store / ref
                if not src.is_dir():
                    raise CheckpointError(f"checkpoint {ref} is not in the store {self._store}")
                copy_atomic(src, dest)
        except OSError as exc:
            raise CheckpointError(f"cannot restore checkpoint {ref}: {_one_line(exc)}") from None
        except CheckpointError as exc:
            raise CheckpointError(f"cannot restore checkpoint {ref}: {exc}") from None
        size = folder_bytes(dest)
        seconds = time.monotonic() - began
        log.info(
            "checkpoint restored job_id=%s attempt=%d ref=%s bytes=%d seconds=%.3f mb_per_s=%.1f",
            job_id,
            attempt,
            ref,
            size,
            seconds,
            size / 1e6 / max(seconds, 1e-6),
        )
        return dest

    def _import_by_command(self, ref: str, dest: Path) -> None:
        """Run the import command into an empty folder beside `dest`, then rename it there."""
        assert self._import_command is not None
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}")
        tmp.mkdir()
        try:
            self._run(self._import_command, src=self._dest_of(ref), dest=tmp, ref=ref)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _dest_of(self, ref: str) -> str:
        return str(self._store / ref) if self._store is not None else ref

    def _run(self, template: str, *, src: Path | str, dest: Path | str, ref: str) -> None:
        values = {"src": str(src), "dest": str(dest), "ref": ref}
        args = [part.format(**values) for part in shlex.split(template)]
        try:
            done = subprocess.run(
                args,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self._timeout_s,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise CheckpointError(f"{args[0]} timed out after {self._timeout_s:g}s") from None
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()] or ["no output"]
            raise CheckpointError(f"{args[0]} exited {done.returncode}: {lines[-1]}")


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy folder `src` to `dest` under a temporary name beside it, then rename it into place:
    a reader of `dest` sees a whole copy or none. An existing `dest` is replaced."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        shutil.copytree(src, tmp, symlinks=True)
        if dest.exists():
            # a re-export after a restart: move the old copy aside so the rename can land
            old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:12]}")
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
