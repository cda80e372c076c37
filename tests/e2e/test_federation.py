"""A broker and real agents (two local, one Slurm): jobs run, sites fail, nothing runs twice."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from computenet.types import JobState, SiteStatus
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import start_agent
from tests.support.waiting import wait_for

A800 = [{"model": "a800", "count": 8}]


def job_spec(name: str, marker: Path, seconds: float, **extra: Any) -> dict[str, Any]:
    """A job that records each start (site and attempt) in `marker`, then sleeps."""
    script = (
        f'echo "$COMPUTENET_JOB_ID $COMPUTENET_ATTEMPT $COMPUTENET_SITE" >> {marker}; '
        f"sleep {seconds}"
    )
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": 2, "cpu": 1, "memory_gb": 1},
        "duration_hours": 1.0,
        "command": ["sh", "-c", script],
        **extra,
    }


def starts(marker: Path) -> list[tuple[str, int, str]]:
    if not marker.exists():
        return []
    rows = [line.split() for line in marker.read_text().splitlines() if line.strip()]
    return [(r[0], int(r[1]), r[2]) for r in rows]


@pytest.mark.slurm
@pytest.mark.e2e
def test_jobs_run_on_local_and_slurm_sites_and_survive_a_killed_agent(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
    slurm_cluster: Any,
) -> None:
    broker = broker_factory(
        "--suspect-after", "1.5", "--lost-after", "4", "--lease", "3", "--clock-skew-margin", "1"
    )
    address, pki = broker.agent_address, broker.pki
    agents["horinger"] = start_agent(tmp_path, "horinger", address, pools=A800, pki=pki)
    agents["yangtze-demo"] = start_agent(tmp_path, "yangtze-demo", address, pools=A800, pki=pki)
    agents["zhangjiakou"] = start_agent(
        tmp_path,
        "zhangjiakou",
        address,
        pki=pki,
        executor="slurm",
        capacity={"source": "slurm"},
        env=slurm_cluster.env,
    )
    marker = tmp_path / "starts.txt"
    with broker.client() as client:
        wait_for(
            lambda: (
                {s.site_id for s in client.sites(status=SiteStatus.ACTIVE)}
                >= {"horinger", "yangtze-demo", "zhangjiakou"}
            ),
            what="three active sites",
        )
        training = client.submit(
            job_spec("train", marker, 30, kind="training"), request_id="train"
        ).job
        inference = client.submit(
            job_spec(
                "serve",
                marker,
                0.5,
                kind="inference",
                inference={"user_regions": [{"region": "shanghai"}], "latency_slo_ms": 15},
            ),
            request_id="serve",
        ).job
        first = wait_for(
            lambda: (j := client.get(training.job_id)).state == JobState.RUNNING and j,
            what="training running",
        )
        assert first.site == "horinger", "training should go west"
        served = wait_for(
            lambda: (j := client.get(inference.job_id)).state.is_final and j, what="inference"
        )
        assert served.state == JobState.SUCCEEDED and served.site == "yangtze-demo"

        agents["horinger"].kill()  # SIGKILL: the site goes silent
        agents["horinger"].wait(timeout=10)
        wait_for(lambda: client.site("horinger").status == SiteStatus.SUSPECT, what="suspect")
        wait_for(lambda: client.site("horinger").status == SiteStatus.LOST, what="lost")
        events = list(client.watch(training.job_id, after_sequence=0))
        assert any(e.state == JobState.PENDING and e.cause == "site_lost" for e in events)
        assert events[-1].state == JobState.SUCCEEDED
        done = client.get(training.job_id)
        assert done.site == "zhangjiakou" and done.attempt == 2

        agents["horinger"] = start_agent(tmp_path, "horinger", address, pools=A800, pki=pki)
        wait_for(lambda: client.site("horinger").status == SiteStatus.ACTIVE, what="rejoin")
        rejoined_ms = client.site("horinger").last_report_unix_ms
        # Settled: reconciled with the broker (attempt 1 is over) and reporting nothing in use.
        wait_for(
            lambda: (
                (site := client.site("horinger")).last_report_unix_ms > rejoined_ms
                and all(p.in_use == 0 for p in site.pools)
            ),
            what="the rejoined agent to hold no cards",
        )
    runs = [(job, attempt) for job, attempt, _ in starts(marker) if job == training.job_id]
    assert runs == [(training.job_id, 1), (training.job_id, 2)], runs


@pytest.mark.e2e
def test_broker_restart_mid_dispatch_loses_and_repeats_nothing(
    broker_factory: BrokerFactory, agents: dict[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'restart.db'}"
    broker = broker_factory(
        "--suspect-after", "2", "--lost-after", "20", "--lease", "15", db_url=db
    )
    agents["horinger"] = start_agent(
        tmp_path,
        "horinger",
        broker.agent_address,
        pools=[{"model": "a800", "count": 64}],
        pki=broker.pki,
    )
    marker = tmp_path / "starts.txt"
    with broker.client() as client:
        wait_for(lambda: client.site("horinger").status == SiteStatus.ACTIVE, what="active")
        ids = [
            client.submit(job_spec(f"j{i}", marker, 0.2), request_id=f"r{i}").job.job_id
            for i in range(20)
        ]
    broker.proc.kill()  # mid-dispatch: some jobs placed, some dispatched, some running
    broker.proc.wait(timeout=10)
    broker = broker_factory(
        "--suspect-after",
        "2",
        "--lost-after",
        "20",
        "--lease",
        "15",
        db_url=db,
        listen=broker.address,
        agent_listen=broker.agent_address,
    )
    with broker.client() as client:
        final = wait_for(
            lambda: all(client.get(i).state.is_final for i in ids) and [client.get(i) for i in ids],
            timeout_s=90,
            what="all jobs final",
        )
    assert all(j.state == JobState.SUCCEEDED for j in final), [(j.job_id, j.state) for j in final]
    per_job: dict[str, int] = {}
    for job, _, _ in starts(marker):
        per_job[job] = per_job.get(job, 0) + 1
    assert per_job == dict.fromkeys(ids, 1)
