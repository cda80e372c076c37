"""Slurm polling cost: commands the Slurm executor runs per second at 1, 100 and 1,000 attempts.

The executor tracks N running attempts (recovered, as after an agent restart) against stand-in
`squeue` / `sacct` / `scontrol` commands that answer for every job they are asked about
(tests/support/fake_slurm.py), and polls a few times; every command it starts is counted by name.
What is measured is the executor's own behaviour: how many processes it starts per poll, and so
how much load it puts on slurmctld, as the number of attempts grows. The target is flat.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from site_agent.config import ExecutorConfig
from tests.support.fake_slurm import polling_cost

FULL_ATTEMPTS = (1, 100, 1000)
SMOKE_ATTEMPTS = (1, 100)
POLLS = 5


def _poll_interval_s() -> float:
    """The executor's default poll interval (the `executor.poll_interval_s` config field)."""
    return float(ExecutorConfig.model_fields["poll_interval_s"].default)


def run(smoke: bool) -> dict[str, object]:
    """Commands per poll and per second at each attempt count; ok if flat."""
    interval_s = _poll_interval_s()
    rows: list[dict[str, object]] = []
    per_poll: set[float] = set()
    for attempts in SMOKE_ATTEMPTS if smoke else FULL_ATTEMPTS:
        with tempfile.TemporaryDirectory(prefix="cn-slurm-poll-") as folder:
            started = time.perf_counter()
            counts = polling_cost(Path(folder), attempts, polls=POLLS)
            seconds = time.perf_counter() - started
        total = sum(counts.values())
        per_poll.add(round(total / POLLS, 3))
        rows.append(
            {
                "attempts": attempts,
                "polls": POLLS,
                "commands": dict(sorted(counts.items())),
                "commands_per_poll": round(total / POLLS, 3),
                "commands_per_s": round(total / (POLLS * interval_s), 3),
                "poll_wall_ms": round(seconds * 1000 / POLLS, 1),
            }
        )
    flat = len(per_poll) == 1
    return {
        "poll_interval_s": interval_s,
        "rows": rows,
        "flat": flat,
        "ok": flat,
        "reasons": [] if flat else [f"commands per poll vary with attempts: {sorted(per_poll)}"],
    }
