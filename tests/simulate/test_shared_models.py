"""The simulator and the demo build the same spec, take the same pools and price the same energy."""

from __future__ import annotations

import math

import pytest

from broker.placement import Policy, PolicyConfig, place
from broker.simulate import Capacity, WorkloadJob, make_policy, replay
from broker.simulate.clock import SECONDS_PER_HOUR, unix_s
from broker.simulate.engine_policies import SpecCache
from broker.simulate.metrics import run_energy, summarise
from computenet.demo.accounting import totals
from computenet.demo.summary import accounted_jobs
from computenet.demo.workload import LABEL_TRACE_JOB, job_spec
from computenet.types import Job, JobEvent, JobId, JobState, SiteId, TenantId
from topology import Topology, default_topology
from topology.energy import run_energy as energy_of
from topology.pool_fit import allocation_watts, fit

HOUR_S = 3600.0


def _job(
    job_id: str,
    kind: str,
    count: int,
    *,
    submit_s: float,
    hours: float,
    accelerator: str = "",
    origin: str = "",
    dataset_gb: float = 0.0,
    region: str = "",
    slo_ms: float | None = None,
    priority: int = 0,
) -> WorkloadJob:
    return WorkloadJob(
        job_id=job_id,
        submit_s=submit_s,
        kind=kind,  # type: ignore[arg-type]
        accelerator=accelerator,
        count=count,
        duration_s=hours * HOUR_S,
        origin=origin,
        dataset_gb=dataset_gb,
        user_region=region,
        latency_slo_ms=slo_ms,
        tenant="t",
        priority=priority,
    )


# Horinger's 910b pool (2,048 cards, 350 W) is its least power-hungry: the first gang fills most
# of it, so the second lands in the 400 W h20 pool, and the last one only fits there once the
# second has ended; the inference replicas take what the 910b pool has left.
OVERLAPPING = [
    _job("t1", "training", 2000, submit_s=10, hours=10, origin="horinger", dataset_gb=100),
    _job("t2", "training", 1000, submit_s=20, hours=5, origin="horinger"),
    _job("t3", "training", 64, submit_s=30, hours=3, accelerator="a800", origin="horinger"),
    _job("i1", "inference", 40, submit_s=40, hours=2, region="hohhot", slo_ms=15.0),
    _job("i2", "inference", 30, submit_s=50, hours=1, accelerator="h20", region="beijing"),
    _job("b1", "batch", 8, submit_s=70, hours=1, accelerator="910b", origin="wuhu"),
    _job("t4", "training", 1000, submit_s=6 * HOUR_S + 5, hours=2, origin="horinger"),
]
EDGES = [
    _job("long", "training", 8, submit_s=0, hours=24 * 400, origin="guian", priority=5000),
    _job("low", "batch", 1, submit_s=0, hours=1e-9, priority=-5000),
    _job("no-slo", "inference", 3, submit_s=0, hours=1, region="shanghai"),
    _job("no-data", "training", 16, submit_s=0, hours=2, origin="shanghai"),
]


@pytest.fixture(scope="module")
def topology() -> Topology:
    return default_topology()


CREATED_MS = 1_000_000


def _record(job: WorkloadJob, site: str, pool: str = "") -> Job:
    """The broker's record of a demo job that succeeded at `site` on `pool`."""
    spec = job_spec(job, compression=3600.0, max_job_s=3.0)
    return Job(
        JobId(f"job-{job.job_id}"), TenantId("demo"), spec, JobState.SUCCEEDED, SiteId(site),
        created_unix_ms=CREATED_MS, pool=pool,
    )  # fmt: skip


def _started(job: Job, wait_s: float) -> list[JobEvent]:
    """The job's running event `wait_s` wall seconds after its submission (compression 1)."""
    at_ms = CREATED_MS + round(wait_s * 1000)
    return [JobEvent(1, job.job_id, JobState.RUNNING, "test", at_ms, site=job.site)]


@pytest.mark.parametrize("job", OVERLAPPING + EDGES, ids=lambda j: j.job_id)
def test_the_demo_submits_the_spec_the_simulator_places(job: WorkloadJob) -> None:
    simulated = SpecCache()(job)
    submitted = job_spec(job, compression=3600.0, max_job_s=3.0)
    assert submitted.labels[LABEL_TRACE_JOB] == job.job_id
    assert submitted.command[:2] == ("sh", "-c")
    assert submitted.model_copy(update={"command": simulated.command, "labels": {}}) == simulated
    assert submitted.resources.cpu_cores == submitted.resources.memory_gb == 0.0
    assert submitted.accelerators_total == job.count
    assert submitted.gang == (job.kind != "inference")


@pytest.mark.parametrize("policy", ["nearest", "greedy"])
def test_demo_accounting_of_the_simulators_runs_matches_the_simulator(
    topology: Topology, policy: str
) -> None:
    capacity = Capacity(topology)
    config = PolicyConfig()
    result = replay(
        OVERLAPPING, capacity, make_policy(policy, topology, capacity, seed=0, config=config)
    )
    runs = {run.job.job_id: run for run in result.runs}
    assert sorted(runs) == sorted(j.job_id for j in OVERLAPPING)
    # The demo starts every job at the end of its decision window: the replay must not queue.
    assert all(run.start_s == math.ceil(run.job.submit_s / 60) * 60 for run in runs.values())
    if policy == "nearest":
        pools = {job_id: capacity.pools[r.site][r.allocation[0][0]] for job_id, r in runs.items()}
        assert (pools["t1"].model, pools["t2"].model, pools["t4"].model) == ("910b", "h20", "h20")

    # the broker records one pool per job: compare the runs that took one
    single = {job_id: r for job_id, r in runs.items() if len(r.allocation) == 1}
    assert {r.job.kind for r in single.values()} == {"training", "inference", "batch"}
    records: list[Job] = []
    events: dict[str, list[JobEvent]] = {}
    for run in single.values():
        model = capacity.pools[run.site][run.allocation[0][0]].model
        record = _record(run.job, run.site, model)
        records.append(record)
        # the demo maps wall time to trace time from the submission's trace second
        events[record.job_id] = _started(record, run.start_s - run.job.submit_s)
    demo = {j.trace_job: j for j in accounted_jobs(records, events, 1.0, topology)}
    for job_id, run in single.items():
        simulated = run_energy(run, capacity)
        accounted = demo[job_id]
        assert accounted.watts == capacity.watts(run.site, run.allocation), job_id
        assert (accounted.kwh, accounted.energy_cny, accounted.carbon_kg) == (
            simulated.kwh,
            simulated.cny,
            simulated.carbon_kg,
        ), job_id
    if len(single) == len(runs):
        metrics = summarise(result, capacity, config, None)
        demo_totals = totals(list(demo.values()))
        assert demo_totals.energy_cny == pytest.approx(metrics.energy_cny, rel=1e-12)
        assert demo_totals.carbon_t == pytest.approx(metrics.carbon_t, rel=1e-12)


def test_the_placement_engine_prices_energy_by_the_same_model(topology: Topology) -> None:
    job = _job("t", "training", 64, submit_s=0, hours=30, accelerator="a800", origin="shanghai")
    capacity = Capacity(topology)
    now_s = 9.5 * SECONDS_PER_HOUR
    spec = SpecCache()(job)
    placement = place(spec, capacity.snapshot(unix_s(now_s)), Policy.default())
    feasible = [c for c in placement.candidates if c.feasible]
    assert len(feasible) >= 3
    for candidate in feasible:
        pools = capacity.pools[candidate.site]
        allocation = fit(pools, capacity.free[candidate.site], "a800", 64, gang=True)
        assert allocation is not None
        watts = allocation_watts(pools, allocation)
        used = energy_of(
            topology, candidate.site, watts, now_s / SECONDS_PER_HOUR, 30.0,
            cards=64, workload=spec.workload,
        )  # fmt: skip
        assert candidate.terms_cny["energy"] == pytest.approx(used.cny, abs=0.01)
