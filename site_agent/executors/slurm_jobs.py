"""Pure parts of the Slurm executor: sbatch arguments, and Slurm job states as ComputeNet states."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from computenet.spec import JobSpec
from computenet.types import JobState
from site_agent.executors.base import START_ERROR_FILE

WAITING_STATES = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED"}
)
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"})
FAILED_STATES = frozenset(
    {"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
)
PREEMPTED = "PREEMPTED"
"""Final in Slurm: the job was preempted and not requeued (PreemptMode=CANCEL, or requeue off).
A preempted job Slurm requeues shows REQUEUED then PENDING instead: the same attempt waits."""
SCRIPT_FILE = "job.sh"
REPLICA_VAR = "COMPUTENET_REPLICA"
_FIELD = re.compile(r"(\S+?)=(\S*)")


@dataclass(frozen=True, slots=True)
class GresShape:
    """How a pool's cards sit in Slurm: the GRES type to ask for, nodes, cards on each node."""

    gres_type: str
    nodes: int
    cards_per_node: int


@dataclass(frozen=True, slots=True)
class SlurmStatus:
    """A Slurm job's state as ComputeNet sees it; `state` None means still waiting in the queue."""

    state: JobState | None
    exit_code: int
    message: str


def job_name(job_id: str, attempt: int) -> str:
    """The Slurm job name of an attempt, also used to find it again after a restart."""
    return f"cn-{job_id}-{attempt}"


def time_limit_minutes(duration_hours: float, headroom: float) -> int:
    """--time in minutes: the expected duration with headroom, at least one minute."""
    return max(1, math.ceil(duration_hours * 60 * headroom))


def sbatch_args(
    spec: JobSpec,
    *,
    name: str,
    folder: Path,
    headroom: float = 1.25,
    partition: str | None = None,
    account: str | None = None,
    extra: Sequence[str] = (),
    shape: GresShape | None = None,
) -> list[str]:
    """Arguments for `sbatch --parsable` (without the script path); `shape` is the pool's."""
    res = spec.resources
    nodes = node_count(spec, shape)
    # replicas are array tasks: one log pair each (%a is the task id)
    suffix = "-%a" if spec.replicas > 1 else ""
    args = [
        "--parsable",
        f"--job-name={name}",
        f"--chdir={folder}",
        f"--output={folder / f'stdout{suffix}.log'}",
        f"--error={folder / f'stderr{suffix}.log'}",
        f"--cpus-per-task={max(1, math.ceil(res.cpu_cores / nodes))}",
        f"--time={time_limit_minutes(spec.duration_hours, headroom)}",
    ]
    if res.memory_gb > 0:
        # --mem is per node: a job over several nodes spreads its memory like its cards
        args.append(f"--mem={max(1, math.ceil(res.memory_gb * 1024 / nodes))}M")
    args += gpu_args(spec, shape)
    if partition:
        args.append(f"--partition={partition}")
    if account:
        args.append(f"--account={account}")
    return [*args, *extra]


def node_count(spec: JobSpec, shape: GresShape | None) -> int:
    """Nodes one replica needs: 1 if its cards fit on a node (or the shape is unknown)."""
    count = spec.resources.count
    per_node = shape.cards_per_node if shape is not None else 0
    return math.ceil(count / per_node) if 0 < per_node < count else 1


def gpu_args(spec: JobSpec, shape: GresShape | None = None) -> list[str]:
    """--gres (and --nodes, --ntasks-per-node, --exclusive for multi-node gangs), --array.

    A job that fits on one node asks for its cards there. One with more cards than a node
    holds asks for whole nodes: N = ceil(count / cards per node), the cards split evenly,
    one task per node (the batch script runs on the first; `srun` starts one per node), and
    --exclusive when it is a gang, since the spec has no flag of its own for exclusivity and a
    gang shares its nodes badly. Inference replicas become a job array, one task per replica.
    """
    res = spec.resources
    args: list[str] = []
    if res.count > 0:
        gres_type = shape.gres_type if shape is not None else res.accelerator
        nodes = node_count(spec, shape)
        cards = math.ceil(res.count / nodes)
        args.append(f"--gres=gpu:{gres_type}:{cards}" if gres_type else f"--gres=gpu:{cards}")
        if nodes > 1:
            args += [f"--nodes={nodes}", "--ntasks-per-node=1"]
            if spec.gang:
                args.append("--exclusive")
    if spec.replicas > 1:
        args.append(f"--array=0-{spec.replicas - 1}")
    return args


def batch_script(command: Sequence[str], env: Mapping[str, str]) -> str:
    """A POSIX shell batch script that exports the job variables and execs the command.

    A command the shell cannot find is recorded in `start_error` (in the job's folder, its
    working directory) so the agent reports a launch failure, not the job's own exit 127.
    """
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    # each replica of an inference job is one array task: tell it which one it is
    exports += f"export {REPLICA_VAR}=${{SLURM_ARRAY_TASK_ID:-0}}\n"
    program = shlex.quote(command[0])
    missing = shlex.quote(f"cannot start {command[0][:200]!r}: command not found")
    check = (
        f"if ! command -v {program} >/dev/null 2>&1; then\n"
        f"  echo {missing} >{START_ERROR_FILE}; echo {missing} >&2; exit 127\n"
        "fi\n"
    )
    return f"#!/bin/sh\n{exports}{check}exec {shlex.join(command)}\n"


def parse_exit_code(text: str) -> int:
    """Slurm's `CODE:SIGNAL` as one shell-style exit code (128 + signal when signalled)."""
    code, _, sig = text.partition(":")
    code_n = int(code) if code.strip().isdigit() else 0
    sig_n = int(sig) if sig.strip().isdigit() else 0
    return 128 + sig_n if sig_n and not code_n else code_n


def map_state(state: str, exit_code: str = "0:0", reason: str = "") -> SlurmStatus:
    """Slurm state (e.g. "CANCELLED by 0", "FAILED") onto running/succeeded/failed/cancelled."""
    word = state.split()[0].rstrip("+") if state.strip() else "UNKNOWN"
    code = parse_exit_code(exit_code)
    detail = f"slurm {word}" + (f" reason={reason}" if reason and reason != "None" else "")
    if word in WAITING_STATES:
        return SlurmStatus(None, 0, detail)
    if word in RUNNING_STATES:
        return SlurmStatus(JobState.RUNNING, 0, detail)
    if word == "COMPLETED":
        return SlurmStatus(JobState.SUCCEEDED if code == 0 else JobState.FAILED, code, detail)
    if word == "CANCELLED":
        return SlurmStatus(JobState.CANCELLED, code, detail)
    if word == PREEMPTED:
        # the site's scheduler took the nodes back for its own work: not the job's fault and
        # not a cancel the federation asked for, so the broker may place the job again
        return SlurmStatus(JobState.FAILED, code, f"{detail} (preempted by the site, not requeued)")
    if word in FAILED_STATES:
        return SlurmStatus(JobState.FAILED, code, f"{detail} exit_code={exit_code}")
    return SlurmStatus(JobState.FAILED, code, f"{detail} (unknown state)")


def parse_squeue(text: str) -> tuple[str, str] | None:
    """(state, reason) from `squeue -h -j ID -o "%T|%r"`; None if the job left the queue."""
    for line in text.splitlines():
        state, _, reason = line.strip().partition("|")
        if state:
            return state, reason
    return None


def parse_scontrol_job(text: str) -> dict[str, str]:
    """KEY=VALUE fields of `scontrol show job ID -o`."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return dict(_FIELD.findall(line))


def parse_sacct(text: str) -> tuple[str, str, str] | None:
    """(state, exit_code, reason) from `sacct -n -P -X -o State,ExitCode,Reason`."""
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            return parts[0], parts[1], parts[2] if len(parts) > 2 else ""
    return None
