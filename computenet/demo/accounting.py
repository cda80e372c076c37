"""Energy, carbon, SLO and waits of the demo's recorded runs, accounted as the simulator does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from topology import Topology
from topology.energy import run_energy

KG_PER_TONNE = 1000.0
SECONDS_PER_HOUR = 3600.0
SLO_TOLERANCE_MS = 1e-9


@dataclass(frozen=True, slots=True)
class PlacedJob:
    """One demo job as the broker recorded it, in trace time (placements.json).

    `start_s` is when it started running, in trace seconds (None if it never ran); `run_hours`
    how long it held its cards: its duration if it succeeded, else until it ended.
    """

    job_id: str
    trace_job: str
    kind: str
    state: str
    site: str
    side: str
    pool: str
    """The accelerator model the broker placed it on."""
    count: int
    duration_hours: float
    submit_s: float
    start_s: float | None
    run_hours: float
    origin: str
    user_region: str
    latency_slo_ms: float | None
    workload: str
    watts: float = 0.0
    """Rated board power of all its cards."""
    kwh: float = 0.0
    energy_cny: float = 0.0
    carbon_kg: float = 0.0
    rtt_ms: float | None = None

    @property
    def ran(self) -> bool:
        """True if it held cards at all."""
        return self.start_s is not None and bool(self.site)

    @property
    def start_hour(self) -> float:
        """CST hours since 00:00 of day 0 at which it started (the pricing hour)."""
        return (self.start_s or 0.0) / SECONDS_PER_HOUR

    @property
    def card_hours(self) -> float:
        """Cards held times the hours it held them."""
        return self.count * self.run_hours

    @property
    def wait_hours(self) -> float | None:
        """Trace hours from submission to start (None if it never ran)."""
        return None if self.start_s is None else max(0.0, self.start_s - self.submit_s) / 3600.0

    def to_json(self) -> dict[str, Any]:
        """The record as written to placements.json."""
        return {**asdict(self), "start_hour": self.start_hour}


def card_watts(topology: Topology, site: str, model: str) -> float:
    """Rated power of one card of `model` at `site` (its least power-hungry pool without one)."""
    pools = topology.site(site).pools
    chosen = [p for p in pools if p.model == model] or sorted(pools, key=lambda p: p.watts)
    return chosen[0].watts if chosen else 0.0


def account(jobs: Sequence[PlacedJob], topology: Topology) -> list[PlacedJob]:
    """Each job with its energy by topology.energy (the placement engine's and the simulator's
    model: its cards at their workload's utilisation plus their host share, x PUE, priced over
    the site's hourly CST tariff from the hour it started) and, for inference, its RTT."""
    out = []
    for job in jobs:
        if not job.ran:
            out.append(job)
            continue
        watts = card_watts(topology, job.site, job.pool) * job.count
        used = run_energy(
            topology, job.site, watts, job.start_hour, job.run_hours,
            cards=job.count, workload=job.workload,
        )  # fmt: skip
        rtt = topology.rtt_ms(job.user_region, job.site) if job.kind == "inference" else None
        priced = replace(job, watts=watts, kwh=used.kwh, energy_cny=used.cny)
        out.append(replace(priced, carbon_kg=used.carbon_kg, rtt_ms=rtt))
    return out


def within_slo(job: PlacedJob) -> bool:
    """True if an inference job ran within its latency SLO of its users."""
    return (
        job.rtt_ms is not None
        and job.latency_slo_ms is not None
        and job.rtt_ms <= job.latency_slo_ms + SLO_TOLERANCE_MS
    )


@dataclass(frozen=True, slots=True)
class Totals:
    """The demo's own numbers over every job."""

    energy_cny: float
    carbon_t: float
    slo_attainment: float | None
    """Fraction in [0, 1] of inference card-hours run within SLO (None if none ran)."""
    inference_within_slo: int
    inference_jobs: int
    wait_mean_h: float
    """Mean trace hours from submission to start over the jobs that ran."""
    ran: int


def totals(jobs: Sequence[PlacedJob]) -> Totals:
    """Sum energy and carbon over every job (those that never ran add nothing); SLO attainment
    as the simulator defines it (the fraction of inference card-hours run within SLO)."""
    ran = [j for j in jobs if j.ran]
    inference = [j for j in ran if j.kind == "inference"]
    card_h = math.fsum(j.card_hours for j in inference)
    ok_h = math.fsum(j.card_hours for j in inference if within_slo(j))
    waits = [j.wait_hours for j in ran if j.wait_hours is not None]
    return Totals(
        energy_cny=math.fsum(j.energy_cny for j in jobs),
        carbon_t=math.fsum(j.carbon_kg for j in jobs) / KG_PER_TONNE,
        slo_attainment=ok_h / card_h if card_h > 0 else None,
        inference_within_slo=sum(within_slo(j) for j in inference),
        inference_jobs=sum(j.kind == "inference" for j in jobs),
        wait_mean_h=math.fsum(waits) / len(waits) if waits else 0.0,
        ran=len(ran),
    )
