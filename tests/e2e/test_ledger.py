"""The capacity ledger end to end: any-model jobs fill both pools of a site, and holds end.

A real broker and a real agent offering two pools (a800: 8, 910b: 8). Two any-model 8-card
jobs submitted together must run at the same time, one in each pool; the site's view shows
per pool what the broker holds, what is busy and what is free; when both end nothing is held.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from computenet.types import JobState, SiteStatus
from tests.e2e.conftest import BrokerFactory
from tests.e2e.test_federation import starts, wait_for
from tests.e2e.test_rebalance import cli
from tests.support.processes import start_agent

SITE = "chongqing"
POOLS = [{"model": "a800", "count": 8}, {"model": "910b", "count": 8}]


def any_model_job(name: str, marker: Path, release: Path) -> dict[str, Any]:
    """An 8-card job of any model that records its start and pool, then waits for `release`."""
    script = (
        f'echo "$COMPUTENET_JOB_ID $COMPUTENET_ATTEMPT $COMPUTENET_SITE" >> {marker}; '
        f"while [ ! -e {release} ]; do sleep 0.05; done"
    )
    return {
        "name": name,
        "kind": "batch",
        "resources": {"count": 8, "cpu": 1, "memory_gb": 1},
        "duration_hours": 1.0,
        "command": ["sh", "-c", script],
    }


def pools_of(broker: Any) -> dict[str, dict[str, int]]:
    site = cli(broker, "sites", "get", SITE)
    return {p["model"]: p for p in site["pools"]}


@pytest.mark.e2e
def test_two_any_model_jobs_run_at_once_one_in_each_pool(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    broker = broker_factory()
    agents[SITE] = start_agent(tmp_path, SITE, broker.agent_address, pools=POOLS, pki=broker.pki)
    marker, release = tmp_path / "starts", tmp_path / "release"
    with broker.client() as client:
        wait_for(lambda: client.site(SITE).status == SiteStatus.ACTIVE, what="site active")
        jobs = [
            client.submit(any_model_job(f"any-{i}", marker, release), request_id=f"any-{i}").job
            for i in range(2)
        ]
        ids = [j.job_id for j in jobs]

        def both_running() -> list[Any] | None:
            now = [client.get(i) for i in ids]
            return now if all(j.state == JobState.RUNNING for j in now) else None

        running = wait_for(both_running, what="both jobs running at once")
        assert {j.pool for j in running} == {"a800", "910b"}
        assert sorted(r[0] for r in starts(marker)) == sorted(ids), "each started exactly once"

        pools = pools_of(broker)
        for model in ("a800", "910b"):
            assert set(pools[model]) >= {"model", "allocatable", "held", "in_use", "free"}
            assert pools[model]["allocatable"] == 8
            assert pools[model]["held"] == 8, pools
            assert pools[model]["free"] == 0, pools

        def busy_reported() -> bool:
            view = pools_of(broker)
            return all(view[m]["in_use"] == 8 for m in ("a800", "910b"))

        wait_for(busy_reported, what="the agent reporting both pools busy")
        assert all(p["free"] == 0 for p in pools_of(broker).values()), "no double counting"

        release.touch()
        wait_for(
            lambda: all(client.get(i).state == JobState.SUCCEEDED for i in ids),
            what="both jobs succeeded",
        )
        pools = pools_of(broker)
        assert [pools[m]["held"] for m in ("a800", "910b")] == [0, 0], pools
