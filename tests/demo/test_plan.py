"""The demo's federation size, its load plan and its reading of the broker's records."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from computenet.demo.capacity import (
    ARRIVAL_RANGE,
    MIN_SITES,
    plan_at_load,
    scaled_pools,
    slice_load,
    smallest_scale,
)
from computenet.demo.summary import run_window
from computenet.demo.workload import job_spec, like_for_like
from computenet.offered_load import fits_somewhere
from computenet.types import Job, JobEvent, JobId, JobState, SiteId, TenantId
from computenet.workload import WorkloadJob
from topology import Topology, default_topology

HOUR_S = 3600.0


def _job(
    job_id: str, submit_s: float, count: int, hours: float, kind: str = "training"
) -> WorkloadJob:
    serving = kind == "inference"
    return WorkloadJob(
        job_id=job_id, submit_s=submit_s, kind=kind,  # type: ignore[arg-type]
        accelerator="", count=count, duration_s=hours * HOUR_S,
        origin="shanghai" if serving else "zhangjiakou", dataset_gb=0.0,
        user_region="shanghai" if serving else "", latency_slo_ms=15.0 if serving else None,
        tenant="t", accelerators=("a800", "910b"), reference="910b", workload="vision-training",
    )  # fmt: skip


SLICE = [
    _job(f"j{k}", k * 1800.0, count, hours, kind)
    for k, (count, hours, kind) in enumerate(
        [(16, 30, "training"), (8, 2, "training"), (1, 0.5, "training"), (2, 1, "inference")] * 6
    )
]


@pytest.fixture(scope="module")
def topology() -> Topology:
    return default_topology()


def _sites_holding(job: WorkloadJob, topology: Topology, scale: float) -> int:
    pools = scaled_pools(topology, scale)
    models = frozenset(m for ps in pools.values() for m, _ in ps)
    return sum(fits_somewhere(job, {site: ps}, models) for site, ps in pools.items())


def test_the_federation_is_the_smallest_where_every_job_fits_two_sites(
    topology: Topology,
) -> None:
    jobs = like_for_like(SLICE, compression=100.0, max_job_s=8.0)
    scale = smallest_scale(jobs, topology)
    assert all(_sites_holding(j, topology, scale) >= MIN_SITES for j in jobs)
    smaller = scale * 0.97
    assert any(_sites_holding(j, topology, smaller) < MIN_SITES for j in jobs)


def test_like_for_like_runs_any_model_unscaled_and_cut_to_the_wall_limit() -> None:
    jobs = like_for_like(SLICE, compression=100.0, max_job_s=8.0)
    assert all(not j.accelerators and not j.reference and not j.workload for j in jobs)
    assert max(j.duration_s for j in jobs) == 800.0
    assert [j.submit_s for j in jobs] == [j.submit_s for j in SLICE]


def _prepare(jobs: Sequence[WorkloadJob]) -> tuple[list[WorkloadJob], float]:
    compression = (max(j.submit_s for j in jobs) - min(j.submit_s for j in jobs)) / 30.0
    return like_for_like(jobs, compression, 8.0), compression


def test_the_plan_reaches_the_target_load_on_the_jobs_both_arms_run(topology: Topology) -> None:
    plan = plan_at_load(SLICE, topology, 0.15, _prepare)
    peak = plan.load.offered.peak
    assert peak is not None and 0.15 <= peak < 0.16
    # measured again on the planned jobs, it is what the summary will state
    again = slice_load(plan.jobs, topology, plan.load.scale)
    assert again.offered.overall == plan.load.offered.overall
    assert not plan.load.too_large


def test_a_load_out_of_reach_runs_the_most_loaded_plan(topology: Topology) -> None:
    plan = plan_at_load(SLICE, topology, 5.0, _prepare)
    assert plan.arrival_factor == ARRIVAL_RANGE[1]
    lighter = plan_at_load(SLICE, topology, 0.15, _prepare)
    assert (plan.load.offered.peak or 0.0) >= (lighter.load.offered.peak or 0.0)


def _record(state: JobState, created_ms: int) -> Job:
    job = _job("x", 7200.0, 8, 2.0)
    spec = job_spec(job, compression=100.0, max_job_s=8.0)
    return Job(
        JobId("job-x"), TenantId("demo"), spec, state, SiteId("guian"),
        created_unix_ms=created_ms, updated_unix_ms=created_ms + 90_000,
    )  # fmt: skip


def _event(state: JobState, at_ms: int) -> JobEvent:
    return JobEvent(1, JobId("job-x"), state, "test", at_ms, site=SiteId("guian"))


def test_a_run_starts_at_its_running_event_in_trace_time() -> None:
    record = _record(JobState.SUCCEEDED, 1_000_000)
    events = [_event(JobState.PENDING, 1_000_000), _event(JobState.RUNNING, 1_030_000)]
    start_s, hours = run_window(record, events, compression=100.0)
    # 30 wall seconds after submission at compression 100: 3,000 trace seconds later
    assert start_s == pytest.approx(7200.0 + 3000.0)
    assert hours == pytest.approx(2.0)


def test_a_cancelled_run_is_priced_until_it_ended_and_one_never_run_not_at_all() -> None:
    record = _record(JobState.CANCELLED, 1_000_000)
    events = [_event(JobState.RUNNING, 1_010_000), _event(JobState.CANCELLED, 1_046_000)]
    start_s, hours = run_window(record, events, compression=100.0)
    assert start_s == pytest.approx(7200.0 + 1000.0)
    assert hours == pytest.approx(36.0 * 100.0 / 3600.0)
    assert run_window(record, [_event(JobState.CANCELLED, 1_001_000)], 100.0) == (None, 0.0)
