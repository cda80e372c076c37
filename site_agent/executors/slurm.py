"""The `slurm` executor: sbatch to submit, squeue/scontrol/sacct to watch, scancel to stop."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from computenet.types import JobState
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

    def set_lease(self, expiry_mono_ms: int, stop_lead_ms: int) -> None:
        """Slurm jobs have no watchdog here: the agent's own lease check scancels them."""

    def lease(self) -> int | None:
        """None: a restarted agent gives recovered Slurm jobs one lease from its start."""
        return None

    def start(self, launch: Launch) -> str:
        """Submit with sbatch; adopt the earlier submission if the folder was claimed before."""
        check_launchable(launch.spec.command, launch.job_env())
        folder = attempt_dir(self._state_dir, launch.job_id, launch.attempt)
        name = job_name(launch.job_id, launch.attempt)
        if not claim(folder):
            return self._adopt(launch.key, folder)
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
        self._tracked[launch.key] = _Tracked(slurm_id)
        log.info("submitted job_id=%s attempt=%d slurm_id=%s", *launch.key, slurm_id)
        return slurm_id

    def recover(self, records: Sequence[AttemptRecord]) -> None:
        """Watch Slurm jobs submitted by an earlier agent process."""
        for record in records:
            if record.handle.isdigit():
                self._tracked[record.key] = _Tracked(record.handle)
                continue
            try:
                folder = attempt_dir(self._state_dir, record.job_id, record.attempt)
                self._adopt(record.key, folder)
            except Exception as exc:
                log.warning("cannot recover job_id=%s attempt=%d error=%s", *record.key, exc)
                self._tracked[record.key] = _Tracked("", lost=f"not recovered: {exc}")

    def _adopt(self, key: AttemptKey, folder: Path) -> str:
        try:
            slurm_id = (folder / SLURM_ID_FILE).read_text().strip()
        except OSError:
            slurm_id = self._find_by_name(job_name(*key))
        tracked = _Tracked(slurm_id) if slurm_id else _Tracked("", lost=_LOST_LAUNCH)
        self._tracked[key] = tracked
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
        for key, tracked in list(self._tracked.items()):
            try:
                updates += self._poll_one(key, tracked)
            except Exception:
                # One attempt we cannot query must not hide the others; it is tried again.
                log.exception("cannot poll job_id=%s attempt=%d", *key)
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
