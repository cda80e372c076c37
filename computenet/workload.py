"""The normalised workload format shared by the simulator and the demo: job record and CSV."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

Kind = Literal["training", "inference", "batch"]
KINDS: tuple[Kind, ...] = ("training", "inference", "batch")

REQUIRED_COLUMNS = (
    "submit_s",
    "kind",
    "accelerator",
    "count",
    "duration_s",
    "origin",
    "dataset_gb",
    "user_region",
    "latency_slo_ms",
    "tenant",
)
OPTIONAL_COLUMNS = ("job_id", "priority", "accelerators", "reference", "workload")
MODEL_SEPARATOR = " "
DEFAULT_SLO_MS = 15.0


class WorkloadError(ValueError):
    """A workload that cannot be read: missing file or data folder, bad header or bad row."""


@dataclass(frozen=True, slots=True)
class WorkloadJob:
    """One job of a workload in simulator terms.

    `submit_s` counts seconds from 00:00 CST of the workload's first day. `count` is the cards
    the whole job holds (for inference: one-card replicas). An empty `origin` or `user_region`
    has not been assigned yet (see `broker.simulate.regions`).
    """

    job_id: str
    submit_s: float
    kind: Kind
    accelerator: str
    count: int
    duration_s: float
    origin: str
    dataset_gb: float
    user_region: str
    latency_slo_ms: float | None
    tenant: str
    priority: int = 0
    accelerators: tuple[str, ...] = ()
    """Models the job accepts besides `accelerator` being empty; () means `accelerator` alone
    (or any model when that is empty too)."""
    reference: str = ""
    """The model `duration_s` was measured on (multi-model jobs)."""
    workload: str = ""
    """Workload class of the throughput matrix (e.g. `llm-training`); empty: generic."""

    @property
    def duration_h(self) -> float:
        """Run time in hours."""
        return self.duration_s / 3600.0

    @property
    def gang(self) -> bool:
        """Training and batch jobs need all cards in one pool; inference replicas may spread."""
        return self.kind != "inference"


def _number(row: dict[str, str], column: str, where: str) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text) if text else math.nan
    except ValueError:
        raise WorkloadError(f"{where}: {column}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise WorkloadError(f"{where}: {column}: required number is empty or not finite")
    return value


def job_from_row(row: dict[str, str], where: str, default_id: str) -> WorkloadJob:
    """Validate one normalised CSV row; raise WorkloadError naming the line and column."""
    kind = (row.get("kind") or "").strip()
    if kind not in KINDS:
        raise WorkloadError(f"{where}: kind: must be one of {', '.join(KINDS)} (got {kind!r})")
    count = _number(row, "count", where)
    duration_s = _number(row, "duration_s", where)
    if count < 0 or count != int(count):
        raise WorkloadError(f"{where}: count: must be a whole number >= 0 (got {count:g})")
    if duration_s <= 0:
        raise WorkloadError(f"{where}: duration_s: must be > 0 (got {duration_s:g})")
    dataset_text = (row.get("dataset_gb") or "").strip()
    dataset_gb = _number(row, "dataset_gb", where) if dataset_text else 0.0
    slo_text = (row.get("latency_slo_ms") or "").strip()
    slo = _number(row, "latency_slo_ms", where) if slo_text else None
    if kind == "inference" and slo is None:
        slo = DEFAULT_SLO_MS
    priority_text = (row.get("priority") or "").strip()
    return WorkloadJob(
        job_id=(row.get("job_id") or "").strip() or default_id,
        submit_s=_number(row, "submit_s", where),
        kind=kind,  # type: ignore[arg-type]
        accelerator=(row.get("accelerator") or "").strip(),
        count=int(count),
        duration_s=duration_s,
        origin=(row.get("origin") or "").strip(),
        dataset_gb=max(dataset_gb, 0.0),
        user_region=(row.get("user_region") or "").strip(),
        latency_slo_ms=slo,
        tenant=(row.get("tenant") or "").strip(),
        priority=int(_number(row, "priority", where)) if priority_text else 0,
        accelerators=tuple((row.get("accelerators") or "").split()),
        reference=(row.get("reference") or "").strip(),
        workload=(row.get("workload") or "").strip(),
    )


def read_jobs(stream: TextIO, source: str) -> list[WorkloadJob]:
    """Read a normalised workload CSV; extra columns are ignored."""
    reader = csv.DictReader(stream)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise WorkloadError(f"{source}:1: header lacks column(s): {', '.join(missing)}")
    stem = Path(source).stem or "job"
    jobs = [
        job_from_row(row, f"{source}:{line}", f"{stem}-{line - 1}")
        for line, row in enumerate(reader, start=2)
    ]
    ids = [job.job_id for job in jobs]
    if len(set(ids)) != len(ids):
        raise WorkloadError(f"{source}: job_id values must be unique")
    return jobs


def load_jobs(path: Path) -> list[WorkloadJob]:
    """Read a normalised workload CSV file."""
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            return read_jobs(stream, str(path))
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read: {exc.strerror}") from None


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return repr(float(value)) if value != int(value) else str(int(value))


def write_jobs(jobs: Iterable[WorkloadJob], stream: TextIO) -> None:
    """Write jobs in the normalised format (required columns, then the optional ones)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow((*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS))
    for job in jobs:
        writer.writerow(
            (
                _cell(job.submit_s),
                job.kind,
                job.accelerator,
                job.count,
                _cell(job.duration_s),
                job.origin,
                _cell(job.dataset_gb),
                job.user_region,
                _cell(job.latency_slo_ms),
                job.tenant,
                job.job_id,
                job.priority,
                MODEL_SEPARATOR.join(job.accelerators),
                job.reference,
                job.workload,
            )
        )


def export_jobs(jobs: Sequence[WorkloadJob], path: Path) -> None:
    """Write jobs to a normalised CSV file."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        write_jobs(jobs, stream)
