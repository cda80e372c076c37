"""The pure rebalancing planner: which jobs to place, migrate, evacuate or move to their users."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from broker.placement import JobDemand
from broker.rebalance.config import RebalanceConfig
from broker.rebalance.model import ActiveJob, Move, MoveKind, RebalanceInput
from broker.rebalance.pricing import move_time
from broker.rebalance.valuation import CapacityLedger, Option, Valuer, demand_of
from computenet.types import SiteStatus

log = logging.getLogger(__name__)

UNAVAILABLE = frozenset({SiteStatus.DRAINING, SiteStatus.LOST})


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way to move a job: its target, what it saves over the remaining run, what it costs."""

    target: Option
    savings_cny: float
    savings_carbon_kg: float
    cost_cny: float

    @property
    def net_cny(self) -> float:
        """Savings minus cost."""
        return self.savings_cny - self.cost_cny


def plan_moves(state: RebalanceInput, config: RebalanceConfig) -> list[Move]:
    """Plan one run's moves, most valuable first, within the move budget and free capacity.

    Rules run in order over one capacity ledger, so a later rule only sees what earlier moves
    left free: evacuate draining and lost sites, restore violated latency SLOs, place pending
    jobs that fit now, then migrate for savings and follow shifted demand, best net gain first.
    Capacity a move releases at its source is not reused in the same run.
    """
    run = _Run(state, config)
    for rule in (_evacuate_unavailable_sites, _restore_latency_slos, _place_pending_jobs, _improve):
        if run.budget_left <= 0:
            break
        rule(run)
    return run.moves


class _Run:
    """State of one planning pass: the ledger, the moves so far and the jobs already moved."""

    def __init__(self, state: RebalanceInput, config: RebalanceConfig) -> None:
        self.state = state
        self.config = config
        self.ledger = CapacityLedger(state.snapshot)
        self.moves: list[Move] = []
        self.moved: set[str] = set()
        self._valuer: Valuer | None = None

    @property
    def budget_left(self) -> int:
        return self.config.max_moves_per_run - len(self.moves)

    @property
    def card_hour_cny(self) -> float:
        return self.state.policy.config.accelerator_hour_value_cny

    def valuer(self) -> Valuer:
        snapshot = self.ledger.snapshot()
        if self._valuer is None or self._valuer.ctx.avail.snapshot is not snapshot:
            self._valuer = Valuer(self.state.policy, snapshot)
        return self._valuer

    def status(self, site: str) -> SiteStatus | None:
        report = self.state.snapshot.sites.get(site)
        return None if report is None else report.status

    def demand(self, job: ActiveJob) -> JobDemand:
        regions = self.state.demand.get(job.job_id) if job.serving else None
        return demand_of(JobDemand.from_spec(job.spec), job.remaining_h, regions)

    def candidates(self, job: ActiveJob, demand: JobDemand) -> list[Candidate]:
        """Every feasible target of `job` priced against the ledger, best net gain first."""
        valuer, topology = self.valuer(), self.state.snapshot.topology
        here = valuer.current(demand, job.site, job.accelerator)
        lost = self.status(job.site) == SiteStatus.LOST
        out: list[Candidate] = []
        for opt in valuer.feasible(demand):
            site = valuer.ctx.table.site_ids[int(valuer.ctx.table.opt_site[opt])]
            if site == job.site:
                continue
            # Priced as the move is carried out (broker.rebalance.pricing): redone work, the
            # checkpoint's transfer and the stop and restart.
            moving = move_time(
                job,
                site,
                topology,
                restart_overhead_h=self.config.restart_overhead_h,
                source_lost=lost,
                checkpoint_sites=self.state.checkpoint_sites,
            )
            if math.isinf(moving.transfer_h):
                continue
            rerun = demand_of(demand, demand.duration_h + moving.redo_h)
            downtime_h = moving.idle_h + valuer.wait_h(opt)
            there = valuer.price(rerun, opt, downtime_h=downtime_h, one_off=True)
            gb = moving.checkpoint_gb
            fees = topology.transfer_cost_cny(job.site, site, gb) if gb else 0.0
            lost_h = moving.idle_h + moving.redo_h
            cost = lost_h * demand.cards * self.card_hour_cny + fees + there.one_off_cny
            saved = here.running_cny - there.running_cny if here else 0.0
            carbon = here.carbon_kg - there.carbon_kg if here else 0.0
            out.append(Candidate(there, saved, carbon, cost))
        out.sort(key=lambda c: (-c.net_cny, c.target.opt))
        return out

    def add(
        self,
        job_id: str,
        demand: JobDemand,
        kind: MoveKind,
        source: str | None,
        pick: Candidate,
        why: str,
    ) -> None:
        """Record a move and hold its capacity at the target."""
        target = pick.target
        self.ledger.take(target.site, target.model, demand)
        self.moved.add(job_id)
        self.moves.append(
            Move(
                job_id=job_id,
                kind=kind,
                from_site=source,
                to_site=target.site,
                savings_cny=round(pick.savings_cny, 2),
                savings_carbon_kg=round(pick.savings_carbon_kg, 3),
                cost_cny=round(pick.cost_cny, 2),
                reason=why,
                accelerator=target.model,
            )
        )
        log.debug("planned move job_id=%s kind=%s to=%s", job_id, kind, target.site)

    def accepts(self, job: ActiveJob, pick: Candidate) -> bool:
        """An optional move must beat its cost by the margin and respect anti-flapping."""
        config = self.config
        if pick.net_cny < max(config.min_gain_fraction * pick.cost_cny, config.min_gain_cny):
            return False
        last = self.state.history.get(job.job_id)
        return not (
            config.forbid_return and last is not None and last.from_site == pick.target.site
        )

    def cooling(self, job: ActiveJob) -> bool:
        """True if the job moved too recently to move again for savings."""
        last = self.state.history.get(job.job_id)
        if last is None:
            return False
        now = self.state.snapshot.now_unix_s
        return (
            last.runs_ago < self.config.cooldown_runs
            or now - last.at_unix_s < self.config.cooldown_s
        )


def _by_urgency(jobs: list[ActiveJob]) -> list[ActiveJob]:
    return sorted(jobs, key=lambda j: (-j.spec.priority, -j.spec.accelerators_total))


def _evacuate_unavailable_sites(run: _Run) -> None:
    """Move jobs off draining and lost sites to their best feasible site."""
    leaving = [j for j in run.state.active if run.status(j.site) in UNAVAILABLE]
    for job in _by_urgency(leaving):
        status = run.status(job.site)
        if status == SiteStatus.LOST and job.spec.on_site_loss == "fail":
            continue
        stays = not (job.can_checkpoint or job.serving or job.elapsed_h == 0)
        if (
            status == SiteStatus.DRAINING
            and stays
            and not run.config.evacuate_uncheckpointable_on_drain
        ):
            continue
        if run.budget_left <= 0:
            return
        options = run.candidates(job, run.demand(job))
        if not options:
            log.info("cannot evacuate job_id=%s site=%s: no feasible site", job.job_id, job.site)
            continue
        why = f"site {job.site} is {status}; {options[0].target.site} is its best feasible site"
        run.add(job.job_id, run.demand(job), MoveKind.EVACUATE, job.site, options[0], why)


def _restore_latency_slos(run: _Run) -> None:
    """Move inference services whose users' current regions no longer reach them within the SLO."""
    for job in _by_urgency(
        [j for j in run.state.active if j.serving and j.job_id not in run.moved]
    ):
        demand = run.demand(job)
        worst = _worst_rtt(run, job.site, demand)
        if demand.slo_ms is None or worst is None or worst[0] <= demand.slo_ms:
            continue
        if run.budget_left <= 0:
            return
        options = run.candidates(job, demand)
        if options:
            rtt, region = worst
            why = f"slo violated: rtt {rtt:.1f} ms from {region} > slo {demand.slo_ms:g} ms"
            run.add(job.job_id, demand, MoveKind.FOLLOW_DEMAND, job.site, options[0], why)


def _worst_rtt(run: _Run, site: str, demand: JobDemand) -> tuple[float, str] | None:
    topology = run.state.snapshot.topology
    if not demand.regions or not topology.has_node(site):
        return None
    return max((topology.rtt_ms(region, site), region) for region, _ in demand.regions)


def _place_pending_jobs(run: _Run) -> None:
    """Place pending jobs that fit now where placement would, highest priority and largest first."""
    ranked = sorted(
        enumerate(run.state.pending),
        key=lambda item: (-item[1].spec.priority, -item[1].spec.accelerators_total, item[0]),
    )
    for _, job in ranked:
        if run.budget_left <= 0:
            return
        demand = JobDemand.from_spec(job.spec)
        valuer = run.valuer()
        feasible = valuer.feasible(demand)
        if not feasible:
            continue
        best = valuer.price(demand, feasible[0], downtime_h=0.0, one_off=True)
        waited = demand.cards * run.card_hour_cny * run.config.run_interval_h
        pick = Candidate(best, waited, 0.0, best.one_off_cny)
        pool = best.model or "host"
        why = f"fits now at {best.site} ({pool}); expected run cost {best.running_cny:.0f} CNY"
        run.add(job.job_id, demand, MoveKind.PLACE, None, pick, why)


def _improve(run: _Run) -> None:
    """Migrate checkpointable jobs to cheaper or greener sites; move services to their users."""
    eligible = [
        j
        for j in run.state.active
        if j.job_id not in run.moved
        and run.status(j.site) == SiteStatus.ACTIVE
        and j.remaining_h >= run.config.min_remaining_h
        and not run.cooling(j)
        and ((j.can_checkpoint and not j.serving) or (j.serving and j.job_id in run.state.demand))
    ]
    ranked = [(best.net_cny, k) for k, j in enumerate(eligible) if (best := _best_gain(run, j))]
    ranked.sort(key=lambda item: (-item[0], item[1]))
    for _, k in ranked:
        if run.budget_left <= 0:
            return
        job = eligible[k]
        pick = _best_gain(run, job)
        if pick is not None:
            kind = MoveKind.FOLLOW_DEMAND if job.serving else MoveKind.MIGRATE
            run.add(job.job_id, run.demand(job), kind, job.site, pick, _gain_reason(run, job, pick))


def _best_gain(run: _Run, job: ActiveJob) -> Candidate | None:
    """The best optional move of `job` against the current ledger that clears the margin."""
    demand = run.demand(job)
    for pick in run.candidates(job, demand):
        if not run.accepts(job, pick):
            continue
        if (
            job.serving
            and _rtt_gain_ms(run, job, demand, pick.target.site) < run.config.demand_min_rtt_gain_ms
        ):
            continue
        return pick
    return None


def _rtt_gain_ms(run: _Run, job: ActiveJob, demand: JobDemand, target: str) -> float:
    weights: Mapping[str, float] = dict(demand.regions)
    if not weights:
        return 0.0
    topology = run.state.snapshot.topology
    return topology.weighted_rtt_ms(job.site, weights) - topology.weighted_rtt_ms(target, weights)


def _gain_reason(run: _Run, job: ActiveJob, pick: Candidate) -> str:
    gain = (
        f"saves {pick.savings_cny:.0f} CNY ({pick.savings_carbon_kg:.0f} kg CO2) "
        f"for {pick.cost_cny:.0f} CNY"
    )
    if job.serving:
        rtt = _rtt_gain_ms(run, job, run.demand(job), pick.target.site)
        return f"demand shifted: weighted rtt {rtt:.1f} ms lower at {pick.target.site}; {gain}"
    return f"remaining {job.remaining_h:.1f} h cheaper at {pick.target.site}; {gain}"
