"""`computenet explain` of a pending job, through a real broker and agent: every site of the
topology with its live verdict and reason, and the job's place in the queue."""

from __future__ import annotations

import json
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
POOLS = [{"model": "a800", "count": 4}]
CLI = "from computenet.cli.main import main; main()"


def too_big(name: str) -> dict[str, object]:
    """A job asking for more a800 than the one live site has."""
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": 8, "cpu": 1, "memory_gb": 1},
        "duration_hours": 0.01,
        "command": ["true"],
    }


@pytest.mark.e2e
def test_explain_of_a_pending_job_lists_every_site_with_a_reason_and_its_queue_place(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    broker = broker_factory()
    agents[SITE] = start_agent(tmp_path, SITE, broker.agent_address, pools=POOLS, pki=broker.pki)
    with broker.client() as client:
        wait_for(
            lambda: (s := client.site(SITE)).status == SiteStatus.ACTIVE and s.pools,
            what="the site active with capacity",
        )
        site_ids = [s.site_id for s in client.sites()]
        first = client.submit(too_big("first"), request_id="first").job.job_id
        second = client.submit(too_big("second"), request_id="second").job.job_id
        queue = wait_for(
            lambda: (q := client.queue()) and len(q) == 2 and q,
            what="both jobs in the queue",
        )
        position = {q.job_id: q.position for q in queue}[second]
        assert client.get(second).state == JobState.PENDING
        assert first in {q.job_id for q in queue}

    assert broker.pki is not None
    env = {
        **os.environ,
        "COMPUTENET_CA": str(broker.pki.ca),
        "COMPUTENET_TOKEN": broker.pki.tokens["operator"],
        "COLUMNS": "80",
    }

    def explain(*extra: str) -> str:
        shown = subprocess.run(
            [sys.executable, "-c", CLI, "explain", second, "--broker", broker.address, *extra],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        return shown.stdout

    document = json.loads(explain("-o", "json"))
    verdicts = {c["site"]: c for c in document["live_plan"]["candidates"]}
    assert set(verdicts) == set(site_ids)
    assert all(not c["feasible"] and c["reason"] for c in verdicts.values())
    assert "a800" in document["capacity"][SITE] and "4/4" in document["capacity"][SITE]
    assert document["queue"]["position"] == position

    text = explain()
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    rows = sorted(i for i, line in enumerate(lines) if line.split()[:1] in ([s] for s in site_ids))
    assert [lines[i].split()[0] for i in rows] == site_ids, text
    for row, end in zip(rows, [*rows[1:], len(lines)], strict=True):
        # the reason wraps within its column: whole once the row's words are joined
        words = " ".join(" ".join(lines[row:end]).split())
        assert verdicts[lines[row].split()[0]]["reason"] in words, text
    assert f"queue: position {position}" in text
    assert "fits now at: no site" in text
