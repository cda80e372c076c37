"""Stand-in Slurm client commands for measuring the Slurm executor's polling cost without a cluster.

`squeue` lists every job it is asked about (`-j A,B,...`) as running, in the format the
executor asks for; `sacct` and `scontrol` fail loudly, so a poll that needs them shows up.
With it, `polling_cost(state_dir, attempts)` tracks that many attempts and reports the Slurm
commands one poll runs: divide by `executor.poll_interval_s` for commands per second.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from site_agent.executors.slurm import SlurmExecutor
from site_agent.records import AttemptRecord

SQUEUE = """#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = -j ] && ids=$2; shift; done
echo "$ids" | tr , '\\n' | sed 's/$/|N\\/A|RUNNING|0|None|/'
"""
UNEXPECTED = '#!/bin/sh\necho "$0 should not run while every job is queued" >&2\nexit 1\n'


def fake_slurm_bin(folder: Path) -> dict[str, str]:
    """Write the stand-ins into `folder` and return an environment that finds them first."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("squeue", SQUEUE), ("sacct", UNEXPECTED), ("scontrol", UNEXPECTED)):
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin"}


def tracked_executor(state_dir: Path, attempts: int, env: dict[str, str]) -> SlurmExecutor:
    """A Slurm executor watching `attempts` running jobs (recovered, as after an agent restart)."""
    executor = SlurmExecutor(state_dir, env=env)
    records = [AttemptRecord(f"j{i}", 1, 1, handle=str(1000 + i)) for i in range(attempts)]
    executor.recover(records)
    return executor


def polling_cost(state_dir: Path, attempts: int, polls: int = 3) -> Counter[str]:
    """Slurm commands run by `polls` polls of an executor tracking `attempts` running jobs."""
    executor = tracked_executor(state_dir / "state", attempts, fake_slurm_bin(state_dir / "bin"))
    for _ in range(polls):
        executor.poll()
    return executor.commands
