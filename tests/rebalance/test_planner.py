"""Planner rules on the built-in topology: paying migrations, evacuation, demand, budget."""

from __future__ import annotations

import pytest

from broker.placement import Policy
from broker.rebalance import (
    ActiveJob,
    LastMove,
    MoveKind,
    PendingJob,
    RebalanceConfig,
    RebalanceInput,
    plan_moves,
)
from computenet.types import SiteStatus
from tests.rebalance.factories import POLICY, at_cst, inference, snapshot, training
from topology import default_topology

CONFIG = RebalanceConfig(min_gain_fraction=0.15, min_gain_cny=50.0, restart_overhead_h=0.25)


def _input(now_unix_s: float, **kwargs: object) -> RebalanceInput:
    snap = kwargs.pop("snap", None) or snapshot(now_unix_s)
    return RebalanceInput(snapshot=snap, policy=Policy.default(POLICY), **kwargs)  # type: ignore[arg-type]


def _expected_savings(job: ActiveJob, source: str, target: str, hour: float) -> tuple[float, float]:
    """Energy + carbon CNY and carbon kg saved over the remaining run, from the topology alone."""
    topo = default_topology()
    res = job.spec.resources
    transfer_h = topo.transfer_hours(source, target, job.spec.checkpoint.size_gb)  # type: ignore[union-attr]
    start_there = hour + transfer_h + CONFIG.restart_overhead_h
    hours = job.remaining_h

    def at(site: str, start: float) -> tuple[float, float]:
        kw = topo.site(site).pool(res.accelerator).watts * res.count + res.cpu_cores * 3.0  # type: ignore[union-attr]
        kw *= topo.site(site).pue / 1000.0
        kg = topo.carbon_kg(site, kw * hours)
        return topo.energy_cost_cny(site, kw, start, hours) + kg * 0.1, kg

    (cny_here, kg_here), (cny_there, kg_there) = at(source, hour), at(target, start_there)
    return cny_here - cny_there, kg_here - kg_there


def _expected_cost(job: ActiveJob, source: str, target: str) -> float:
    topo = default_topology()
    size = job.spec.checkpoint.size_gb  # type: ignore[union-attr]
    idle_h = topo.transfer_hours(source, target, size) + CONFIG.restart_overhead_h
    return idle_h * job.spec.resources.count * 10.0 + topo.transfer_cost_cny(source, target, size)


def test_peak_price_step_makes_a_long_migration_west_pay_for_itself() -> None:
    job = ActiveJob("long", training(27.0), "zhangjiakou", elapsed_h=1.0)
    before_step = plan_moves(_input(at_cst(6.0), active=[job]), CONFIG)
    at_peak = plan_moves(_input(at_cst(10.0), active=[job]), CONFIG)

    assert before_step == []
    assert len(at_peak) == 1
    move = at_peak[0]
    assert (move.kind, move.from_site, move.accelerator) == (
        MoveKind.MIGRATE,
        "zhangjiakou",
        "a800",
    )
    assert default_topology().site(move.to_site).side == "west"
    savings, carbon_kg = _expected_savings(job, "zhangjiakou", move.to_site, 10.0)
    assert move.savings_cny == pytest.approx(savings, abs=0.01)
    assert move.savings_carbon_kg == pytest.approx(carbon_kg, abs=0.01)
    assert move.cost_cny == pytest.approx(
        _expected_cost(job, "zhangjiakou", move.to_site), abs=0.01
    )
    assert move.savings_cny - move.cost_cny >= max(0.15 * move.cost_cny, 50.0)


def test_a_job_about_to_finish_stays_put() -> None:
    job = ActiveJob("short", training(100.0), "zhangjiakou", elapsed_h=99.5)
    assert plan_moves(_input(at_cst(10.0), active=[job]), CONFIG) == []


def test_a_long_job_that_pays_moves_and_stated_savings_exceed_cost_by_the_margin() -> None:
    jobs = [
        ActiveJob(f"j{k}", training(300.0, cards=64), "yangtze-demo", elapsed_h=5.0)
        for k in range(3)
    ]
    moves = plan_moves(_input(at_cst(3.0), active=jobs), CONFIG)
    assert {m.job_id for m in moves} == {"j0", "j1", "j2"}
    for move in moves:
        assert move.savings_cny > move.cost_cny * 1.15
        assert move.savings_carbon_kg > 0


def test_uncheckpointable_training_is_never_migrated_for_savings() -> None:
    job = ActiveJob("nock", training(300.0, checkpoint_gb=None), "zhangjiakou", elapsed_h=5.0)
    assert plan_moves(_input(at_cst(10.0), active=[job]), CONFIG) == []


def test_move_budget_keeps_the_most_valuable_moves() -> None:
    jobs = [
        ActiveJob(f"j{k}", training(50.0 + 100.0 * k, cards=64), "yangtze-demo", elapsed_h=1.0)
        for k in range(5)
    ]
    unlimited = plan_moves(_input(at_cst(3.0), active=jobs), CONFIG)
    budget = RebalanceConfig(**{**CONFIG.model_dump(), "max_moves_per_run": 2})
    limited = plan_moves(_input(at_cst(3.0), active=jobs), budget)
    assert len(unlimited) > 2
    assert len(limited) == 2
    best_two = sorted(unlimited, key=lambda m: -m.net_cny)[:2]
    assert {m.job_id for m in limited} == {m.job_id for m in best_two}


def test_draining_site_is_evacuated_to_feasible_sites() -> None:
    snap = snapshot(at_cst(12.0), status={"wuhu": SiteStatus.DRAINING})
    jobs = [
        ActiveJob("ckpt", training(40.0, accelerator="910b", cards=128), "wuhu", elapsed_h=2.0),
        ActiveJob(
            "svc",
            inference({"shanghai": 1.0}, slo_ms=40.0),
            "wuhu",
            elapsed_h=3.0,
            accelerator="h20",
        ),
        ActiveJob(
            "nock", training(40.0, accelerator="910b", checkpoint_gb=None), "wuhu", elapsed_h=2.0
        ),
    ]
    moves = plan_moves(_input(0, snap=snap, active=jobs), CONFIG)
    by_job = {m.job_id: m for m in moves}
    assert set(by_job) == {"ckpt", "svc"}  # the job without checkpoints finishes in place
    assert all(m.kind == MoveKind.EVACUATE and m.from_site == "wuhu" for m in moves)
    assert all(m.to_site != "wuhu" for m in moves)
    assert default_topology().rtt_ms("shanghai", by_job["svc"].to_site) <= 40.0


def test_evacuation_ignores_cooldown_but_optional_moves_respect_it() -> None:
    recent = {"j": LastMove("j", "horinger", "yangtze-demo", at_cst(2.0), runs_ago=0)}
    job = ActiveJob("j", training(300.0, cards=64), "yangtze-demo", elapsed_h=5.0)
    assert plan_moves(_input(at_cst(3.0), active=[job], history=recent), CONFIG) == []
    snap = snapshot(at_cst(3.0), status={"yangtze-demo": SiteStatus.DRAINING})
    moves = plan_moves(_input(0, snap=snap, active=[job], history=recent), CONFIG)
    assert [m.kind for m in moves] == [MoveKind.EVACUATE]


def test_lost_site_jobs_that_requeue_are_moved_and_those_that_fail_are_not() -> None:
    snap = snapshot(at_cst(12.0), status={"tianfu": SiteStatus.LOST})
    keep = ActiveJob("keep", training(40.0, accelerator="910b", cards=64), "tianfu", elapsed_h=2.0)
    fail_spec = training(40.0, accelerator="910b", cards=64).model_copy(
        update={"on_site_loss": "fail"}
    )
    fail = ActiveJob("fail", fail_spec, "tianfu", elapsed_h=2.0)
    moves = plan_moves(_input(0, snap=snap, active=[keep, fail]), CONFIG)
    assert [(m.job_id, m.kind) for m in moves] == [("keep", MoveKind.EVACUATE)]


def test_service_follows_users_when_its_slo_breaks_or_a_site_is_much_nearer() -> None:
    svc = ActiveJob(
        "svc", inference({"beijing": 1.0}), "zhangjiakou", elapsed_h=1.0, accelerator="h20"
    )
    steady = plan_moves(_input(at_cst(9.0), active=[svc], demand={"svc": {"beijing": 1.0}}), CONFIG)
    assert steady == []
    south = plan_moves(
        _input(at_cst(9.0), active=[svc], demand={"svc": {"guangzhou": 1.0}}), CONFIG
    )
    assert [m.kind for m in south] == [MoveKind.FOLLOW_DEMAND]
    assert "slo violated" in south[0].reason
    assert default_topology().rtt_ms("guangzhou", south[0].to_site) <= 30.0


def test_pending_jobs_that_fit_are_placed_without_overbooking() -> None:
    free = {"horinger": {"a800": 300}, "zhongwei": {}, "guian": {}, "qingyang": {}}
    snap = snapshot(at_cst(1.0), fraction_free=0.0, free=free)
    snap_sites = {
        s: c if s != "horinger" else c.__class__(s, c.status, c.free, 1e6, 1e7)
        for s, c in snap.sites.items()
    }
    snap = snap.__class__(snap.topology, snap_sites, snap.now_unix_s)
    pending = [PendingJob(f"p{k}", training(24.0, cards=128, priority=k)) for k in range(3)]
    moves = plan_moves(_input(0, snap=snap, pending=pending), CONFIG)
    assert [(m.job_id, m.kind, m.to_site) for m in moves] == [
        ("p2", MoveKind.PLACE, "horinger"),
        ("p1", MoveKind.PLACE, "horinger"),
    ]


@pytest.mark.parametrize("elapsed_h", [1.0, 5.0, 20.0])
def test_a_long_job_stays_at_a_site_that_cannot_send_its_checkpoint(elapsed_h: float) -> None:
    """The move that pays with a checkpoint is a restart from a site without a checkpoint store:
    the redone run outweighs the savings, so no run plans it (and none falls back)."""
    job = ActiveJob("long", training(27.0 + elapsed_h), "zhangjiakou", elapsed_h=elapsed_h)
    snap = snapshot(at_cst(10.0))
    others = frozenset(snap.sites) - {"zhangjiakou"}
    carried = plan_moves(_input(at_cst(10.0), active=[job], snap=snap), CONFIG)
    stays = plan_moves(
        _input(at_cst(10.0), active=[job], snap=snap, checkpoint_sites=others), CONFIG
    )
    assert [m.job_id for m in carried] == ["long"]
    assert stays == []


def test_a_job_is_not_moved_with_its_checkpoint_to_a_site_that_cannot_receive_it() -> None:
    job = ActiveJob("long", training(28.0), "zhangjiakou", elapsed_h=1.0)
    snap = snapshot(at_cst(10.0))
    [pays] = plan_moves(_input(at_cst(10.0), active=[job], snap=snap), CONFIG)
    senders = frozenset(snap.sites) - {pays.to_site}
    moves = plan_moves(
        _input(at_cst(10.0), active=[job], snap=snap, checkpoint_sites=senders), CONFIG
    )
    assert pays.to_site not in {m.to_site for m in moves}
