"""The pending order: weighted fair share across tenants, then priority and age within one.

A tenant's dominant share is, over the accelerator models the federation has,

    max over m of ( card_hours[m] / (cards[m] * window_h) + held[m] / cards[m] ) / weight

where `card_hours` are its decayed card-hours (broker.tenancy.usage), `window_h` the decayed
window (a card held forever accrues that many), `held` its cards held now and `cards[m]` the
federation's cards of model m: the past and the present, each as a fraction of the model's
capacity, of the model the tenant uses most. The order is built like a fair merge: at each
step the tenant with the smallest share (counting the jobs already taken) gives its next job;
a job that fits its tenant's nominal quota goes before any job that would borrow, so reclaimed
cards reach the tenants entitled to them first.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from broker.tenancy.admission import JobDemand
from broker.tenancy.policy import TenantsTable
from broker.tenancy.usage import UsageSnapshot


def dominant_share(
    tenant: str,
    table: TenantsTable,
    usage: UsageSnapshot,
    held: Mapping[str, int] | None = None,
) -> float:
    """The tenant's weighted dominant share (`held` overrides its cards held now)."""
    mine = usage.of(tenant)
    cards = mine.held if held is None else held
    window_h = table.fair_share.window_h
    share = 0.0
    for model, total in usage.capacity.items():
        if total <= 0:
            continue
        past = mine.card_hours.get(model, 0.0) / (total * window_h)
        share = max(share, past + cards.get(model, 0) / total)
    return share / max(table.policy(tenant).weight, 1e-9)


def _within_nominal(job: JobDemand, table: TenantsTable, held: Mapping[str, int]) -> bool:
    policy = table.policy(job.tenant)
    if job.cards <= 0:
        return True
    if job.model:
        return held.get(job.model, 0) + job.cards <= policy.nominal(job.model)
    return any(held.get(m, 0) + job.cards <= n for m, n in policy.quota.items())


def within_tenant_key(job: JobDemand) -> tuple[int, int, str]:
    """Within one tenant: highest priority first, then oldest, then by id."""
    return (-job.priority, job.created_unix_ms, job.job_id)


def pending_order(
    jobs: Sequence[JobDemand], table: TenantsTable, usage: UsageSnapshot
) -> list[JobDemand]:
    """`jobs` in admission order (deterministic: equal inputs give equal orders)."""
    queues: dict[str, list[JobDemand]] = {}
    for job in sorted(jobs, key=within_tenant_key):
        queues.setdefault(job.tenant, []).append(job)
    held = {t: dict(usage.of(t).held) for t in queues}
    heap: list[tuple[bool, float, str]] = []

    def push(tenant: str, head: int) -> None:
        flag = not _within_nominal(queues[tenant][head], table, held[tenant])
        heapq.heappush(heap, (flag, dominant_share(tenant, table, usage, held[tenant]), tenant))

    heads = dict.fromkeys(queues, 0)
    for tenant in queues:
        push(tenant, 0)
    out: list[JobDemand] = []
    while heap:
        _, _, tenant = heapq.heappop(heap)
        job = queues[tenant][heads[tenant]]
        out.append(job)
        if job.model and job.cards > 0:
            held[tenant][job.model] = held[tenant].get(job.model, 0) + job.cards
        heads[tenant] += 1
        if heads[tenant] < len(queues[tenant]):
            push(tenant, heads[tenant])
    return out
