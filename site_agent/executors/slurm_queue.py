"""Pure parts of polling Slurm: one squeue for all attempts, one sacct for those gone from it.

An attempt is one Slurm job, or one job array when an inference job asks for several replicas
(one array task per replica); its state is the combination of its tasks' states.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from computenet.types import JobState
from site_agent.executors.slurm_jobs import SlurmStatus, map_state

SQUEUE_FORMAT = "ArrayJobID:|,ArrayTaskID:|,State:|,exit_code:|,Reason:|"
"""squeue -O fields: `|` after each, no padding; ArrayJobID is the job id of a plain job."""
SACCT_FIELDS = "JobID,State,ExitCode,Reason"
SINGLE_TASK = "N/A"
"""ArrayTaskID of a job that is not an array (squeue prints N/A; sacct has no `_` suffix)."""


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One Slurm job (or array task) as squeue or sacct lists it; exit_code as `CODE:SIGNAL`."""

    state: str
    exit_code: str
    reason: str


Rows = dict[str, dict[str, TaskRow]]
"""Job id (the array's for array tasks) -> task id (SINGLE_TASK for a plain job) -> row."""


def squeue_args(job_ids: Sequence[str]) -> list[str]:
    """One squeue for every tracked job, finished ones included while the controller has them."""
    return ["squeue", "-h", "-r", "-t", "all", "-j", ",".join(job_ids), "-O", SQUEUE_FORMAT]


def sacct_args(job_ids: Sequence[str]) -> list[str]:
    """One sacct for the jobs squeue no longer lists (allocations only, not steps)."""
    return ["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", SACCT_FIELDS]


def wait_status(text: str) -> str:
    """squeue's exit_code (a raw wait status, e.g. 768 or 9) as `CODE:SIGNAL` like sacct's."""
    if not text.strip().isdigit():
        return text.strip() or "0:0"
    status = int(text)
    return f"{(status >> 8) & 0xFF}:{status & 0x7F}"


def parse_squeue_rows(text: str) -> Rows:
    """Rows of `squeue_args` output."""
    rows: Rows = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5 or not parts[0].strip().isdigit():
            continue
        job, task, state, code, reason = (p.strip() for p in parts[:5])
        rows.setdefault(job, {})[task or SINGLE_TASK] = TaskRow(state, wait_status(code), reason)
    return rows


def parse_sacct_rows(text: str) -> Rows:
    """Rows of `sacct_args` output; `4_[1-2]` (tasks not started yet) stands for tasks 1 and 2."""
    rows: Rows = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        job, _, task = parts[0].partition("_")
        if not job.isdigit():
            continue  # heterogeneous job components and the like: not submitted by the agent
        row = TaskRow(parts[1], parts[2], parts[3] if len(parts) > 3 else "")
        for one in _task_ids(task) if task else [SINGLE_TASK]:
            rows.setdefault(job, {})[one] = row
    return rows


def _task_ids(text: str) -> list[str]:
    """`3`, `[1-2]`, `[0,2-3]` -> the task ids (a `%limit` suffix is ignored)."""
    body = text.strip("[]").split("%")[0]
    ids: list[str] = []
    for part in body.split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            ids += [str(i) for i in range(int(low), int(high or low) + 1)]
    return ids


def missing(job_ids: Iterable[str], queued: Rows, tasks: Mapping[str, int]) -> list[str]:
    """Jobs to ask sacct about: gone from squeue, or with fewer tasks there than they have."""
    return [j for j in job_ids if len(queued.get(j, {})) < tasks.get(j, 1)]


def merged(queued: Mapping[str, TaskRow], accounted: Mapping[str, TaskRow]) -> dict[str, TaskRow]:
    """One row per task: squeue's (the controller's view is newer) over sacct's."""
    return {**accounted, **queued}


def attempt_status(rows: Mapping[str, TaskRow], tasks: int = 1) -> SlurmStatus | None:
    """The attempt's state from its tasks; None if nothing is known about any of them.

    Running while any task runs, or while some finished and others still wait; waiting
    (state None) while all wait; final once every task is: failed if any failed, else
    cancelled if any was cancelled, else succeeded.
    """
    if not rows:
        return None
    statuses = [map_state(row.state, row.exit_code, row.reason) for row in rows.values()]
    final = [s for s in statuses if s.state not in (None, JobState.RUNNING)]
    if len(final) >= tasks and len(final) == len(statuses):
        for wanted in (JobState.FAILED, JobState.CANCELLED):
            if found := next((s for s in final if s.state is wanted), None):
                return found
        return final[0]
    running = next((s for s in statuses if s.state is JobState.RUNNING), None)
    if running is not None:
        return running
    if final:
        return SlurmStatus(JobState.RUNNING, 0, f"{len(final)} of {tasks} replicas finished")
    return statuses[0]
