"""Which running jobs to preempt so that tenants below their nominal quota get their cards back.

Within each tenant and model, running jobs are ranked highest priority first, then oldest; the
leading ones whose cards add up to at most the nominal quota run *within nominal* and are never
preempted. The rest are *borrowed*. When tenants below their quota wait for cards of a model
that are neither idle nor already being reclaimed, borrowed jobs of that model are chosen:
lowest priority first, then checkpointable before not, then the youngest (least work lost),
until the shortfall is covered or the round's budget is spent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from broker.tenancy.admission import FreeCapacity, JobDemand
from broker.tenancy.policy import TenantsTable


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job holding cards: its tenant, the model and cards it holds, and its rank."""

    job_id: str
    tenant: str
    model: str
    cards: int
    priority: int = 0
    """Effective priority (`TenantsTable.priority`)."""
    started_unix_ms: int = 0
    """When its current attempt was placed (the oldest keep their place within nominal)."""
    checkpointable: bool = False


@dataclass(frozen=True, slots=True)
class Victim:
    """A job to preempt, with the reason recorded in its event."""

    job_id: str
    tenant: str
    model: str
    cards: int
    reason: str


def _rank(job: RunningJob) -> tuple[int, int, str]:
    return (-job.priority, job.started_unix_ms, job.job_id)


def within_nominal(running: Sequence[RunningJob], table: TenantsTable) -> set[str]:
    """Ids of the running jobs that run within their tenant's nominal quota."""
    groups: dict[tuple[str, str], list[RunningJob]] = {}
    for job in running:
        groups.setdefault((job.tenant, job.model), []).append(job)
    inside: set[str] = set()
    for (tenant, model), jobs in groups.items():
        room = table.policy(tenant).nominal(model)
        for job in sorted(jobs, key=_rank):
            if job.cards > room:
                break  # the rest borrow: later jobs keep rank order even if smaller
            room -= job.cards
            inside.add(job.job_id)
    return inside


def reclaim_demand(
    waiting: Sequence[JobDemand], table: TenantsTable, held: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """Cards each tenant below its nominal quota waits for, by model (its waiting jobs, in the
    given order, as far as they fit its remaining quota)."""
    demand: dict[str, dict[str, int]] = {}
    for job in waiting:
        if not job.model or job.cards <= 0:
            continue  # a job that takes any model claims no model's quota in particular
        room = table.policy(job.tenant).nominal(job.model) - held.get(job.tenant, {}).get(
            job.model, 0
        )
        mine = demand.setdefault(job.tenant, {})
        asked = mine.get(job.model, 0)
        if asked + job.cards <= room:
            mine[job.model] = asked + job.cards
    return {t: d for t, d in demand.items() if any(d.values())}


def choose_preemptions(
    waiting: Sequence[JobDemand],
    running: Sequence[RunningJob],
    table: TenantsTable,
    free: FreeCapacity,
    *,
    reclaiming: Mapping[str, int] | None = None,
    stopping: Collection[str] = (),
    budget: int | None = None,
) -> list[Victim]:
    """Borrowed jobs to preempt for the tenants below nominal quota among `waiting`.

    `reclaiming` counts cards per model already being freed by earlier preemptions (so the
    same demand is not met twice) and `stopping` names those jobs (still holding, never chosen
    again); `budget` caps the jobs chosen (default: the table's
    per-round budget). Never returns a job within its tenant's nominal quota.
    """
    if not table.preemption.enabled:
        return []
    cap = table.preemption.budget_per_round if budget is None else budget
    held: dict[str, dict[str, int]] = {}
    for job in running:
        by_model = held.setdefault(job.tenant, {})
        by_model[job.model] = by_model.get(job.model, 0) + job.cards
    demand = reclaim_demand(waiting, table, held)
    inside = within_nominal(running, table)
    victims: list[Victim] = []
    for model in sorted({m for d in demand.values() for m in d}):
        wanted = sum(d.get(model, 0) for d in demand.values())
        short = wanted - free.free.get(model, 0) - (reclaiming or {}).get(model, 0)
        if short <= 0:
            continue
        claimants = sorted(t for t, d in demand.items() if d.get(model, 0) > 0)
        candidates = sorted(
            (
                j
                for j in running
                if j.model == model and j.job_id not in inside and j.job_id not in stopping
            ),
            key=lambda j: (j.priority, not j.checkpointable, -j.started_unix_ms, j.job_id),
        )
        for job in candidates:
            if short <= 0 or len(victims) >= cap:
                break
            if job.tenant in claimants:
                continue  # a tenant below its quota borrows nothing of this model
            victims.append(
                Victim(job.job_id, job.tenant, model, job.cards, _why(job, claimants, table, held))
            )
            short -= job.cards
    return victims


def _why(
    job: RunningJob,
    claimants: Sequence[str],
    table: TenantsTable,
    held: Mapping[str, Mapping[str, int]],
) -> str:
    model = job.model
    who = "; ".join(
        f"{t} below nominal quota {model} {table.policy(t).nominal(model)} waits" for t in claimants
    )
    theirs = held.get(job.tenant, {}).get(model, 0)
    borrowing = theirs - table.policy(job.tenant).nominal(model)
    return f"preempted: {who}; {job.tenant} borrowing {borrowing}"
