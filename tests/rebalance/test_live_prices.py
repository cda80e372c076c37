"""Rebalancing prices runs with the sites' live reported prices, as placement does."""

from __future__ import annotations

import dataclasses

from broker.placement import Policy
from broker.placement.snapshot import ReportedEnergy
from broker.rebalance import ActiveJob, Move, MoveKind, RebalanceConfig, RebalanceInput, plan_moves
from tests.rebalance.factories import POLICY, at_cst, snapshot, training

CONFIG = RebalanceConfig(min_gain_fraction=0.15, min_gain_cny=50.0, restart_overhead_h=0.25)
SITE = "zhangjiakou"


def _moves(hour: float, job: ActiveJob, **reported: ReportedEnergy) -> list[Move]:
    snap = dataclasses.replace(snapshot(at_cst(hour)), reported_energy=reported)
    state = RebalanceInput(snapshot=snap, active=[job], policy=Policy.default(POLICY))
    return list(plan_moves(state, CONFIG))


def test_a_cheap_reported_price_keeps_a_job_that_the_peak_schedule_would_move() -> None:
    job = ActiveJob("long", training(27.0), SITE, elapsed_h=1.0)
    assert len(_moves(10.0, job)) == 1  # the topology's peak price makes the move west pay
    cheap = ReportedEnergy(price_cny_per_kwh=0.02, reported_unix_s=at_cst(10.0))
    assert _moves(10.0, job, **{SITE: cheap}) == []


def test_a_dear_reported_price_moves_a_job_the_schedule_would_keep() -> None:
    job = ActiveJob("long", training(27.0), SITE, elapsed_h=1.0)
    assert _moves(6.0, job) == []
    dear = ReportedEnergy(price_cny_per_kwh=3.0, reported_unix_s=at_cst(6.0))
    (move,) = _moves(6.0, job, **{SITE: dear})
    assert move.kind == MoveKind.MIGRATE and move.from_site == SITE
