"""Stops a site's Slurm requeue jobs at the agent's lease end, from a process apart from the agent.

A stalled agent (SIGSTOP, a long pause) cannot scancel anything, while the broker re-places its
jobs once the lease has certainly ended. The Slurm executor therefore starts this watchdog (in its
own session, under `python -I`, standard library only) on its first lease. Each poll it re-reads
the lease the executor publishes (`wrapper.write_lease`: boot-id tagged, CLOCK_BOOTTIME) and the
list of Slurm job ids of the requeue attempts the executor runs; at the stop point it sends them
scancel (SIGTERM: the checkpoint chance), at the lease end SIGKILL. It exits when another watchdog
took over the state dir, or when the agent is gone and nothing is left to stop.
"""

from __future__ import annotations

import enum
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

if __package__:
    from site_agent.executors import wrapper
else:  # run as a script under python -I, which puts no directory on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import wrapper  # type: ignore[import-not-found,no-redef]

LEASE_FILE = "lease"
"""Where the executor publishes the lease (the local executor's name: one lease per state dir)."""
JOBS_FILE = "slurm_lease_jobs"
PID_FILE = "slurm_watchdog.pid"
LOG_FILE = "slurm_watchdog.log"
SCANCEL_TIMEOUT_S = 10.0
"""Bounds a hung scancel (slurmctld down); the step is tried again after RETRY_INTERVAL_S."""
RETRY_INTERVAL_S = 1.0
GIVE_UP_AFTER_MS = 3_600_000
"""With the agent gone, stop retrying a scancel Slurm never answers this long after the lease."""


class Step(enum.IntEnum):
    """What the lease calls for, in increasing order of force."""

    HOLD = 0
    TERM = 1
    KILL = 2


def decide(lease: tuple[int, int] | None, now_ms: int) -> Step:
    """The step for jobs under `lease` (expiry_mono_ms, stop_lead_ms) at `now_ms`.

    No lease of this boot is no reason to stop anything: the agent's own check covers it.
    """
    if lease is None:
        return Step.HOLD
    expiry_ms, lead_ms = lease
    if now_ms >= expiry_ms:
        return Step.KILL
    if now_ms >= expiry_ms - lead_ms:
        return Step.TERM
    return Step.HOLD


def to_send(step: Step, job_ids: Iterable[str], sent: Mapping[str, Step]) -> list[str]:
    """The job ids that still need `step`: each job gets each step at most once."""
    if step is Step.HOLD:
        return []
    return sorted({j for j in job_ids if sent.get(j, Step.HOLD) < step})


def write_jobs(path: Path, job_ids: Iterable[str]) -> None:
    """Publish the Slurm job ids the watchdog must stop at the lease end (atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{j}\n" for j in sorted(set(job_ids))), encoding="utf-8")
    os.replace(tmp, path)


def read_jobs(path: Path) -> list[str]:
    """The published job ids; none if the file is missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    return [line for line in text.split() if line.isdigit()]


def process_alive(pid: int, start_ticks: int) -> bool:
    """True while the process `pid` that started at `start_ticks` runs (stopped counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] not in ("Z", "X") and int(fields[19]) == start_ticks


def start_ticks(pid: int) -> int:
    """Start time of `pid` in clock ticks since boot (0 if it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _scancel(args: list[str], job_ids: list[str]) -> bool:
    """Run scancel; True once the controller answered (an already ended job is no error)."""
    try:
        done = subprocess.run(
            ["scancel", *args, *job_ids],
            capture_output=True,
            text=True,
            timeout=SCANCEL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _log(f"scancel failed args={args} ids={job_ids} error={exc}")
        return False
    _log(f"scancel args={args} ids={job_ids} rc={done.returncode} {done.stderr.strip()[:300]}")
    return True


def _send(step: Step, job_ids: list[str]) -> bool:
    """Carry out `step`; False if Slurm did not answer (it is tried again)."""
    # A plain scancel, as the agent's own cancel: the controller marks the job CANCELLED (a
    # pending one never starts) and every process of it gets SIGTERM, the checkpoint chance.
    answered = _scancel([], job_ids)
    if step is Step.KILL:
        # the lease is over: do not wait out the cluster's KillWait
        answered = _scancel(["--full", "--signal=KILL"], job_ids) and answered
    return answered


def _log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} pid={os.getpid()} {line}", flush=True)


def _owns(pid_file: Path) -> bool:
    try:
        return pid_file.read_text().split()[0] == str(os.getpid())
    except (OSError, IndexError):
        return False


def _finished(lease: tuple[int, int] | None, job_ids: list[str], sent: Mapping[str, Step]) -> bool:
    """Nothing left to enforce: no lease of this boot, every job killed, or Slurm long silent."""
    if lease is None or all(sent.get(j) is Step.KILL for j in job_ids):
        return True
    return wrapper.monotonic_ms() >= lease[0] + GIVE_UP_AFTER_MS


def watch(state_dir: Path, agent_pid: int, agent_ticks: int) -> int:
    """Poll until replaced, or until the agent is gone with nothing left to stop."""
    lease_path = state_dir / LEASE_FILE
    jobs_path = state_dir / JOBS_FILE
    pid_file = state_dir / PID_FILE
    tmp = pid_file.with_name(PID_FILE + ".tmp")
    tmp.write_text(f"{os.getpid()} {start_ticks(os.getpid())}\n")
    os.replace(tmp, pid_file)  # an older watchdog sees this and exits
    _log(f"watching state_dir={state_dir} agent_pid={agent_pid}")
    sent: dict[str, Step] = {}
    while _owns(pid_file):
        lease = wrapper.read_lease(lease_path)
        step = decide(lease, wrapper.monotonic_ms())
        job_ids = read_jobs(jobs_path)
        if step is Step.HOLD:
            sent.clear()  # renewed: a later expiry signals again
        due = to_send(step, job_ids, sent)
        answered = True
        if due:
            _log(f"lease step={step.name} lease={lease} ids={due}")
            answered = _send(step, due)
            if answered:
                sent.update(dict.fromkeys(due, step))
        if not process_alive(agent_pid, agent_ticks) and _finished(lease, job_ids, sent):
            _log("agent gone and nothing left to stop; exiting")
            return 0
        time.sleep(wrapper.WATCH_INTERVAL_S if answered else RETRY_INTERVAL_S)
    _log("replaced by another watchdog; exiting")
    return 0


def main(argv: list[str]) -> int:
    """`slurm_watchdog.py STATE_DIR AGENT_PID AGENT_START_TICKS`."""
    if len(argv) != 3 or not argv[1].isdigit() or not argv[2].isdigit():
        print("usage: slurm_watchdog.py STATE_DIR AGENT_PID AGENT_START_TICKS", file=sys.stderr)
        return 2
    return watch(Path(argv[0]), int(argv[1]), int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
