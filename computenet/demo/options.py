"""Settings of one `computenet demo` run, read once at the command line and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "COMPUTENET_DATA_DIR"
DEFAULT_JOBS = 200
DEFAULT_DAYS = 20
SUBMIT_WALL_S = 30.0
DEFAULT_MAX_JOB_S = 8.0
SUSPECT_AFTER_S = 15.0
LOST_AFTER_S = 60.0
STOP_GRACE_S = 5.0
DEFAULT_LOAD = 0.3


def default_data_dir() -> Path:
    """`$COMPUTENET_DATA_DIR`, else `../shared/data` next to the repository checkout."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    if configured:
        return Path(configured)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data"


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """What the demo runs and how it reports."""

    jobs: int = DEFAULT_JOBS
    """Jobs to submit: half Philly training, half GenAI inference (as far as the day has them)."""
    compression: float | None = None
    """Trace seconds per wall second; None plays the slice's submissions in SUBMIT_WALL_S."""
    max_job_s: float = DEFAULT_MAX_JOB_S
    """Longest wall-clock sleep of one job; costs always use the real trace duration."""
    days: int = DEFAULT_DAYS
    """The slice comes from the first `days` days of the merged trace timeline."""
    seed: int = 0
    """Seed of the simulator's region and origin draws."""
    load: float = DEFAULT_LOAD
    """Offered load the federation is sized for: every pool is scaled down until the slice
    demands this many card-hours per card-hour available (docs/demo.md)."""
    data_dir: Path
    """Folder holding `traces/` (the shared data checkout)."""
    map_path: Path | None = None
    """Where to write the map PNG; in the working folder if unset."""
    as_json: bool = False
    """Print only the summary JSON on stdout; progress goes to stderr."""
    keep: bool = False
    """Leave the working folder (database, logs, workload, placements.json) in place."""
    keep_running: bool = False
    """Leave the federation up after the summary until Ctrl-C."""
    suspect_after_s: float = SUSPECT_AFTER_S
    """Broker: seconds without a report before a site is suspect."""
    lost_after_s: float = LOST_AFTER_S
    """Broker: seconds without a report before a site is lost (its jobs requeue)."""
    stop_grace_s: float = STOP_GRACE_S
    """Seconds between SIGTERM and SIGKILL when stopping the processes the demo started."""
