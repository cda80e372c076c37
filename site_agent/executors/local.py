"""The `local` executor: each attempt is a process group under a wrapper that records its exit."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from computenet.types import JobState
from site_agent.checkpoints import checkpoint_dir
from site_agent.devices.vendors import Device
from site_agent.executors import wrapper
from site_agent.executors.base import (
    CHECKPOINT_DIR_VAR,
    ExecutorError,
    Launch,
    attempt_dir,
    check_launchable,
    claim,
    merged_env,
    read_start_error,
    write_atomic,
)
from site_agent.executors.local_devices import AttemptDevices
from site_agent.records import AttemptKey, AttemptRecord, ExecutorUpdate

log = logging.getLogger(__name__)

LAUNCH_FILE = "launch.json"
LEASE_FILE = "lease"
WRAPPER_LOG = "wrapper.log"
LOST_EXIT_CODE = -1


@dataclass(slots=True)
class _Tracked:
    folder: Path
    pid: int
    start_ticks: int
    proc: subprocess.Popen[bytes] | None = None
    running_reported: bool = False
    kill_at: float | None = None
    lost: str = ""


def process_start_ticks(pid: int) -> int | None:
    """Start time of a live (non-zombie) process in clock ticks since boot; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class LocalExecutor:
    """Runs commands as local processes; survives agent restarts through per-attempt files."""

    kind = "local"

    def __init__(
        self,
        state_dir: Path,
        *,
        cancel_grace_s: float = 10.0,
        checkpoint_grace_s: float | None = None,
        env: Mapping[str, str] | None = None,
        devices: Sequence[Device] | None = None,
    ) -> None:
        """`devices` is the host's inventory to hand out; None assigns none (and confines none).
        `checkpoint_grace_s` is the grace of a stop with checkpoint (default: the cancel one)."""
        self._state_dir = state_dir
        self._grace_s = cancel_grace_s
        self._checkpoint_grace_s = (
            cancel_grace_s if checkpoint_grace_s is None else checkpoint_grace_s
        )
        self._env = env
        self._tracked: dict[AttemptKey, _Tracked] = {}
        self._pending: list[ExecutorUpdate] = []
        self._lease_path = state_dir / LEASE_FILE
        self._devices = AttemptDevices(devices)

    def set_lease(self, expiry_mono_ms: int, stop_lead_ms: int) -> None:
        """Publish the lease to the wrappers' watchdogs."""
        self._state_dir.mkdir(parents=True, exist_ok=True)
        wrapper.write_lease(self._lease_path, expiry_mono_ms, stop_lead_ms)

    def lease(self) -> int | None:
        """The lease an earlier agent process of this boot published, if any."""
        held = wrapper.read_lease(self._lease_path)
        return held[0] if held is not None else None

    def start(self, launch: Launch) -> str:
        """Spawn the wrapper in a new session; adopt instead if the folder was claimed before.

        Raises ExecutorError for anything that keeps the attempt from starting; a command
        that the wrapper cannot exec shows up later in `poll` as a launch failure.
        """
        folder = attempt_dir(self._state_dir, launch.job_id, launch.attempt)
        checkpoints = checkpoint_dir(self._state_dir, launch.job_id)
        job_env = {**launch.job_env(), CHECKPOINT_DIR_VAR: str(checkpoints)}
        check_launchable(launch.spec.command, merged_env(self._env, job_env))
        if not claim(folder):
            log.warning("attempt already claimed, adopting job_id=%s attempt=%d", *launch.key)
            return self._adopt(launch.key, folder)
        try:
            checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExecutorError(f"cannot create the checkpoint folder: {exc.strerror}") from None
        env = merged_env(
            self._env, {**job_env, **self._devices.acquire(launch.key, launch.spec, folder)}
        )
        try:
            return self._spawn(launch, folder, env)
        except BaseException:
            self._devices.release(launch.key)
            raise

    def _spawn(self, launch: Launch, folder: Path, env: dict[str, str]) -> str:
        # requeue attempts get the wrapper's lease watchdog: the broker re-places them elsewhere
        watch = ["--lease", str(self._lease_path)] if launch.spec.on_site_loss == "requeue" else []
        command = [
            sys.executable,
            "-I",
            wrapper.__file__,
            str(folder),
            *watch,
            "--",
            *launch.spec.command,
        ]
        try:
            with open(folder / WRAPPER_LOG, "ab") as wlog:
                proc = subprocess.Popen(
                    command,
                    cwd=folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=wlog,
                    stderr=wlog,
                    start_new_session=True,
                )
        except OSError as exc:
            raise ExecutorError(f"cannot start the job wrapper: {exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:
            raise ExecutorError(f"cannot start the job wrapper: {exc}") from None
        try:
            ticks = process_start_ticks(proc.pid) or 0
            write_atomic(folder / LAUNCH_FILE, json.dumps({"pid": proc.pid, "start_ticks": ticks}))
        except OSError as exc:
            # Untracked, it would run on while the broker places the job elsewhere.
            _kill_group(proc)
            raise ExecutorError(f"cannot record the launch: {exc.strerror or exc}") from None
        self._tracked[launch.key] = _Tracked(folder, proc.pid, ticks, proc)
        log.info("started job_id=%s attempt=%d pid=%d", launch.job_id, launch.attempt, proc.pid)
        return str(proc.pid)

    def recover(self, records: Sequence[AttemptRecord]) -> None:
        """Watch attempts an earlier agent process launched."""
        for record in records:
            try:
                folder = attempt_dir(self._state_dir, record.job_id, record.attempt)
                self._adopt(record.key, folder)
            except Exception as exc:
                log.warning("cannot recover job_id=%s attempt=%d error=%s", *record.key, exc)
                self._tracked[record.key] = _Tracked(Path("/"), 0, 0, lost=f"not recovered: {exc}")

    def _adopt(self, key: AttemptKey, folder: Path) -> str:
        self._devices.readopt(key, folder)
        try:
            launch = json.loads((folder / LAUNCH_FILE).read_text())
            tracked = _Tracked(folder, int(launch["pid"]), int(launch["start_ticks"]))
        except (OSError, ValueError, KeyError):
            tracked = _Tracked(folder, 0, 0, lost="the agent stopped while launching it")
        self._tracked[key] = tracked
        return str(tracked.pid)

    def cancel(self, key: AttemptKey, checkpoint: bool = False) -> None:
        """SIGTERM the attempt's process group now, SIGKILL it after the grace period (the
        checkpoint grace for a stop with checkpoint); the checkpoint folder is kept."""
        tracked = self._tracked.get(key)
        if tracked is None:
            self._pending.append(ExecutorUpdate(*key, JobState.CANCELLED, 0, "not running"))
            return
        if tracked.kill_at is None:
            grace_s = self._checkpoint_grace_s if checkpoint else self._grace_s
            tracked.kill_at = time.monotonic() + grace_s
            self._signal(tracked, signal.SIGTERM)

    def poll(self) -> list[ExecutorUpdate]:
        """Report attempts that started running or finished since the last poll."""
        updates, self._pending = self._pending, []
        for key, tracked in list(self._tracked.items()):
            try:
                updates += self._poll_one(key, tracked)
            except Exception:
                # One attempt we cannot read must not hide the others; it is tried again.
                log.exception("cannot poll job_id=%s attempt=%d", *key)
        return updates

    def _poll_one(self, key: AttemptKey, tracked: _Tracked) -> list[ExecutorUpdate]:
        if tracked.lost:
            self._forget(key)
            return [ExecutorUpdate(*key, JobState.FAILED, LOST_EXIT_CODE, tracked.lost)]
        alive = self._alive(tracked)
        if alive and tracked.kill_at is not None and time.monotonic() >= tracked.kill_at:
            self._signal(tracked, signal.SIGKILL)
        start_error = read_start_error(tracked.folder)
        if start_error is not None:
            self._forget(key)
            return [
                ExecutorUpdate(
                    *key, JobState.FAILED, LOST_EXIT_CODE, start_error, launch_failed=True
                )
            ]
        out: list[ExecutorUpdate] = []
        code = _read_exit_code(tracked.folder)
        # Running once the wrapper says the command started (an adopted attempt was running).
        started = tracked.proc is None or (tracked.folder / wrapper.STARTED_FILE).exists()
        if not tracked.running_reported and (started or code is not None):
            tracked.running_reported = True
            out.append(ExecutorUpdate(*key, JobState.RUNNING, 0, f"pid {tracked.pid}"))
        if code is None and alive:
            return out
        self._forget(key)
        if code is None:
            out.append(ExecutorUpdate(*key, JobState.FAILED, self._lost_code(tracked), _VANISHED))
        elif code == 0:
            out.append(ExecutorUpdate(*key, JobState.SUCCEEDED, 0, "exit code 0"))
        else:
            out.append(ExecutorUpdate(*key, JobState.FAILED, code, f"exit code {code}"))
        return out

    def _forget(self, key: AttemptKey) -> None:
        """The attempt's final update is out: stop watching it and free its devices."""
        del self._tracked[key]
        self._devices.release(key)

    def _alive(self, tracked: _Tracked) -> bool:
        if tracked.proc is not None:
            return tracked.proc.poll() is None
        ticks = process_start_ticks(tracked.pid)
        return ticks is not None and (tracked.start_ticks == 0 or ticks == tracked.start_ticks)

    def _lost_code(self, tracked: _Tracked) -> int:
        if tracked.proc is not None and tracked.proc.returncode is not None:
            rc = tracked.proc.returncode
            return 128 - rc if rc < 0 else rc
        return LOST_EXIT_CODE

    def _signal(self, tracked: _Tracked, sig: signal.Signals) -> None:
        if not self._alive(tracked):
            return
        try:
            os.killpg(tracked.pid, sig)
        except (ProcessLookupError, PermissionError) as exc:
            log.debug("signal failed pid=%d sig=%s error=%s", tracked.pid, sig.name, exc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError as exc:
        log.debug("kill failed pid=%d error=%s", proc.pid, exc)
    proc.wait()


_VANISHED = "the job's wrapper ended without recording an exit code (killed?)"


def _read_exit_code(folder: Path) -> int | None:
    try:
        return int((folder / wrapper.EXIT_CODE_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
