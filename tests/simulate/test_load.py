"""Offered load per accelerator class, arrivals scaled to a target, utilisation in the window."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from broker.simulate import Capacity, Scenario, WorkloadJob, compare
from broker.simulate.load import (
    ALL_MODELS,
    LoadError,
    arrival_window,
    at_load,
    load_factor,
    offered_load,
    scale_arrivals,
)
from topology import Topology

CARDS = {"a100": 16, "h20": 4}


def _job(
    job_id: str,
    submit_s: float,
    count: int,
    duration_s: float,
    *,
    accelerator: str = "",
    accelerators: tuple[str, ...] = (),
    kind: str = "training",
) -> WorkloadJob:
    serving = kind == "inference"
    return WorkloadJob(
        job_id=job_id,
        submit_s=submit_s,
        kind=kind,  # type: ignore[arg-type]
        accelerator=accelerator,
        count=count,
        duration_s=duration_s,
        origin="city" if serving else "near",
        dataset_gb=0.0,
        user_region="city" if serving else "",
        latency_slo_ms=15.0 if serving else None,
        tenant="t",
        accelerators=accelerators,
    )


_models = st.sampled_from([(), ("a100",), ("h20",), ("a100", "h20")])


@st.composite
def _workloads(draw: st.DrawFn) -> list[WorkloadJob]:
    n = draw(st.integers(min_value=2, max_value=25))
    jobs = []
    for k in range(n):
        models = draw(_models)
        jobs.append(
            _job(
                f"j{k}",
                draw(st.floats(min_value=0, max_value=30 * 86_400)),
                draw(st.integers(min_value=1, max_value=8)),
                draw(st.floats(min_value=60, max_value=40 * 86_400)),
                accelerators=models,
            )
        )
    return jobs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=_workloads(), target=st.floats(min_value=0.05, max_value=3.0))
def test_scaling_arrivals_by_the_factor_gives_the_target_load(
    jobs: list[WorkloadJob], target: float
) -> None:
    assume(arrival_window(jobs).hours > 0.01)
    try:
        factor = load_factor(jobs, CARDS, target)
    except LoadError as exc:
        assert "out of reach" in str(exc)
        everything_at_once = offered_load(scale_arrivals(jobs, 1e6), CARDS).peak
        assert everything_at_once is not None and everything_at_once < target
        return
    scaled = scale_arrivals(jobs, factor)
    load = offered_load(scaled, CARDS)
    peak = load.peak
    assert peak is not None and peak == pytest.approx(target, rel=1e-4)
    assert all(value is None or value <= peak + 1e-12 for value in load.classes.values())
    # only the gaps between arrivals change
    assert [(j.job_id, j.count, j.duration_s) for j in scaled] == [
        (j.job_id, j.count, j.duration_s) for j in jobs
    ]
    # arrivals keep their order (equal times may merge when compressed hard)
    for a, b in zip(jobs, scaled, strict=True):
        for c, d in zip(jobs, scaled, strict=True):
            if a.submit_s < c.submit_s:
                assert b.submit_s <= d.submit_s


def test_a_class_carries_the_jobs_that_can_run_only_on_its_models() -> None:
    jobs = [
        _job("h", 0.0, 4, 10 * 3600.0, accelerator="h20"),
        _job("any", 0.0, 8, 10 * 3600.0),
        _job("end", 10 * 3600.0, 1, 3600.0),
    ]
    load = offered_load(jobs, CARDS)
    assert load.window.hours == 10.0
    # h20: 4 cards x 10 h on 4 cards; all: (40 + 80) card-h on 20 cards; "end" adds nothing
    assert load.classes["h20"] == pytest.approx(1.0)
    assert load.classes[ALL_MODELS] == load.overall == pytest.approx(120 / 200)
    assert load.peak == pytest.approx(1.0)


def test_work_beyond_the_window_does_not_load_it() -> None:
    long_late = [_job("a", 0.0, 1, 3600.0), _job("b", 3600.0, 16, 1000 * 3600.0)]
    assert offered_load(long_late, CARDS).overall == pytest.approx(1 / 20)


def test_an_empty_window_cannot_be_scaled() -> None:
    with pytest.raises(LoadError, match="two arrival times"):
        load_factor([_job("a", 0.0, 1, 60.0), _job("b", 0.0, 1, 60.0)], CARDS, 0.8)
    with pytest.raises(LoadError, match="positive"):
        load_factor([_job("a", 0.0, 1, 60.0)], CARDS, 0.0)


def test_utilisation_in_the_window_stays_at_or_below_one_and_follows_the_load(
    tiny: Topology,
) -> None:
    # 40 two-card jobs of 2 h, one every 6 minutes, on the 22 cards of the tiny federation
    jobs = [_job(f"j{k}", k * 360.0, 2, 7200.0) for k in range(40)]
    cards = Capacity(tiny).cards_by_model()
    light, _ = at_load(jobs, cards, 0.3)
    heavy, _ = at_load(jobs, cards, 1.2)
    used = {}
    for name, scaled in (("light", light), ("heavy", heavy)):
        metrics = compare(Scenario(tuple(scaled), tiny), ["nearest"])["nearest"]
        used[name] = metrics.utilization_overall
        assert 0.0 < metrics.utilization_overall <= 1.0
        assert metrics.utilization_classes[ALL_MODELS] == pytest.approx(metrics.utilization_overall)
    assert used["light"] == pytest.approx(0.3, rel=0.05)
    assert used["heavy"] > used["light"]
