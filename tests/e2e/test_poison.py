"""A job that cannot start anywhere fails with its reasons; every agent stays up and works on."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from computenet.types import JobState, SiteStatus
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import start_agent
from tests.support.waiting import wait_for

SITES = ["horinger", "yangtze-demo", "zhangjiakou"]
A800 = [{"model": "a800", "count": 8}]
MAX_ATTEMPTS = 3


def spec(name: str, command: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": 1, "cpu": 1, "memory_gb": 1},
        "duration_hours": 0.1,
        "command": command,
        "constraints": {"allowed_sites": SITES},
    }


@pytest.mark.e2e
def test_a_job_no_site_can_start_fails_with_its_reasons_and_harms_no_agent(
    broker_factory: BrokerFactory, agents: dict[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    config = tmp_path / "broker.yaml"
    retries = {"max_launch_attempts": MAX_ATTEMPTS, "max_sites": 3, "retry_backoff_s": 0.2}
    config.write_text(yaml.safe_dump({"jobs": retries}))
    broker = broker_factory(
        "--config",
        str(config),
        "--suspect-after",
        "3",
        "--lost-after",
        "8",
        "--lease",
        "5",
        "--clock-skew-margin",
        "1",
    )
    for site in SITES:
        agents[site] = start_agent(tmp_path, site, broker.agent_address, pools=A800, pki=broker.pki)
    done_flag = tmp_path / "alongside-may-end"
    with broker.client() as client:
        wait_for(
            lambda: {s.site_id for s in client.sites(status=SiteStatus.ACTIVE)} >= set(SITES),
            what="three active sites",
        )
        # A job that runs while the poison job goes round, until the test lets it end.
        alongside = client.submit(
            spec("alongside", ["sh", "-c", f"while [ ! -e {done_flag} ]; do sleep 0.1; done"]),
            request_id="alongside",
        ).job
        wait_for(lambda: client.get(alongside.job_id).state == JobState.RUNNING, what="running")
        poison = client.submit(
            spec("poison", ["/nonexistent/computenet-test-binary", "--flag"]), request_id="poison"
        ).job
        failed = wait_for(
            lambda: (j := client.get(poison.job_id)).state.is_final and j,
            timeout_s=120,
            what="the poison job to end",
        )
        assert failed.state == JobState.FAILED, failed
        events = list(client.watch(poison.job_id, after_sequence=0))
        tried = [e.site for e in events if e.state == JobState.PLACED]
        assert len(tried) == MAX_ATTEMPTS and set(tried) == set(SITES), tried  # never twice
        failed_starts = [e for e in events if e.cause == "launch_failed"]
        assert [e.state for e in failed_starts] == [
            *[JobState.PENDING] * (MAX_ATTEMPTS - 1),
            JobState.FAILED,
        ]
        assert all("retrying in" in e.message for e in failed_starts[:-1])
        summary = failed_starts[-1].message
        assert summary.startswith(f"could not start after {MAX_ATTEMPTS} attempts at 3 sites")
        for site in SITES:
            assert f"at {site}: cannot start '/nonexistent/computenet-test-binary'" in summary

        for site, proc in agents.items():
            assert proc.poll() is None, f"agent {site} died"
        assert {s.site_id for s in client.sites(status=SiteStatus.ACTIVE)} >= set(SITES)
        assert client.get(alongside.job_id).state == JobState.RUNNING

        after = client.submit(spec("after", ["sh", "-c", "exit 0"]), request_id="after").job
        ok = wait_for(
            lambda: (j := client.get(after.job_id)).state.is_final and j, what="the job after"
        )
        assert ok.state == JobState.SUCCEEDED, ok
        done_flag.touch()
        ended = wait_for(
            lambda: (j := client.get(alongside.job_id)).state.is_final and j,
            what="the job alongside",
        )
        assert ended.state == JobState.SUCCEEDED and ended.attempt == 1, ended
