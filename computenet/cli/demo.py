"""`computenet demo`: a local federation replaying a slice of real traces, with a summary."""

from __future__ import annotations

import logging
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from computenet.cli.runner import EXIT_FAILURE, EXIT_USAGE, fail
from computenet.demo.options import (
    DEFAULT_DAYS,
    DEFAULT_JOBS,
    DEFAULT_LOAD,
    DEFAULT_MAX_JOB_S,
    DemoOptions,
)
from computenet.demo.options import default_data_dir as _default_data_dir

PROG = "computenet demo"
MAX_JOBS = 1000
PIPE_WIDTH = 110

JobsOption = Annotated[
    int,
    typer.Option(
        "--jobs",
        min=2,
        max=MAX_JOBS,
        help="Number of jobs: half Philly training, half Alibaba GenAI inference.",
    ),
]
CompressionOption = Annotated[
    float | None,
    typer.Option(
        "--compression",
        min=1.0,
        show_default=False,
        help="Trace seconds per wall second (3600: one trace hour lasts one second). "
        "Default: the slice's submissions play in 30 s.",
    ),
]
MaxJobOption = Annotated[
    float,
    typer.Option(
        "--max-job-seconds",
        min=0.1,
        help="Longest wall-clock run of one job, so week-long training does not hold the demo; "
        "longer trace jobs are cut to this many compressed seconds in both arms.",
    ),
]
DaysOption = Annotated[
    int,
    typer.Option(
        "--days", min=1, help="Take the jobs from the first DAYS days of the merged traces."
    ),
]
LoadOption = Annotated[
    float,
    typer.Option(
        "--load",
        min=0.01,
        help="Offered load to run at (card-hours demanded per card-hour available): the "
        "federation is the fewest cards that hold every job, and the slice's arrivals are "
        "compressed until it demands this much (or as much as it can).",
    ),
]
SeedOption = Annotated[
    int, typer.Option("--seed", help="Seed of the user-region and data-origin draws.")
]
KeepRunningOption = Annotated[
    bool,
    typer.Option(
        "--keep-running",
        help="After the summary leave the federation up, print its broker address, and wait "
        "for Ctrl-C.",
    ),
]
KeepOption = Annotated[
    bool,
    typer.Option(
        "--keep", help="Keep the working folder: broker.db, logs, workload.csv, placements.json."
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print only the summary, as one JSON object; progress on stderr."),
]
MapOption = Annotated[
    Path | None,
    typer.Option(
        "--map",
        show_default=False,
        help="Where to write the map PNG. Default: TMPDIR/computenet-demo-map.png.",
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        show_default=False,
        help="Folder holding traces/. Default: $COMPUTENET_DATA_DIR, else ../shared/data "
        "next to the repository.",
    ),
]


def demo(
    jobs: JobsOption = DEFAULT_JOBS,
    compression: CompressionOption = None,
    max_job_s: MaxJobOption = DEFAULT_MAX_JOB_S,
    days: DaysOption = DEFAULT_DAYS,
    seed: SeedOption = 0,
    load: LoadOption = DEFAULT_LOAD,
    keep_running: KeepRunningOption = False,
    keep: KeepOption = False,
    as_json: JsonOption = False,
    map_path: MapOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Start a broker and one agent per site on this machine, replay a time-compressed slice of
    real training and inference traces through the SDK, and show where the jobs went, their
    energy cost, carbon and SLO against the nearest-site baseline, and a map."""
    from computenet.demo import DEMO_ERRORS, run_demo

    missing = [m for m in ("broker", "site_agent", "matplotlib") if find_spec(m) is None]
    if missing:
        fail(
            PROG, f"the demo needs {', '.join(missing)}: pip install 'computenet[dev]'", EXIT_USAGE
        )
    folder = data_dir or _default_data_dir()
    if not (folder / "traces").is_dir():
        fail(PROG, f"trace folder not found: {folder / 'traces'} (see --data-dir)", EXIT_USAGE)
    options = DemoOptions(
        jobs=jobs,
        compression=compression,
        max_job_s=max_job_s,
        days=days,
        seed=seed,
        load=load,
        data_dir=folder.resolve(),
        map_path=map_path,
        as_json=as_json,
        keep=keep,
        keep_running=keep_running,
    )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    out = Console(highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out = Console(highlight=False, soft_wrap=False, width=PIPE_WIDTH)
    ui = Console(stderr=True, highlight=False) if as_json else out
    try:
        run_demo(options, out, ui)
    except DEMO_ERRORS as exc:
        fail(PROG, str(exc), EXIT_FAILURE)
