"""A real broker places a job accepting several models; `explain` lists each (site, model) with
its run hours, through the SDK and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from computenet.errors import InvalidArgumentError
from computenet.types import SiteStatus
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import start_agent
from tests.support.waiting import wait_for
from topology import default_topology

SITE = "wuhu"  # 910b and k100ai pools in the default topology
POOLS = [{"model": "910b", "count": 8}, {"model": "k100ai", "count": 8}]
CLI = "from computenet.cli.main import main; main()"
HOURS = 0.01


def any_of(name: str, **resources: object) -> dict[str, object]:
    return {
        "name": name,
        "kind": "training",
        "resources": {
            "accelerators": ["a800", "910b", "k100ai"],
            "reference": "a800",
            "count": 4,
            "cpu": 1,
            "memory_gb": 1,
        }
        | resources,
        "duration_hours": HOURS,
        "command": ["true"],
    }


@pytest.mark.e2e
def test_explain_of_a_placed_any_of_job_lists_each_site_and_model_with_its_hours(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    broker = broker_factory()
    agents[SITE] = start_agent(tmp_path, SITE, broker.agent_address, pools=POOLS, pki=broker.pki)
    topology = default_topology()
    with broker.client() as client:
        wait_for(
            lambda: SITE in {s.site_id for s in client.sites(status=SiteStatus.ACTIVE)},
            what="the site active",
        )
        with pytest.raises(InvalidArgumentError) as refused:
            client.submit(any_of("bad", accelerators=["a800", "nope"]), request_id="bad")
        assert [v.field for v in refused.value.violations] == ["spec.resources.accelerators[1]"]
        job_id = client.submit(any_of("any"), request_id="any").job.job_id
        wait_for(lambda: client.get(job_id).site is not None, what="the job placed")
        job = client.get(job_id)
        assert (job.site, job.pool) == (SITE, "910b")  # 910b is faster than k100ai
        placement = client.explain(job_id)
    feasible = {(c.site, c.accelerator): c for c in placement.candidates if c.feasible}
    assert set(feasible) == {(SITE, "910b"), (SITE, "k100ai")}
    for (_, model), candidate in feasible.items():
        speed = topology.speed(model, "a800", "llm-training")
        assert candidate.run_hours == pytest.approx(HOURS / speed)
        assert set(candidate.terms_cny) >= {"energy", "carbon", "reliability", "queue_wait"}
    assert placement.chosen == SITE
    assert broker.pki is not None
    env = {
        **os.environ,
        "COMPUTENET_CA": str(broker.pki.ca),
        "COMPUTENET_TOKEN": broker.pki.tokens["operator"],
    }
    shown = subprocess.run(
        [sys.executable, "-c", CLI, "explain", job_id, "--broker", broker.address, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    rows = [c for c in json.loads(shown.stdout)["candidates"] if c["feasible"]]
    assert {(c["site"], c["accelerator"], c["run_hours"]) for c in rows} == {
        (c.site, c.accelerator, c.run_hours) for c in feasible.values()
    }
