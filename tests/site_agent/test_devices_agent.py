"""Device isolation end to end: a broker and a real agent process with the local executor run
concurrent attempts on one pool; their environments never name the same device, also across an
agent restart."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from computenet import Client
from computenet.types import JobState, SiteStatus
from tests.support.pki import Pki
from tests.support.processes import BrokerProcess, start_agent, start_broker
from tests.support.waiting import wait_for

SITE = "horinger"
POOL = [{"model": "a800", "count": 4}]
CARDS = 2


def job(name: str, folder: Path) -> dict[str, Any]:
    """A job that writes its device variables to folder/<job id>, then runs until
    folder/release-<job id> exists."""
    out = f'{folder}/"$COMPUTENET_JOB_ID"'
    script = (
        f'echo "$CUDA_VISIBLE_DEVICES $COMPUTENET_DEVICES $COMPUTENET_CHECKPOINT_DIR" > {out}.tmp'
        f" && mv {out}.tmp {out}; "
        f'while [ ! -e {folder}/release-"$COMPUTENET_JOB_ID" ]; do sleep 0.1; done'
    )
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": CARDS, "cpu": 1, "memory_gb": 1},
        "duration_hours": 1.0,
        "command": ["sh", "-c", script],
    }


def devices_seen(folder: Path, job_id: str) -> set[int]:
    """The CUDA devices the job saw, once it wrote them; checks the other variables agree."""
    path = folder / job_id
    text = wait_for(lambda: path.exists() and path.read_text(), what=f"{job_id} to start")
    cuda, listed, checkpoints = text.split()
    assert cuda == listed
    assert checkpoints.endswith(f"/checkpoints/{job_id}")
    return {int(i) for i in cuda.split(",")}


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[BrokerProcess]:
    started = start_broker(tmp_path, pki=pki)
    yield started
    started.proc.kill()
    started.proc.wait(timeout=10)


@pytest.fixture
def agent(tmp_path: Path, broker: BrokerProcess) -> Iterator[list[subprocess.Popen[str]]]:
    """The agent process (a list, so a test can replace it); stopped at the end."""
    procs = [start_agent(tmp_path, SITE, broker.agent_address, pools=POOL, pki=broker.pki)]
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def running(client: Client, job_id: str) -> bool:
    return client.get(job_id).state == JobState.RUNNING


@pytest.mark.e2e
def test_two_local_attempts_never_see_the_same_device_even_across_a_restart(
    tmp_path: Path, broker: BrokerProcess, agent: list[subprocess.Popen[str]]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with broker.client() as client:
        wait_for(
            lambda: SITE in {s.site_id for s in client.sites(status=SiteStatus.ACTIVE)},
            what="the site to be active",
        )
        first = client.submit(job("first", out), request_id="first").job.job_id
        second = client.submit(job("second", out), request_id="second").job.job_id
        seen = {j: devices_seen(out, j) for j in (first, second)}
        assert all(len(d) == CARDS for d in seen.values()), seen
        assert seen[first].isdisjoint(seen[second]), seen
        assert seen[first] | seen[second] == {0, 1, 2, 3}

        # The agent restarts while both run on; it must know again what they hold.
        agent[0].send_signal(signal.SIGTERM)
        assert agent[0].wait(timeout=30) == 0
        agent.append(start_agent(tmp_path, SITE, broker.agent_address, pools=POOL, pki=broker.pki))
        # Free the higher-numbered cards: an agent that forgot the survivor's cards would hand
        # out the lowest ones (the survivor's) to the next job.
        leaving, staying = sorted(seen, key=lambda j: min(seen[j]), reverse=True)
        (out / f"release-{leaving}").touch()
        wait_for(lambda: client.get(leaving).state == JobState.SUCCEEDED, what="release")
        assert running(client, staying)
        third = client.submit(job("third", out), request_id="third").job.job_id
        assert devices_seen(out, third) == seen[leaving]
        wait_for(lambda: running(client, third), what="the third job to be reported running")
        assert running(client, staying)
        for job_id in (staying, third):
            (out / f"release-{job_id}").touch()
        for job_id in (staying, third):
            wait_for(lambda j=job_id: client.get(j).state == JobState.SUCCEEDED, what=job_id)
