"""The demo's closing numbers: what ran where, computed from the broker's records."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from computenet.demo.accounting import SECONDS_PER_HOUR, PlacedJob, Totals, account, totals
from computenet.demo.capacity import DemoLoad
from computenet.demo.simulator import Baseline
from computenet.demo.workload import LABEL_SUBMIT_S, LABEL_TRACE_JOB
from computenet.types import Job, JobEvent, JobState
from topology import Topology

SIDES = ("east", "west")
KINDS = ("training", "inference")


class RecordError(ValueError):
    """A broker record lacks what the demo attached to it at submission."""


def run_window(
    job: Job, events: Sequence[JobEvent], compression: float
) -> tuple[float | None, float]:
    """When the job's last attempt started running, in trace seconds, and the trace hours it
    held its cards, from the broker's records.

    Wall time maps to trace time at the run's compression, from the job's submission (the
    broker's `created_unix_ms`, at the job's `trace-submit-s`). A job that succeeded held its
    cards for its duration; one that failed or was cancelled, until its final event (at most
    its duration); one that never ran, not at all.
    """
    spec = job.spec
    submit_s = float(spec.labels[LABEL_SUBMIT_S])
    running = [e for e in events if e.state is JobState.RUNNING]
    if not running or not job.site:
        return None, 0.0
    started_ms = running[-1].time_unix_ms
    start_s = submit_s + max(0, started_ms - job.created_unix_ms) / 1000.0 * compression
    if job.state is JobState.SUCCEEDED:
        return start_s, spec.duration_hours
    ended = [e.time_unix_ms for e in events if e.state.is_final] or [job.updated_unix_ms]
    held_h = max(0, ended[-1] - started_ms) / 1000.0 * compression / SECONDS_PER_HOUR
    return start_s, min(held_h, spec.duration_hours)


def placed_job(
    job: Job, events: Sequence[JobEvent], compression: float, topology: Topology
) -> PlacedJob:
    """A job as the broker recorded it (state, site, pool, events), before accounting."""
    spec, site = job.spec, job.site or ""
    try:
        submit_s = float(spec.labels[LABEL_SUBMIT_S])
        trace_job = spec.labels[LABEL_TRACE_JOB]
    except (KeyError, ValueError):
        raise RecordError(f"job {job.job_id} lacks the demo's trace labels") from None
    start_s, run_hours = run_window(job, events, compression)
    users = spec.inference.user_regions[0].region if spec.inference else ""
    return PlacedJob(
        job_id=job.job_id,
        trace_job=trace_job,
        kind=spec.kind,
        state=job.state.value,
        site=site,
        side=topology.site(site).side if site else "",
        pool=job.pool or spec.resources.accelerator,
        count=spec.accelerators_total,
        duration_hours=spec.duration_hours,
        submit_s=submit_s,
        start_s=start_s,
        run_hours=run_hours,
        origin=spec.dataset.origin if spec.dataset else users,
        user_region=users,
        latency_slo_ms=spec.inference.latency_slo_ms if spec.inference else None,
        workload=spec.workload,
    )


def accounted_jobs(
    jobs: Iterable[Job],
    events: Mapping[str, Sequence[JobEvent]],
    compression: float,
    topology: Topology,
) -> list[PlacedJob]:
    """Every job the broker recorded, in any state, with its energy, carbon and RTT (jobs that
    never ran are counted with none)."""
    placed = [placed_job(j, events.get(j.job_id, ()), compression, topology) for j in jobs]
    return account(placed, topology)


def write_placements(jobs: Sequence[PlacedJob], path: Path) -> None:
    """placements.json: one record per accounted job, for anyone to recompute the totals."""
    path.write_text(json.dumps([j.to_json() for j in jobs], indent=1) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class SiteRow:
    """Jobs and card-hours one site took, by kind."""

    site: str
    side: str
    jobs: Counter[str]
    card_hours: float
    energy_cny: float


@dataclass(frozen=True)
class Summary:
    """Everything the demo reports at the end."""

    states: dict[str, int]
    placements: dict[str, dict[str, int]]
    card_hours: dict[str, dict[str, float]]
    sites: list[SiteRow]
    totals: Totals
    baseline: Baseline
    load: DemoLoad
    map_png: Path
    elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def submitted(self) -> int:
        """Every job the broker recorded."""
        return sum(self.states.values())

    @property
    def saving_pct(self) -> float:
        """Energy saved against the baseline, percent."""
        base = self.baseline.energy_cny
        return 100.0 * (base - self.totals.energy_cny) / base if base > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The `--json` document."""
        t, b = self.totals, self.baseline
        return {
            "jobs": self.states,
            "baseline_jobs": {
                "ran": b.jobs,
                "still_queued": b.still_queued,
                "too_large": b.too_large,
            },
            "offered_load": self.load.to_json(),
            "baseline_offered_load": b.offered_load,
            "wait_mean_h": round(t.wait_mean_h, 4),
            "baseline_wait_mean_h": b.wait_mean_h,
            "placements": self.placements,
            "card_hours": {
                k: {s: round(v, 3) for s, v in d.items()} for k, d in self.card_hours.items()
            },
            "energy_cny": round(t.energy_cny, 2),
            "baseline_energy_cny": round(b.energy_cny, 2),
            "carbon_t": round(t.carbon_t, 4),
            "baseline_carbon_t": round(b.carbon_t, 4),
            "slo_attainment": None if t.slo_attainment is None else round(t.slo_attainment, 4),
            "baseline_slo_attainment": b.slo_attainment,
            "inference_within_slo": {"jobs": t.inference_within_slo, "of": t.inference_jobs},
            "baseline_policy": b.policy,
            "map_png": str(self.map_png),
            "elapsed_s": round(self.elapsed_s, 1),
            **self.extra,
        }


def summarise(
    jobs: Sequence[Job],
    accounted: Sequence[PlacedJob],
    baseline: Baseline,
    *,
    load: DemoLoad,
    map_png: Path,
    elapsed_s: float,
    extra: dict[str, Any],
) -> Summary:
    """Count states (every job) and placements (the jobs that ran) and attach the totals, the
    baseline and the offered load."""
    states = Counter(j.state.value for j in jobs)
    placements = {kind: dict.fromkeys(SIDES, 0) for kind in KINDS}
    card_hours = {kind: dict.fromkeys(SIDES, 0.0) for kind in KINDS}
    by_site: dict[str, list[PlacedJob]] = {}
    for job in (j for j in accounted if j.ran):
        placements.setdefault(job.kind, dict.fromkeys(SIDES, 0))[job.side] += 1
        card_hours.setdefault(job.kind, dict.fromkeys(SIDES, 0.0))[job.side] += job.card_hours
        by_site.setdefault(job.site, []).append(job)
    rows = [
        SiteRow(
            site=site,
            side=placed[0].side,
            jobs=Counter(j.kind for j in placed),
            card_hours=sum(j.card_hours for j in placed),
            energy_cny=sum(j.energy_cny for j in placed),
        )
        for site, placed in by_site.items()
    ]
    rows.sort(key=lambda r: (r.side != "east", -r.card_hours))
    return Summary(
        states=dict(sorted(states.items())),
        placements=placements,
        card_hours=card_hours,
        sites=rows,
        totals=totals(accounted),
        baseline=baseline,
        load=load,
        map_png=map_png,
        elapsed_s=elapsed_s,
        extra=extra,
    )
