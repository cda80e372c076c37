"""Admission: whether a pending job may be placed now under its tenant's quota and borrowing limit.

A job is admitted *nominal* when its tenant's cards of the model, with the job's, stay within
the nominal quota, or *borrowing* when they stay within quota plus borrowing limit; either way
only if the federation has that many idle cards of the model. Admission is necessary, not
sufficient: the placer may still find no site where the job fits (fragmentation, gangs,
constraints), and then the job waits with the placer's reason.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from broker.tenancy.policy import TenantPolicy, TenantsTable
from broker.tenancy.usage import UsageSnapshot
from computenet.usage import WaitReason


class AdmissionKind(enum.Enum):
    """How an admitted job counts against its tenant's entitlement."""

    NOMINAL = "nominal"
    BORROWING = "borrowing"


@dataclass(frozen=True, slots=True)
class JobDemand:
    """A pending job as admission sees it: its tenant, the cards it asks and its rank."""

    job_id: str
    tenant: str
    model: str
    """Accelerator model asked for; "" takes any model (admission picks one)."""
    cards: int
    priority: int = 0
    """Effective priority (`TenantsTable.priority`)."""
    created_unix_ms: int = 0
    accepted: tuple[str, ...] = ()
    """For `model` "": the models the job accepts (empty: any model)."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """The job may be placed this round, on `model` (the one it asked, or the one admission
    chose for a job that takes any)."""

    kind: AdmissionKind
    model: str
    pinned: bool = True
    """The job must be placed on `model`. False for a job of any model whose tenant may take
    any of the models with room: placement chooses, and `model` is only what the round
    counted it against."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """The job waits; `text` says why in words (what `explain` and the queue view show)."""

    reason: WaitReason
    text: str


Decision = Admitted | Waiting


@dataclass(frozen=True, slots=True)
class FreeCapacity:
    """Idle cards per model at sites that take new work, and cards at draining sites."""

    free: Mapping[str, int] = field(default_factory=dict)
    draining: Mapping[str, int] = field(default_factory=dict)


def _kind_within(policy: TenantPolicy, held: int, model: str, cards: int) -> AdmissionKind | None:
    """NOMINAL or BORROWING if `cards` more of `model` stay within the tenant's limits."""
    if held + cards <= policy.nominal(model):
        return AdmissionKind.NOMINAL
    ceiling = policy.ceiling(model)
    if ceiling is None or held + cards <= ceiling:
        return AdmissionKind.BORROWING
    return None


def _over_quota(tenant: str, policy: TenantPolicy, held: int, model: str, cards: int) -> Waiting:
    limit = policy.borrowing_limit.get(model, 0)
    return Waiting(
        WaitReason.OVER_QUOTA,
        f"over quota: {tenant} holds {held} {model} and asks {cards}; nominal quota "
        f"{policy.nominal(model)} + borrowing limit {limit}",
    )


def _no_capacity(job: JobDemand, model: str, free: FreeCapacity) -> Waiting:
    idle = free.free.get(model, 0)
    what = model or "any model"
    if idle < job.cards and idle + free.draining.get(model, 0) >= job.cards:
        return Waiting(
            WaitReason.SITE_DRAINING,
            f"site draining: {job.cards} {what} cards would be idle only at draining sites",
        )
    return Waiting(
        WaitReason.NO_CAPACITY, f"no capacity: {idle} idle {what} cards, {job.cards} needed"
    )


def admit(
    job: JobDemand, policy: TenantPolicy, held: Mapping[str, int], free: FreeCapacity
) -> Decision:
    """Whether `job` may be placed now, given its tenant's `policy`, the cards the tenant
    `held` by model (placed this round included) and the idle `free` capacity."""
    if job.cards <= 0:
        return Admitted(AdmissionKind.NOMINAL, job.model)
    if job.model:
        return _admit_model(job, job.model, policy, held, free)
    # Any model: the first one by preference (nominal before borrowing, then name) that fits.
    options = []
    for model in sorted(free.free):
        if job.accepted and model not in job.accepted:
            continue
        decision = _admit_model(job, model, policy, held, free)
        if isinstance(decision, Admitted):
            options.append((decision.kind != AdmissionKind.NOMINAL, model, decision))
    if options:
        best = min(options, key=lambda o: (o[0], o[1]))[2]
        # Placement may choose only if every model it could place the job on now is one the
        # tenant may take without limit; a model with room but closed to the tenant pins it.
        room = [
            m
            for m, n in free.free.items()
            if n >= job.cards and (not job.accepted or m in job.accepted)
        ]
        if len(options) == len(room) and all(policy.ceiling(m) is None for _, m, _ in options):
            return Admitted(best.kind, best.model, pinned=False)
        return best
    models = [m for m in free.free if not job.accepted or m in job.accepted]
    quota_room = [m for m in models if _kind_within(policy, held.get(m, 0), m, job.cards)]
    if not quota_room and models:
        return Waiting(
            WaitReason.OVER_QUOTA,
            f"over quota: {job.tenant} may take no more cards of any model with idle cards",
        )
    return _no_capacity(job, "", free)


def _admit_model(
    job: JobDemand, model: str, policy: TenantPolicy, held: Mapping[str, int], free: FreeCapacity
) -> Decision:
    now = held.get(model, 0)
    kind = _kind_within(policy, now, model, job.cards)
    if kind is None:
        return _over_quota(job.tenant, policy, now, model, job.cards)
    if free.free.get(model, 0) < job.cards:
        return _no_capacity(job, model, free)
    return Admitted(kind, model)


def admit_round(
    ordered: Sequence[JobDemand], table: TenantsTable, usage: UsageSnapshot, free: FreeCapacity
) -> list[tuple[JobDemand, Decision]]:
    """Admission of a whole round, in `ordered` order (`pending_order`).

    Each admitted job's cards count against its tenant's limits and the idle capacity for the
    jobs after it, so the admitted set never takes a tenant over quota plus borrowing limit,
    nor the federation over its idle cards. A job that finds no idle cards only because jobs
    of other tenants ahead of it took them is behind fair share.
    """
    held = {t: dict(u.held) for t, u in usage.tenants.items()}
    idle = dict(free.free)
    taken_by: dict[str, set[str]] = {}
    """Per model: tenants whose admitted jobs took idle cards of it this round."""
    out: list[tuple[JobDemand, Decision]] = []
    for job in ordered:
        mine = held.setdefault(job.tenant, {})
        decision = admit(job, table.policy(job.tenant), mine, FreeCapacity(idle, free.draining))
        if isinstance(decision, Admitted):
            if job.cards > 0:
                mine[decision.model] = mine.get(decision.model, 0) + job.cards
                idle[decision.model] = idle.get(decision.model, 0) - job.cards
                taken_by.setdefault(decision.model, set()).add(job.tenant)
        elif decision.reason == WaitReason.NO_CAPACITY:
            decision = _behind(job, decision, free, taken_by)
        out.append((job, decision))
    return out


def _behind(
    job: JobDemand, waiting: Waiting, free: FreeCapacity, taken_by: Mapping[str, set[str]]
) -> Waiting:
    """NO_CAPACITY, or BEHIND_FAIR_SHARE if the round began with room for it and other
    tenants' jobs ahead took it."""
    models: Iterable[str] = [job.model] if job.model else free.free
    for model in models:
        others = taken_by.get(model, set()) - {job.tenant}
        if free.free.get(model, 0) >= job.cards and others:
            ahead = ", ".join(sorted(others))
            return Waiting(
                WaitReason.BEHIND_FAIR_SHARE,
                f"behind fair share: idle {model} cards went to {ahead}, ahead in the order",
            )
    return waiting
