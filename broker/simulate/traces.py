"""Loaders that turn the shared public GPU traces into normalised simulator jobs."""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from broker.simulate.regions import RegionDraw
from computenet.workload import DEFAULT_SLO_MS, WorkloadError, WorkloadJob
from topology import Topology

DATA_DIR_ENV = "COMPUTENET_DATA_DIR"
SECONDS_PER_DAY = 86_400.0
SECONDS_PER_HOUR = 3600.0
TRAINING_GB_PER_GPU = 20.0
BATCH_GB_PER_GPU = 5.0
MILLI_PER_GPU = 1000

PHILLY_FILE = "traces/philly_jobs.csv"
ALIBABA_PODS_FILE = "traces/alibaba_gpu2023_pods.csv"
GENAI_FILE = "traces/alibaba_genai2026_requests.csv"

_INFERENCE_QOS = frozenset({"LS", "Guaranteed"})
_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The shared data folder: $COMPUTENET_DATA_DIR, else `<repo>/../shared/data`."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    folder = Path(configured) if configured else _REPO_ROOT.parent / "shared" / "data"
    if not (folder / "traces").is_dir():
        raise WorkloadError(
            f"trace folder not found: {folder / 'traces'} (set {DATA_DIR_ENV} to the folder "
            "holding traces/, e.g. the shared data checkout)"
        )
    return folder


def _rows(relative: str) -> Iterator[dict[str, str]]:
    path = data_dir() / relative
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            yield from csv.DictReader(stream)
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read: {exc.strerror}") from None


def _day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def philly_jobs() -> list[WorkloadJob]:
    """Philly training jobs; submit times keep the trace's wall-clock time of day.

    Each job is a gang of `num_gpus` cards of any model for `duration` seconds; its virtual
    cluster is the tenant, and its dataset is modelled as TRAINING_GB_PER_GPU per GPU.
    """
    raw = [
        (datetime.fromisoformat(r["timestamp"]), float(r["duration"]), int(r["num_gpus"]), r)
        for r in _rows(PHILLY_FILE)
    ]
    if not raw:
        return []
    day0 = _day_start(min(moment for moment, *_ in raw))
    jobs = []
    for index, (moment, duration_s, gpus, row) in enumerate(raw):
        if duration_s <= 0 or gpus <= 0:
            continue
        jobs.append(
            WorkloadJob(
                job_id=f"philly-{index}",
                submit_s=(moment - day0).total_seconds(),
                kind="training",
                accelerator="",
                count=gpus,
                duration_s=duration_s,
                origin="",
                dataset_gb=TRAINING_GB_PER_GPU * gpus,
                user_region="",
                latency_slo_ms=None,
                tenant=row["cluster"],
            )
        )
    return jobs


def alibaba_gpu2023_jobs() -> list[WorkloadJob]:
    """Alibaba 2023 GPU pods: LS/Guaranteed become inference, BE/Burstable batch.

    Fractional GPUs (gpu_milli < 1000) round up to one whole card; CPU-only pods are dropped;
    a pod runs from its scheduled time (creation time if never scheduled) to its deletion.
    """
    jobs = []
    for row in _rows(ALIBABA_PODS_FILE):
        gpus = int(row["num_gpu"] or 0)
        if gpus <= 0 or not row["deletion_time"]:
            continue
        created = float(row["creation_time"])
        started = float(row["scheduled_time"]) if row["scheduled_time"] else created
        duration_s = float(row["deletion_time"]) - started
        if duration_s <= 0:
            continue
        serving = row["qos"] in _INFERENCE_QOS
        jobs.append(
            WorkloadJob(
                job_id=f"alibaba-{row['name']}",
                submit_s=created,
                kind="inference" if serving else "batch",
                accelerator="",
                count=gpus,
                duration_s=duration_s,
                origin="",
                dataset_gb=0.0 if serving else BATCH_GB_PER_GPU * gpus,
                user_region="",
                latency_slo_ms=DEFAULT_SLO_MS if serving else None,
                tenant=row["qos"],
            )
        )
    return jobs


def genai_jobs(topology: Topology, seed: int) -> list[WorkloadJob]:
    """Alibaba GenAI serving requests aggregated into hourly inference jobs per user region.

    Each request group (`groupId`) is a customer placed in one user region by the seeded
    demand-weight draw. For every CST hour and region, the requests' summed `exec_time_seconds`
    becomes a job holding ceil(sum / 3600) one-card replicas for that hour.
    """
    draw = RegionDraw(topology, seed)
    busy_s: dict[tuple[datetime, str], float] = defaultdict(float)
    for row in _rows(GENAI_FILE):
        exec_s = float(row["exec_time_seconds"] or 0.0)
        if exec_s <= 0:
            continue
        hour = datetime.fromisoformat(row["gmt_create"]).replace(minute=0, second=0)
        busy_s[(hour, draw.region(f"genai-group/{row['groupId']}"))] += exec_s
    if not busy_s:
        return []
    day0 = _day_start(min(hour for hour, _ in busy_s))
    jobs = []
    for (hour, region), seconds in sorted(busy_s.items()):
        jobs.append(
            WorkloadJob(
                job_id=f"genai-{hour:%Y%m%d%H}-{region}",
                submit_s=(hour - day0).total_seconds(),
                kind="inference",
                accelerator="",
                count=math.ceil(seconds / SECONDS_PER_HOUR),
                duration_s=SECONDS_PER_HOUR,
                origin=region,
                dataset_gb=0.0,
                user_region=region,
                latency_slo_ms=DEFAULT_SLO_MS,
                tenant="genai",
            )
        )
    return jobs
