"""Per-tenant outcome of a replay (jobs, waits, card-hours, slowdown) and Jain's fairness index.

Jain's index (Jain, Chiu & Hawe 1984) of allocations x_1..x_n >= 0 is

    J = (sum x)^2 / (n * sum x^2)

1/n when one tenant gets everything, 1 when all get the same; it does not change when every
x is scaled by one factor. Over tenants, x_i is the reciprocal of tenant i's mean bounded
slowdown: the fraction of a dedicated federation's speed its jobs got (docs/simulator.md:
Tenants says why not card-hours).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from broker.simulate.clock import SECONDS_PER_HOUR
from broker.simulate.replay import ReplayResult
from broker.tenancy import TenantsTable

SLOWDOWN_FLOOR_S = 60.0
"""Run times shorter than this count as this long in a job's slowdown (bounded slowdown): no
job starts sooner than the 60 s decision window, so a one-minute job's slowdown of 2 after a
one-minute wait says nothing about fairness."""


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index of non-negative allocations (1.0 for none, or all zero)."""
    if any(v < 0 for v in values):
        raise ValueError("Jain's index takes non-negative allocations")
    total = float(sum(values))
    squares = float(sum(v * v for v in values))
    if not values or squares == 0.0:
        return 1.0
    n = len(values)
    # clamped: rounding may step a hair outside the bounds the algebra guarantees
    return max(1.0 / n, min(1.0, total * total / (n * squares)))


@dataclass(frozen=True, slots=True)
class TenantOutcome:
    """One tenant's jobs in a replay."""

    tenant: str
    jobs: int
    """Jobs that ran or were still queued at the end (not the too-large ones)."""
    still_queued: int
    wait_mean_h: float
    wait_p95_h: float
    card_hours: float
    card_hour_share: float
    """Its card-hours over every tenant's."""
    weight_share: float
    """Its fair-share weight over the weights of every tenant with jobs in the replay."""
    slowdown_mean: float
    """Mean bounded slowdown of its jobs: (finish - submit) / max(run, SLOWDOWN_FLOOR_S)."""
    preempted: int = 0
    """Times its running jobs were stopped to reclaim cards (`--preempt`)."""
    lost_card_hours: float = 0.0
    """Card-hours its preempted jobs spent again: work redone plus restart overhead."""

    def to_json(self) -> dict[str, object]:
        """The tenant's entry in the report's `tenants` object."""
        return {
            "jobs": self.jobs,
            "still_queued": self.still_queued,
            "wait_mean_h": round(self.wait_mean_h, 4),
            "wait_p95_h": round(self.wait_p95_h, 4),
            "card_hours": round(self.card_hours, 2),
            "card_hour_share": round(self.card_hour_share, 4),
            "weight_share": round(self.weight_share, 4),
            "slowdown_mean": round(self.slowdown_mean, 4),
            "preempted": self.preempted,
            "lost_card_hours": round(self.lost_card_hours, 2),
        }


@dataclass(frozen=True, slots=True)
class TenantsOutcome:
    """Every tenant's outcome, by name, and Jain's index over their 1 / mean slowdown."""

    tenants: Mapping[str, TenantOutcome] = field(default_factory=dict)
    jain: float = 1.0

    def to_json(self) -> dict[str, object]:
        """`{"jain": J, "tenants": {NAME: {...}}}`."""
        return {
            "jain": round(self.jain, 4),
            "tenants": {name: t.to_json() for name, t in self.tenants.items()},
        }


@dataclass(slots=True)
class _Tally:
    waits_h: list[float] = field(default_factory=list)
    slowdowns: list[float] = field(default_factory=list)
    card_hours: float = 0.0
    still_queued: int = 0
    preempted: int = 0
    lost_card_hours: float = 0.0


def _slowdown(response_s: float, run_s: float) -> float:
    return max(1.0, response_s / max(run_s, SLOWDOWN_FLOOR_S))


def tenants_outcome(result: ReplayResult, table: TenantsTable) -> TenantsOutcome:
    """Per-tenant waits, card-hours and slowdowns of a replay, weights from `table`.

    A job's wait is submit to its first start, its response submit to the end of its last part
    (a moved job runs in parts), its run the parts' run time. A job still queued at the end
    waits (and responds) up to the last instant and has run its reference duration: as in the
    policy metrics, a job that never started counts against its tenant. A preempted job's rest
    still queued at the end responds up to the last instant.
    """
    tallies: dict[str, _Tally] = {}
    submit: dict[str, tuple[str, float]] = {}
    run_s: dict[str, float] = {}
    finish_s: dict[str, float] = {}
    for run in result.runs:
        job = run.job
        tally = tallies.setdefault(job.tenant, _Tally())
        tally.card_hours += job.count * run.hours
        if not run.resumed:
            submit[job.job_id] = (job.tenant, job.submit_s)
            tally.waits_h.append(run.wait_s / SECONDS_PER_HOUR)
        run_s[job.job_id] = run_s.get(job.job_id, 0.0) + run.run_s
        finish_s[job.job_id] = max(finish_s.get(job.job_id, 0.0), run.end_s)
    for job in result.requeued:
        finish_s[job.job_id] = max(finish_s[job.job_id], result.end_s)
    for job_id, (tenant, submitted_s) in submit.items():
        response_s = finish_s[job_id] - submitted_s
        tallies[tenant].slowdowns.append(_slowdown(response_s, run_s[job_id]))
    for job in result.stranded:
        tally = tallies.setdefault(job.tenant, _Tally())
        late_s = max(0.0, result.end_s - job.submit_s)
        tally.waits_h.append(late_s / SECONDS_PER_HOUR)
        tally.slowdowns.append(_slowdown(late_s + job.duration_s, job.duration_s))
        tally.still_queued += 1
    for cut in result.preemptions:
        tally = tallies.setdefault(cut.tenant, _Tally())
        tally.preempted += 1
        tally.lost_card_hours += cut.cards * (cut.redo_s + cut.overhead_s) / SECONDS_PER_HOUR
    return _outcome(tallies, table)


def _outcome(tallies: Mapping[str, _Tally], table: TenantsTable) -> TenantsOutcome:
    total_card_h = sum(t.card_hours for t in tallies.values())
    weights = {name: table.policy(name).weight for name in tallies}
    total_weight = sum(weights.values())
    tenants: dict[str, TenantOutcome] = {}
    for name in sorted(tallies):
        tally = tallies[name]
        tenants[name] = TenantOutcome(
            tenant=name,
            jobs=len(tally.waits_h),
            still_queued=tally.still_queued,
            wait_mean_h=float(np.mean(tally.waits_h)) if tally.waits_h else 0.0,
            wait_p95_h=float(np.percentile(tally.waits_h, 95)) if tally.waits_h else 0.0,
            card_hours=tally.card_hours,
            card_hour_share=tally.card_hours / total_card_h if total_card_h > 0 else 0.0,
            weight_share=weights[name] / total_weight if total_weight > 0 else 0.0,
            slowdown_mean=float(np.mean(tally.slowdowns)) if tally.slowdowns else 1.0,
            preempted=tally.preempted,
            lost_card_hours=tally.lost_card_hours,
        )
    jain = jain_index([1.0 / t.slowdown_mean for t in tenants.values()])
    return TenantsOutcome(tenants=tenants, jain=jain)
