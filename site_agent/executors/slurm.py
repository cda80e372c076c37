"""The `slurm` executor: sbatch to submit, squeue/scontrol/sacct to watch, scancel to stop."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from computenet.types import JobState
from site_agent.capacity.base import CapacityError
from site_agent.capacity.slurm import run_scontrol_nodes
from site_agent.capacity.slurm_gres import GresModels, gres_shape
from site_agent.checkpoints import checkpoint_dir
from site_agent.executors import slurm_queue, slurm_watchdog, wrapper
from site_agent.executors.base import (
    CHECKPOINT_DIR_VAR,
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
    GresShape,
    SlurmStatus,
    batch_script,
    job_name,
    sbatch_args,
)
from site_agent.records import AttemptKey, AttemptRecord, ExecutorUpdate

log = logging.getLogger(__name__)

SLURM_ID_FILE = "slurm_job_id"
LOST_EXIT_CODE = -1


VANISHED_POLLS = 3
"""Polls a job may be missing from both squeue and sacct before it counts as vanished (sacct
learns of a job a moment after the controller does)."""


@dataclass(slots=True)
class _Tracked:
    slurm_id: str
    requeue: bool = True
    reported: JobState | None = None
    lost: str = ""
    tasks: int = 1
    """Array tasks (inference replicas); 1 for a plain job."""
    requeued: bool = False
    """Seen waiting again after it ran (logged once per requeue)."""
    unseen: int = 0
    """Consecutive polls that found the job neither in squeue nor in sacct."""
    kill_at: float | None = None
    """When a job signalled to checkpoint gets SIGKILL if still there (time.monotonic)."""


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
        gres_models: Mapping[str, str] | None = None,
        checkpoint_grace_s: float = 10.0,
    ) -> None:
        self._state_dir = state_dir
        self._checkpoint_grace_s = checkpoint_grace_s
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
        self._models = GresModels.of(gres_models)
        self.commands: Counter[str] = Counter()
        """Slurm commands run so far, by name (squeue, sacct, sbatch, ...): the polling cost."""

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
        """Submit with sbatch; adopt the earlier submission if the folder was claimed before.

        The job's checkpoint folder is under the agent's state dir, which the Slurm nodes must
        see at the same path (a shared file system), as they see the job's own folder.
        """
        checkpoints = checkpoint_dir(self._state_dir, launch.job_id)
        job_env = {**launch.job_env(), CHECKPOINT_DIR_VAR: str(checkpoints)}
        check_launchable(launch.spec.command, job_env)
        folder = attempt_dir(self._state_dir, launch.job_id, launch.attempt)
        name = job_name(launch.job_id, launch.attempt)
        requeue = launch.spec.on_site_loss == "requeue"
        if not claim(folder):
            return self._adopt(launch.key, folder, requeue, launch.spec.replicas)
        try:
            checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExecutorError(f"cannot create the checkpoint folder: {exc.strerror}") from None
        script = folder / SCRIPT_FILE
        write_atomic(script, batch_script(launch.spec.command, job_env))
        args = sbatch_args(
            launch.spec,
            name=name,
            folder=folder,
            headroom=self._headroom,
            partition=self._partition,
            account=self._account,
            extra=self._extra,
            shape=self._shape(launch.spec.resources.accelerator, launch.spec.resources.count),
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
        self._tracked[launch.key] = _Tracked(slurm_id, requeue, tasks=launch.spec.replicas)
        self._publish_jobs()
        log.info(
            "submitted job_id=%s attempt=%d slurm_id=%s args=%s",
            *launch.key,
            slurm_id,
            " ".join(a for a in args if a.startswith(("--gres", "--nodes", "--array", "--excl"))),
        )
        return slurm_id

    def _shape(self, model: str, count: int) -> GresShape | None:
        """The pool's GRES type and node shape, read from Slurm for each GPU submission."""
        if count <= 0 or not model:
            return None
        self.commands["scontrol"] += 1
        try:
            nodes = run_scontrol_nodes(self._env, self._timeout_s)
        except CapacityError as exc:
            # sbatch still gets --gres=gpu:MODEL:COUNT and says itself what it cannot run
            log.warning("cannot read the node shape model=%s error=%s", model, exc)
            return None
        return gres_shape(nodes, model, self._models, self._partition)

    def recover(self, records: Sequence[AttemptRecord]) -> None:
        """Watch Slurm jobs submitted by an earlier agent process."""
        for record in records:
            requeue = record.requeues_on_site_loss
            if record.handle.isdigit():
                self._tracked[record.key] = _Tracked(record.handle, requeue, tasks=_tasks(record))
                continue
            try:
                folder = attempt_dir(self._state_dir, record.job_id, record.attempt)
                self._adopt(record.key, folder, requeue, _tasks(record))
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

    def _adopt(self, key: AttemptKey, folder: Path, requeue: bool, tasks: int = 1) -> str:
        try:
            slurm_id = (folder / SLURM_ID_FILE).read_text().strip()
        except OSError:
            slurm_id = self._find_by_name(job_name(*key))
        tracked = (
            _Tracked(slurm_id, requeue, tasks=tasks)
            if slurm_id
            else _Tracked("", lost=_LOST_LAUNCH)
        )
        self._tracked[key] = tracked
        self._publish_jobs()
        return slurm_id

    def _find_by_name(self, name: str) -> str:
        proc = self._run(["squeue", "-h", f"--name={name}", "-o", "%i"])
        ids = proc.stdout.split() if proc.returncode == 0 else []
        return ids[0] if ids else ""

    def cancel(self, key: AttemptKey, checkpoint: bool = False) -> None:
        """scancel the job; its final state arrives through `poll`.

        With `checkpoint`, a running job gets SIGTERM only (`scancel --signal=TERM --full`: the
        batch shell, which execs the command, and every step) and `checkpoint_grace_s` to exit;
        a poll after that SIGKILLs what is left. Without, a plain scancel (Slurm's own SIGTERM,
        then SIGKILL after the cluster's KillWait); a job still waiting is always just removed.
        """
        tracked = self._tracked.get(key)
        if tracked is None or not tracked.slurm_id:
            self._pending.append(ExecutorUpdate(*key, JobState.CANCELLED, 0, "not running"))
            return
        if checkpoint and tracked.reported is JobState.RUNNING:
            if tracked.kill_at is None:
                tracked.kill_at = time.monotonic() + self._checkpoint_grace_s
                self._scancel(tracked.slurm_id, "--signal=TERM", "--full")
            return
        self._scancel(tracked.slurm_id)

    def _scancel(self, slurm_id: str, *args: str) -> None:
        proc = self._run(["scancel", *args, slurm_id])
        if proc.returncode != 0:
            log.warning("scancel failed slurm_id=%s args=%s error=%s", slurm_id, args, proc.stderr)

    def _kill_overdue(self) -> None:
        """SIGKILL the jobs asked to checkpoint whose grace has run out."""
        now = time.monotonic()
        for tracked in self._tracked.values():
            if tracked.kill_at is not None and now >= tracked.kill_at and tracked.slurm_id:
                tracked.kill_at = None  # once: the poll that sees it end reports it
                log.info("checkpoint grace over, killing slurm_id=%s", tracked.slurm_id)
                self._scancel(tracked.slurm_id, "--signal=KILL", "--full")

    def poll(self) -> list[ExecutorUpdate]:
        """Report transitions of every tracked job: one squeue, and one sacct for those gone.

        The number of Slurm commands per poll does not grow with the number of attempts.
        """
        updates, self._pending = self._pending, []
        before = len(self._tracked)
        for key, tracked in list(self._tracked.items()):
            if tracked.lost:
                del self._tracked[key]
                updates.append(ExecutorUpdate(*key, JobState.FAILED, LOST_EXIT_CODE, tracked.lost))
        live = {key: t for key, t in self._tracked.items() if t.slurm_id}
        try:
            self._kill_overdue()
            updates += self._poll_live(live) if live else []
        except Exception:
            # a poll that cannot query Slurm reports nothing new; the next one tries again
            log.exception("cannot poll slurm jobs=%d", len(live))
        if len(self._tracked) != before:
            self._publish_jobs()
        return updates

    def _poll_live(self, live: dict[AttemptKey, _Tracked]) -> list[ExecutorUpdate]:
        ids = sorted({t.slurm_id for t in live.values()}, key=int)
        queued = self._squeue(ids)
        if queued is None:
            return []  # the controller did not answer: nothing is known, try next poll
        tasks = {t.slurm_id: t.tasks for t in live.values()}
        gone = slurm_queue.missing(ids, queued, tasks)
        accounted, final = self._sacct(gone) if gone else ({}, True)
        updates: list[ExecutorUpdate] = []
        for key, tracked in live.items():
            rows = slurm_queue.merged(
                queued.get(tracked.slurm_id, {}), accounted.get(tracked.slurm_id, {})
            )
            status = slurm_queue.attempt_status(rows, tracked.tasks)
            if status is None:
                # neither squeue nor sacct knows it (yet); `final` is False if sacct failed
                tracked.unseen += 1 if final else 0
                if tracked.unseen < VANISHED_POLLS:
                    continue
                status = SlurmStatus(
                    JobState.FAILED, LOST_EXIT_CODE, f"slurm job {tracked.slurm_id} vanished"
                )
            tracked.unseen = 0
            updates += self._transition(key, tracked, status)
        return updates

    def _transition(
        self, key: AttemptKey, tracked: _Tracked, status: SlurmStatus
    ) -> list[ExecutorUpdate]:
        requeued = status.state is None and tracked.reported is JobState.RUNNING
        if requeued and not tracked.requeued:
            # requeued after preemption or a node failure: the same attempt waits to run again,
            # and stays running for the broker (it reports no second RUNNING when it restarts)
            log.info("requeued job_id=%s attempt=%d %s", *key, status.message)
        tracked.requeued = requeued
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

    def _squeue(self, ids: list[str]) -> slurm_queue.Rows | None:
        proc = self._run(slurm_queue.squeue_args(ids))
        if proc.returncode == 0:
            return slurm_queue.parse_squeue_rows(proc.stdout)
        if _unknown_job(proc.stderr):
            return {}  # every job asked about has left the controller
        log.warning("squeue failed jobs=%d error=%s", len(ids), _last_line(proc.stderr))
        return None

    def _sacct(self, ids: list[str]) -> tuple[slurm_queue.Rows, bool]:
        """Rows for jobs squeue no longer has, and whether the answer is final (sacct worked,
        or this cluster keeps no accounting, so nothing more will ever be known)."""
        proc = self._run(slurm_queue.sacct_args(ids))
        if proc.returncode == 0:
            return slurm_queue.parse_sacct_rows(proc.stdout), True
        disabled = "accounting storage is disabled" in proc.stderr.lower()
        if not disabled:
            log.warning("sacct failed jobs=%d error=%s", len(ids), _last_line(proc.stderr))
        return {}, disabled

    def status(self, slurm_id: str, tasks: int = 1) -> SlurmStatus:
        """One job's state as a poll sees it (squeue, then sacct once it left the controller)."""
        queued = self._squeue([slurm_id])
        if queued is None:
            return SlurmStatus(None, 0, "squeue failed")
        rows = queued.get(slurm_id, {})
        if len(rows) < tasks:
            rows = slurm_queue.merged(rows, self._sacct([slurm_id])[0].get(slurm_id, {}))
        found = slurm_queue.attempt_status(rows, tasks)
        if found is not None:
            return found
        return SlurmStatus(JobState.FAILED, LOST_EXIT_CODE, f"slurm job {slurm_id} vanished")

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        self.commands[args[0]] += 1
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


def _tasks(record: AttemptRecord) -> int:
    return record.spec.replicas if record.spec is not None else 1


def _unknown_job(stderr: str) -> bool:
    return "invalid job id" in stderr.lower()


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
