"""The `slurm` executor: sbatch to submit, squeue/scontrol/sacct to watch, scancel to stop."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from computenet.types import JobState
from site_agent.executors import slurm_watchdog, wrapper
from site_agent.executors.base import (
    ExecutorError,
    Launch,
    attempt_dir,
    check_launchable,
    claim,
    read_start_error,
    write_atomic,
)
from site_agent.executors.slurm_jobs import (
    SCRIPT_FILE,
    SlurmStatus,
    batch_script,
    job_name,
    map_state,
    parse_sacct,
    parse_scontrol_job,
    parse_squeue,
    sbatch_args,
)
from site_agent.records import AttemptKey, AttemptRecord, ExecutorUpdate

log = logging.getLogger(__name__)

SLURM_ID_FILE = "slurm_job_id"
LOST_EXIT_CODE = -1


@dataclass(slots=True)
class _Tracked:
    slurm_id: str
    requeue: bool = True
    reported: JobState | None = None
    lost: str = ""


class SlurmExecutor:
    """Submits each attempt as a batch job; every Slurm command runs with the given `env`."""

    kind = "slurm"

    def __init__(
        self,
        state_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        partition: str | None = None,
        account: str | None = None,
        extra_args: Sequence[str] = (),
        time_headroom: float = 1.25,
        timeout_s: float = 30.0,
    ) -> None:
        self._state_dir = state_dir
        self._env = dict(env) if env is not None else None
        self._partition = partition
        self._account = account
        self._extra = list(extra_args)
        self._headroom = time_headroom
        self._timeout_s = timeout_s
        self._tracked: dict[AttemptKey, _Tracked] = {}
        self._pending: list[ExecutorUpdate] = []
        self._lease_path = state_dir / slurm_watchdog.LEASE_FILE
        self._jobs_path = state_dir / slurm_watchdog.JOBS_FILE
        self._watchdog: subprocess.Popen[bytes] | None = None

    def set_lease(self, expiry_mono_ms: int, stop_lead_ms: int) -> None:
        """Publish the lease, and start the watchdog that enforces it while the agent stalls."""
        self._state_dir.mkdir(parents=True, exist_ok=True)
        wrapper.write_lease(self._lease_path, expiry_mono_ms, stop_lead_ms)
        self._ensure_watchdog()

    def lease(self) -> int | None:
        """The lease an earlier agent process of this boot published (its watchdog enforces it)."""
        held = wrapper.read_lease(self._lease_path)
        return held[0] if held is not None else None

    @property
    def watchdog_pid(self) -> int | None:
        """The pid of the lease watchdog this executor started, if any."""
        return self._watchdog.pid if self._watchdog is not None else None

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.poll() is not None:
            self._publish_jobs()
            self._watchdog = self._start_watchdog()

    def _start_watchdog(self) -> subprocess.Popen[bytes]:
        # its own session: a signal to the agent's process group does not reach it; a watchdog
        # an earlier agent process left sees the new one take the pid file and exits
        me = os.getpid()
        command = [
            sys.executable,
            "-I",
            slurm_watchdog.__file__,
            str(self._state_dir),
            str(me),
            str(slurm_watchdog.start_ticks(me)),
        ]
        try:
            with open(self._state_dir / slurm_watchdog.LOG_FILE, "ab") as out:
                proc = subprocess.Popen(
                    command,
                    cwd=self._state_dir,
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                )
        except OSError as exc:
            raise ExecutorError(f"cannot start the lease watchdog: {exc.strerror or exc}") from None
        log.info("started the slurm lease watchdog pid=%d", proc.pid)
        return proc

    def _publish_jobs(self) -> None:
        """Tell the watchdog which Slurm jobs to stop at the lease end: the requeue attempts."""
        ids = [t.slurm_id for t in self._tracked.values() if t.requeue and t.slurm_id]
        try:
            slurm_watchdog.write_jobs(self._jobs_path, ids)
        except OSError as exc:
            # the agent's own lease check still scancels them; only the stalled case is uncovered
            log.warning("cannot publish the lease jobs path=%s error=%s", self._jobs_path, exc)

    def start(self, launch: Launch) -> str:
        """Submit with sbatch; adopt the earlier submission if the folder was claimed before."""
        check_launchable(launch.spec.command, launch.job_env())
        folder = attempt_dir(self._state_dir, launch.job_id, launch.attempt)
        name = job_name(launch.job_id, launch.attempt)
        requeue = launch.spec.on_site_loss == "requeue"
        if not claim(folder):
            return self._adopt(launch.key, folder, requeue)
        script = folder / SCRIPT_FILE
        write_atomic(script, batch_script(launch.spec.command, launch.job_env()))
        args = sbatch_args(
            launch.spec,
            name=name,
            folder=folder,
            headroom=self._headroom,
            partition=self._partition,
            account=self._account,
            extra=self._extra,
        )
        proc = self._run(["sbatch", *args, str(script)])
        if proc.returncode == _TIMED_OUT:
            # sbatch may have submitted before it hung: adopt that job rather than fail an
            # attempt Slurm could still run.
            found = self._find_by_name(name)
            if found:
                proc = subprocess.CompletedProcess(proc.args, 0, found, "")
        if proc.returncode != 0:
            raise ExecutorError(f"sbatch failed: {_last_line(proc.stderr)}")
        slurm_id = proc.stdout.strip().split(";")[0]
        if not slurm_id.isdigit():
            raise ExecutorError(f"sbatch printed no job id: {proc.stdout.strip()!r}")
        write_atomic(folder / SLURM_ID_FILE, slurm_id + "\n")
        self._tracked[launch.key] = _Tracked(slurm_id, requeue)
        self._publish_jobs()
        log.info("submitted job_id=%s attempt=%d slurm_id=%s", *launch.key, slurm_id)
        return slurm_id

    def recover(self, records: Sequence[AttemptRecord]) -> None:
        """Watch Slurm jobs submitted by an earlier agent process."""
        for record in records:
            requeue = record.requeues_on_site_loss
            if record.handle.isdigit():
                self._tracked[record.key] = _Tracked(record.handle, requeue)
                continue
            try:
                folder = attempt_dir(self._state_dir, record.job_id, record.attempt)
                self._adopt(record.key, folder, requeue)
            except Exception as exc:
                log.warning("cannot recover job_id=%s attempt=%d error=%s", *record.key, exc)
                self._tracked[record.key] = _Tracked("", lost=f"not recovered: {exc}")
        self._publish_jobs()
        if wrapper.read_lease(self._lease_path) is not None:
            # the earlier process's lease goes on: enforce it before the first renewal comes
            try:
                self._ensure_watchdog()
            except ExecutorError as exc:
                log.warning("%s; the next lease renewal tries again", exc)

    def _adopt(self, key: AttemptKey, folder: Path, requeue: bool) -> str:
        try:
            slurm_id = (folder / SLURM_ID_FILE).read_text().strip()
        except OSError:
            slurm_id = self._find_by_name(job_name(*key))
        tracked = _Tracked(slurm_id, requeue) if slurm_id else _Tracked("", lost=_LOST_LAUNCH)
        self._tracked[key] = tracked
        self._publish_jobs()
        return slurm_id

    def _find_by_name(self, name: str) -> str:
        proc = self._run(["squeue", "-h", f"--name={name}", "-o", "%i"])
        ids = proc.stdout.split() if proc.returncode == 0 else []
        return ids[0] if ids else ""

    def cancel(self, key: AttemptKey) -> None:
        """scancel the job; its CANCELLED state arrives through `poll`."""
        tracked = self._tracked.get(key)
        if tracked is None or not tracked.slurm_id:
            self._pending.append(ExecutorUpdate(*key, JobState.CANCELLED, 0, "not running"))
            return
        proc = self._run(["scancel", tracked.slurm_id])
        if proc.returncode != 0:
            log.warning("scancel failed slurm_id=%s error=%s", tracked.slurm_id, proc.stderr)

    def poll(self) -> list[ExecutorUpdate]:
        """Query each tracked job and report its transitions."""
        updates, self._pending = self._pending, []
        before = len(self._tracked)
        for key, tracked in list(self._tracked.items()):
            try:
                updates += self._poll_one(key, tracked)
            except Exception:
                # One attempt we cannot query must not hide the others; it is tried again.
                log.exception("cannot poll job_id=%s attempt=%d", *key)
        if len(self._tracked) != before:
            self._publish_jobs()
        return updates

    def _poll_one(self, key: AttemptKey, tracked: _Tracked) -> list[ExecutorUpdate]:
        if tracked.lost:
            del self._tracked[key]
            return [ExecutorUpdate(*key, JobState.FAILED, LOST_EXIT_CODE, tracked.lost)]
        status = self.status(tracked.slurm_id)
        if status.state is None or status.state is tracked.reported:
            return []
        if status.state is not JobState.RUNNING:
            del self._tracked[key]
        tracked.reported = status.state
        if status.state is JobState.FAILED:
            start_error = read_start_error(attempt_dir(self._state_dir, *key))
            if start_error is not None:
                return [
                    ExecutorUpdate(
                        *key, JobState.FAILED, LOST_EXIT_CODE, start_error, launch_failed=True
                    )
                ]
        return [ExecutorUpdate(*key, status.state, status.exit_code, status.message)]

    def status(self, slurm_id: str) -> SlurmStatus:
        """squeue while queued, then scontrol, then sacct once the controller forgot the job."""
        queued = self._run(["squeue", "-h", "-j", slurm_id, "-o", "%T|%r"])
        if queued.returncode != 0 and not _unknown_job(queued.stderr):
            return SlurmStatus(None, 0, f"squeue failed: {_last_line(queued.stderr)}")
        found = parse_squeue(queued.stdout) if queued.returncode == 0 else None
        if found is not None and map_state(found[0]).state in (None, JobState.RUNNING):
            return map_state(found[0], "0:0", found[1])
        shown = self._run(["scontrol", "show", "job", slurm_id, "-o"])
        if shown.returncode != 0 and not _unknown_job(shown.stderr):
            return SlurmStatus(None, 0, f"scontrol failed: {_last_line(shown.stderr)}")
        fields = parse_scontrol_job(shown.stdout) if shown.returncode == 0 else {}
        if "JobState" in fields:
            return map_state(
                fields["JobState"], fields.get("ExitCode", "0:0"), fields.get("Reason", "")
            )
        acct = self._run(["sacct", "-n", "-P", "-X", "-j", slurm_id, "-o", "State,ExitCode,Reason"])
        row = parse_sacct(acct.stdout) if acct.returncode == 0 else None
        if row is not None:
            return map_state(*row)
        return SlurmStatus(JobState.FAILED, LOST_EXIT_CODE, f"slurm job {slurm_id} vanished")

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                args,
                capture_output=True,
                text=True,
                env=self._env,
                timeout=self._timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise ExecutorError(f"{args[0]} not found; is Slurm installed on this host?") from None
        except OSError as exc:
            raise ExecutorError(f"cannot run {args[0]}: {exc.strerror or exc}") from None
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, _TIMED_OUT, "", f"{args[0]} timed out")


_TIMED_OUT = 124
_LOST_LAUNCH = "the agent stopped while submitting it and Slurm has no job of that name"


def _unknown_job(stderr: str) -> bool:
    return "invalid job id" in stderr.lower()


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
