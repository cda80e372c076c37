"""Tenancy inside a replay: the queue ordered and admitted by the tenancy core at each instant.

The replay's running jobs stand for the capacity ledger's holds: what each tenant holds now,
by model, and its decayed card-hours accrued in simulated time. At each decision instant the
queued jobs are put in weighted fair-share order (`pending_order`) and admitted within their
tenants' quota plus borrowing limit and the idle cards (`admit_round`), as the broker's
placement loop does each round; only admitted jobs, in that order, go to the policy. With
preemption, borrowed jobs are then stopped for tenants below their nominal quota whose jobs
did not start (`choose_preemptions`) and their rests queued again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence

from broker.rebalance import RebalanceConfig
from broker.rebalance.pricing import move_time
from broker.simulate.capacity import Capacity
from broker.simulate.clock import SECONDS_PER_HOUR, unix_s
from broker.simulate.rebalancing import active_job
from broker.simulate.replay import Offer, Preemption, Run
from broker.tenancy import (
    Admitted,
    FreeCapacity,
    JobDemand,
    RunningJob,
    TenantsTable,
    UsageSnapshot,
    admit_round,
    choose_preemptions,
    pending_order,
)
from broker.tenancy.usage import DecayedUsage, held_by_tenant
from computenet.workload import WorkloadJob


def demand_of(job: WorkloadJob, capacity: Capacity, table: TenantsTable) -> JobDemand:
    """A queued job as admission sees it (one model, or the models it accepts)."""
    accepted = sorted(capacity.accepted(job))
    return JobDemand(
        job_id=job.job_id,
        tenant=job.tenant,
        model=accepted[0] if len(accepted) == 1 else "",
        accepted=tuple(accepted) if len(accepted) > 1 else (),
        cards=job.count,
        priority=table.priority(job.tenant, job.priority),
        created_unix_ms=int(unix_s(job.submit_s) * 1000),
    )


def free_capacity(capacity: Capacity) -> FreeCapacity:
    """Idle cards per model over the federation (every simulated site takes new work)."""
    free: dict[str, int] = {}
    for site in capacity.pools:
        for model, cards in capacity.free_by_model(site).items():
            if cards > 0:
                free[model] = free.get(model, 0) + cards
    return FreeCapacity(free)


def narrowed(job: WorkloadJob, model: str, capacity: Capacity) -> WorkloadJob:
    """A copy of `job` that accepts `model` only, under its own id (policies cache a job's spec
    by id) and with the duration it takes on `model` as the policies see speeds (its reference
    model need not be `model`, and a one-model job's duration is measured on that model)."""
    speed = capacity.job_speed(model, job, capacity.view)
    return dataclasses.replace(
        job,
        job_id=f"{job.job_id}{PIN_SEPARATOR}{model}",
        accelerator=model,
        accelerators=(),
        reference="",
        duration_s=job.duration_s / speed,
    )


PIN_SEPARATOR = "@"


def held_lines(runs: Iterable[Run], capacity: Capacity) -> Iterable[tuple[str, str, int]]:
    """(tenant, model, cards) of every pool share the runs hold."""
    for run in runs:
        pools = capacity.pools[run.site]
        for k, n in run.allocation:
            yield run.job.tenant, pools[k].model, n


class ReplayTenancy:
    """Orders and admits the queue at each instant; accrues tenants' decayed card-hours."""

    def __init__(
        self,
        table: TenantsTable,
        *,
        preempt: bool = False,
        rebalance: RebalanceConfig | None = None,
    ) -> None:
        """`preempt`: reclaim borrowed cards (if the table's preemption is enabled too);
        `rebalance` gives the restart overhead a preempted job pays."""
        self.table = table
        self.preempt = preempt and table.preemption.enabled
        self._rebalance = rebalance or RebalanceConfig()
        self._usage = DecayedUsage()
        self._ordered: list[JobDemand] = []

    def usage(self, running: Sequence[Run], capacity: Capacity, now_s: float) -> UsageSnapshot:
        """Cards held per tenant now and decayed card-hours accrued up to `now_s`.

        The cards held now stand for the whole step since the last instant, as in the broker:
        every release makes an instant within one decision window, so a step never hides more
        than one window of a finished job's cards.
        """
        held = held_by_tenant(held_lines(running, capacity))
        now_h = now_s / SECONDS_PER_HOUR
        half_life_h = self.table.fair_share.half_life_h
        return self._usage.snapshot(held, capacity.cards_by_model(), now_h, half_life_h)

    def admit(
        self,
        queue: Sequence[WorkloadJob],
        running: Sequence[Run],
        capacity: Capacity,
        now_s: float,
    ) -> list[Offer]:
        """The queued jobs admitted now, in fair-share order, each with its own id.

        A job of several models that admission held to one model (its tenant's limits differ
        between models) is offered as a copy asking that model only (`narrowed`), as the broker
        pins it.
        """
        usage = self.usage(running, capacity, now_s)
        by_id = {job.job_id: job for job in queue}
        ordered = pending_order(
            [demand_of(j, capacity, self.table) for j in queue], self.table, usage
        )
        self._ordered = ordered
        out: list[Offer] = []
        for demand, decision in admit_round(ordered, self.table, usage, free_capacity(capacity)):
            if not isinstance(decision, Admitted):
                continue
            job = by_id[demand.job_id]
            if decision.pinned and not demand.model and demand.cards:
                job = narrowed(job, decision.model, capacity)
            out.append((job, demand.job_id))
        return out

    def reclaim(
        self,
        started: Collection[str],
        running: Sequence[tuple[int, Run]],
        capacity: Capacity,
        now_s: float,
    ) -> list[Preemption]:
        """Borrowed jobs to stop now for the jobs of the last admission order that did not
        start, as the broker's round does after placing; each priced as a rebalancing move to
        its own site prices it (a started training job stops with a checkpoint and redoes
        nothing; a batch job redoes its run so far)."""
        waiting = [d for d in self._ordered if d.job_id not in started]
        if not self.preempt or not waiting:
            return []
        by_id = {run.job.job_id: (index, run) for index, run in running}
        holding = [r for _, run in running for r in self._running(run, capacity)]
        victims = choose_preemptions(waiting, holding, self.table, free_capacity(capacity))
        out: list[Preemption] = []
        for victim in victims:
            index, run = by_id[victim.job_id]
            if any(p.run_index == index for p in out):
                continue  # a job holding cards of two models is stopped once
            priced = move_time(
                active_job(run, now_s, capacity),
                run.site,
                capacity.topology,
                restart_overhead_h=self._rebalance.restart_overhead_h,
            )
            out.append(
                Preemption(
                    run_index=index,
                    tenant=run.job.tenant,
                    cards=run.job.count,
                    redo_s=priced.redo_h * SECONDS_PER_HOUR,
                    overhead_s=priced.idle_h * SECONDS_PER_HOUR,
                    reason=victim.reason,
                )
            )
        return out

    def _running(self, run: Run, capacity: Capacity) -> list[RunningJob]:
        """The run as the preemption choice takes it: one entry per model it holds."""
        cards: dict[str, int] = {}
        for _, model, n in held_lines([run], capacity):
            cards[model] = cards.get(model, 0) + n
        priority = self.table.priority(run.job.tenant, run.job.priority)
        return [
            RunningJob(
                job_id=run.job.job_id,
                tenant=run.job.tenant,
                model=model,
                cards=n,
                priority=priority,
                started_unix_ms=int(unix_s(run.start_s) * 1000),
                checkpointable=run.job.kind == "training",
            )
            for model, n in cards.items()
        ]
