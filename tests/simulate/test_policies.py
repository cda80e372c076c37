"""Policy sanity on a tiny topology, and the capacity property over random workloads."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.placement import PolicyConfig
from broker.simulate import POLICY_NAMES, Capacity, WorkloadJob, make_policy, replay
from broker.simulate.replay import ReplayResult
from topology import Topology


def _job(
    job_id: str,
    count: int,
    *,
    kind: str = "training",
    submit_s: float = 0.0,
    duration_s: float = 3600.0,
    origin: str = "near",
    accelerator: str = "",
) -> WorkloadJob:
    serving = kind == "inference"
    return WorkloadJob(
        job_id=job_id,
        submit_s=submit_s,
        kind=kind,  # type: ignore[arg-type]
        accelerator=accelerator,
        count=count,
        duration_s=duration_s,
        origin="city" if serving else origin,
        dataset_gb=0.0 if serving else 10.0,
        user_region="city" if serving else "",
        latency_slo_ms=15.0 if serving else None,
        tenant="t",
    )


def _run(
    topology: Topology, name: str, jobs: list[WorkloadJob], scale: float = 1.0
) -> ReplayResult:
    capacity = Capacity(topology, scale)
    policy = make_policy(name, topology, capacity, seed=0, config=PolicyConfig())
    return replay(jobs, capacity, policy)


def test_nearest_takes_the_nearest_site_with_room(tiny: Topology) -> None:
    jobs = [_job("a", 4), _job("b", 4), _job("c", 6)]
    sites = {run.job.job_id: run.site for run in _run(tiny, "nearest", jobs).runs}
    assert sites == {"a": "near", "b": "mid", "c": "far"}


def test_cheapest_energy_takes_the_cheapest_site_with_room(tiny: Topology) -> None:
    jobs = [_job("a", 8), _job("b", 8), _job("c", 4)]
    sites = {run.job.job_id: run.site for run in _run(tiny, "cheapest-energy", jobs).runs}
    assert sites == {"a": "far", "b": "mid", "c": "near"}


def test_jobs_without_room_wait_fifo_and_start_when_cards_free(tiny: Topology) -> None:
    # at scale 0.5 the a100 pools hold 2, 4 and 4 cards: two 4-card gangs fit, the third waits
    jobs = [
        _job(name, 4, submit_s=t, accelerator="a100") for name, t in (("a", 0), ("b", 0), ("c", 30))
    ]
    jobs.append(_job("small", 2, submit_s=40.0, accelerator="a100"))
    result = _run(tiny, "nearest", jobs, scale=0.5)
    starts = {run.job.job_id: (run.start_s, run.site) for run in result.runs}
    assert starts == {
        "a": (0.0, "mid"),
        "b": (0.0, "far"),
        "c": (3600.0, "mid"),
        "small": (60.0, "near"),
    }


def test_engine_policies_keep_inference_within_its_slo(tiny: Topology) -> None:
    jobs = [_job("web", 2, kind="inference"), _job("train", 4, duration_s=50 * 3600.0)]
    for name in ("greedy", "optimal"):
        sites = {run.job.job_id: run.site for run in _run(tiny, name, jobs).runs}
        assert sites["web"] == "near", name
        assert sites["train"] == "far", name


def _peak_use(result: ReplayResult) -> dict[tuple[str, int], int]:
    """Most cards each pool held at once, rebuilt from the runs (releases before starts)."""
    events: dict[tuple[str, int], list[tuple[float, int]]] = defaultdict(list)
    for run in result.runs:
        for pool, cards in run.allocation:
            events[(run.site, pool)] += [(run.start_s, cards), (run.end_s, -cards)]
    peaks = {}
    for key, items in events.items():
        level = peak = 0
        for _, delta in sorted(items, key=lambda e: (e[0], e[1])):
            level += delta
            peak = max(peak, level)
        peaks[key] = peak
    return peaks


_jobs = st.lists(
    st.tuples(
        st.integers(0, 7200),
        st.sampled_from(["training", "batch", "inference"]),
        st.integers(1, 9),
        st.integers(60, 20_000),
        st.sampled_from(["", "a100", "h20"]),
        st.sampled_from(["near", "mid", "far", "city"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_jobs, scale=st.sampled_from([0.5, 1.0]))
def test_capacity_is_never_overcommitted(tiny: Topology, rows: list[tuple], scale: float) -> None:
    jobs = [
        _job(
            f"j{k}",
            count,
            kind=kind,
            submit_s=float(t),
            duration_s=float(d),
            accelerator=model,
            origin=origin,
        )
        for k, (t, kind, count, d, model, origin) in enumerate(rows)
    ]
    for name in POLICY_NAMES:
        capacity = Capacity(tiny, scale)
        result = _run(tiny, name, jobs, scale)
        for (site, pool), peak in _peak_use(result).items():
            assert peak <= capacity.pools[site][pool].cards, (name, site, pool)
        for run in result.runs:
            assert run.start_s >= run.job.submit_s
        assert len(result.runs) + len(result.stranded) + len(result.unplaceable) == len(jobs)
        assert capacity.free == Capacity(tiny, scale).free  # every card given back
