"""A real broker and a static agent with a node-shaped pool: big gangs take whole nodes only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from computenet.types import JobState, SiteStatus
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import start_agent
from tests.support.waiting import wait_for

SITE = "chongqing"
TWO_NODES = [{"model": "a800", "count": 4, "nodes": 2, "cards_per_node": 2}]
TOO_BIG = "gang of 6 a800 needs 3 nodes of 2 cards, the pool has 2 nodes"
CLI = "from computenet.cli.main import main; main()"


def gang(name: str, cards: int) -> dict[str, object]:
    return {
        "name": name,
        "kind": "training",
        "gang": True,
        "resources": {"accelerator": "a800", "count": cards, "cpu": 1, "memory_gb": 1},
        "duration_hours": 0.01,
        "command": ["true"],
    }


@pytest.mark.e2e
def test_a_three_node_gang_is_never_sent_to_a_two_node_site_and_explain_says_why(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    broker = broker_factory()
    agents[SITE] = start_agent(
        tmp_path, SITE, broker.agent_address, pools=TWO_NODES, pki=broker.pki
    )
    with broker.client() as client:
        # active comes with the hello; the pools with the first capacity report
        site = wait_for(
            lambda: (s := client.site(SITE)).status == SiteStatus.ACTIVE and s.pools and s,
            what="the two-node site active with capacity",
        )
        (pool,) = site.pools
        assert (pool.nodes, pool.cards_per_node) == (2, 2)
        fits = client.submit(gang("fits", 4), request_id="fits").job.job_id
        wait_for(lambda: client.get(fits).state == JobState.SUCCEEDED, what="the 2-node gang ran")
        too_big = client.submit(gang("too-big", 6), request_id="too-big").job.job_id
        wait_for(lambda: TOO_BIG in client.get(too_big).reason, what="the pending reason")
        job = client.get(too_big)
        assert job.state == JobState.PENDING and job.site is None and job.attempt == 0
        # explain of a pending job plans it now: the site is there, infeasible, saying why
        placement = client.explain(too_big)
        verdict = next(c for c in placement.candidates if c.site == SITE)
        assert placement.chosen is None and not verdict.feasible and TOO_BIG in verdict.reason
    assert broker.pki is not None
    env = {
        **os.environ,
        "COMPUTENET_CA": str(broker.pki.ca),
        "COMPUTENET_TOKEN": broker.pki.tokens["operator"],
        "COLUMNS": "80",
    }
    shown = subprocess.run(
        [sys.executable, "-c", CLI, "explain", too_big, "--broker", broker.address],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    # the reason may wrap within its column at 80 columns; its words follow the site's row
    row = next(line for line in shown.stdout.splitlines() if line.split()[:1] == [SITE])
    after = shown.stdout[shown.stdout.index(row) :]
    assert TOO_BIG in " ".join(after.split())
    assert "fits now at: no site" in shown.stdout
