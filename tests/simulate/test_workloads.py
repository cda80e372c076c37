"""Workload loading: real-trace loaders, the normalised CSV round trip and seeded locations."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from broker.simulate import (
    WorkloadError,
    WorkloadJob,
    assign_locations,
    data_dir,
    load_workload,
    read_jobs,
    write_jobs,
)
from broker.simulate.traces import DATA_DIR_ENV
from topology import Topology, default_topology


@pytest.mark.usefixtures("traces_present")
@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("philly", {"training"}),
        ("alibaba-gpu2023", {"inference", "batch"}),
        ("alibaba-genai", {"inference"}),
    ],
)
def test_named_workloads_load_with_locations(name: str, kinds: set[str]) -> None:
    topology = default_topology()
    workload = load_workload(name, topology, seed=1, limit=300)
    assert len(workload.jobs) == 300
    assert {job.kind for job in workload.jobs} <= kinds
    submits = [job.submit_s for job in workload.jobs]
    assert submits == sorted(submits) and 0 <= submits[0] < 86_400
    for job in workload.jobs:
        assert job.duration_s > 0 and job.count >= 1
        assert topology.has_node(job.origin)
        if job.kind == "inference":
            assert job.user_region in topology.region_ids and job.latency_slo_ms == 15.0
        else:
            assert job.origin in topology.site_ids


@pytest.mark.usefixtures("traces_present")
def test_merged_timeline_interleaves_and_limits() -> None:
    workload = load_workload("philly,alibaba-genai", default_topology(), seed=0, limit=500)
    assert len(workload.jobs) == 500
    assert {job.kind for job in workload.jobs} == {"training", "inference"}
    assert len({job.job_id for job in workload.jobs}) == 500


@pytest.mark.usefixtures("traces_present")
def test_export_then_load_gives_the_same_jobs(tmp_path: Path) -> None:
    topology = default_topology()
    original = load_workload("alibaba-gpu2023,alibaba-genai", topology, seed=3, limit=200)
    path = tmp_path / "w.csv"
    from broker.simulate import export_jobs

    export_jobs(original.jobs, path)
    again = load_workload(str(path), topology, seed=99, limit=None)
    assert again.jobs == original.jobs


def _job(job_id: str, kind: str = "training", **changes: object) -> WorkloadJob:
    fields: dict[str, object] = dict(
        job_id=job_id,
        submit_s=10.0,
        kind=kind,
        accelerator="",
        count=2,
        duration_s=3600.0,
        origin="",
        dataset_gb=40.0,
        user_region="",
        latency_slo_ms=None,
        tenant="t",
    )
    fields.update(changes)
    return WorkloadJob(**fields)  # type: ignore[arg-type]


def test_seeded_assignment_is_deterministic_and_order_free() -> None:
    topology = default_topology()
    jobs = [
        _job(f"j{k}", "inference" if k % 2 else "training", latency_slo_ms=15.0) for k in range(60)
    ]
    first = assign_locations(jobs, topology, seed=7)
    assert first == assign_locations(jobs, topology, seed=7)
    assert list(reversed(first)) == assign_locations(list(reversed(jobs)), topology, seed=7)
    assert first != assign_locations(jobs, topology, seed=8)
    assert len({job.user_region for job in first if job.kind == "inference"}) > 3
    kept = assign_locations([_job("x", origin="guian")], topology, seed=7)
    assert kept[0].origin == "guian"


def test_normalised_csv_round_trip_and_defaults(tiny: Topology) -> None:
    text = (
        "submit_s,kind,accelerator,count,duration_s,origin,dataset_gb,user_region,"
        "latency_slo_ms,tenant,extra\n"
        "0,training,a100,4,7200,mid,100,,,acme,ignored\n"
        "60.5,inference,,2,3600,,,city,,web,\n"
    )
    jobs = read_jobs(io.StringIO(text), "w.csv")
    assert [j.job_id for j in jobs] == ["w-1", "w-2"]
    assert jobs[1].latency_slo_ms == 15.0 and jobs[1].dataset_gb == 0.0
    buffer = io.StringIO()
    write_jobs(jobs, buffer)
    assert read_jobs(io.StringIO(buffer.getvalue()), "again.csv") == jobs


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("0,serving,,1,60,,,,,t", "w.csv:2: kind"),
        ("0,training,,1.5,60,,,,,t", "w.csv:2: count"),
        ("0,training,,1,0,,,,,t", "w.csv:2: duration_s"),
        ("x,training,,1,60,,,,,t", "w.csv:2: submit_s"),
    ],
)
def test_bad_rows_name_line_and_column(row: str, message: str) -> None:
    header = (
        "submit_s,kind,accelerator,count,duration_s,origin,dataset_gb,user_region,"
        "latency_slo_ms,tenant\n"
    )
    with pytest.raises(WorkloadError, match=message):
        read_jobs(io.StringIO(header + row + "\n"), "w.csv")


def test_missing_columns_and_unknown_names_are_reported() -> None:
    with pytest.raises(WorkloadError, match="lacks column"):
        read_jobs(io.StringIO("submit_s,kind\n"), "w.csv")
    with pytest.raises(WorkloadError, match="unknown workload"):
        load_workload("no-such-trace", default_topology(), seed=0)


def test_missing_data_dir_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(WorkloadError, match=DATA_DIR_ENV):
        data_dir()
