"""Reconciliation with real processes: one reconnect settles what a site forgot or still runs.

A broker subprocess and real agents (or a scripted agent on a real stream): an agent restarted
with an empty journal gets its lost attempt requeued at its first hello; a site declared lost
while stalled, or silent on an open stream, is told at its next hello to stop the attempt the
broker moved away, and only the new attempt keeps running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from computenet import Client
from computenet.types import JobState, SiteStatus
from computenet.v1 import types_pb2
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import start_agent
from tests.support.scripted_agent import ScriptedAgent
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

A800 = [{"model": "a800", "count": 8}]
WEST, EAST = "horinger", "yangtze-demo"


def job_spec(name: str, marker: Path) -> dict[str, Any]:
    """A long job that stamps its start and, when stopped, its end (job, attempt, site, pid)."""
    stamp = f'"$COMPUTENET_JOB_ID $COMPUTENET_ATTEMPT $COMPUTENET_SITE $$" >> {marker}'
    script = f"echo start {stamp}; trap 'echo end {stamp}; exit 143' TERM; sleep 300 & wait"
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": 2, "cpu": 1, "memory_gb": 1},
        "duration_hours": 1.0,
        "command": ["sh", "-c", script],
    }


def stamps(marker: Path, kind: str) -> dict[int, tuple[str, int]]:
    """attempt -> (site, pid) of every `kind` ("start" or "end") stamp."""
    if not marker.exists():
        return {}
    rows = [line.split() for line in marker.read_text().splitlines() if line.strip()]
    return {int(r[2]): (r[3], int(r[4])) for r in rows if r[0] == kind}


def connections(site: str, tmp_path: Path) -> int:
    """How many streams the site's agent has had welcomed (its log says so each time)."""
    log = tmp_path / f"agent-{site}" / "agent.log"
    return log.read_text().count("connected target=") if log.exists() else 0


def process_gone(pid: int) -> bool:
    """True once no process has `pid` (its wrapper reaps it as it ends)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def kill_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group of the job process `pid` (the executor's own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgid(pid), sig)


def events(client: Client, job_id: str) -> list[tuple[str, str, str]]:
    """The job's events so far (a watch ends only at a final state, so stop at the latest)."""
    last = client.get(job_id).last_sequence
    seen: list[tuple[str, str, str]] = []
    if last == 0:
        return seen
    for event in client.watch(job_id, after_sequence=0):
        seen.append((event.state.value, event.cause, event.message))
        if event.sequence >= last:
            break
    return seen


def has_event(client: Client, job_id: str, cause: str) -> list[tuple[str, str, str]]:
    return [e for e in events(client, job_id) if e[1] == cause]


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "stamps.txt"
    yield path
    for _, pid in stamps(path, "start").values():  # leave no job process behind
        kill_group(pid, signal.SIGCONT)
        kill_group(pid, signal.SIGKILL)


def test_an_agent_restarted_with_an_empty_journal_gets_its_lost_job_requeued_at_once(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
    marker: Path,
) -> None:
    # The default lost window (a minute) is far longer than the restart: only reconciliation
    # can requeue the job.
    broker = broker_factory()
    address, pki = broker.agent_address, broker.pki
    agents[WEST] = start_agent(tmp_path, WEST, address, pools=A800, pki=pki)
    with broker.client() as client:
        wait_for(lambda: client.site(WEST).status == SiteStatus.ACTIVE, what="active")
        job = client.submit(job_spec("forgotten", marker), request_id="forgotten").job
        wait_for(lambda: client.get(job.job_id).state == JobState.RUNNING, what="running")
        (_, pid) = wait_for(lambda: stamps(marker, "start").get(1), what="attempt 1 started")

        # The agent dies with its job and comes back with nothing on disk.
        agents[WEST].kill()
        agents[WEST].wait(timeout=10)
        kill_group(pid, signal.SIGKILL)
        shutil.rmtree(tmp_path / f"agent-{WEST}" / "state")
        before = connections(WEST, tmp_path)
        agents[WEST] = start_agent(tmp_path, WEST, address, pools=A800, pki=pki)

        (reconciled,) = wait_for(
            lambda: has_event(client, job.job_id, "attempt_unknown_at_site"),
            what="the forgotten attempt reconciled",
        )
        assert reconciled == (
            "pending",
            "attempt_unknown_at_site",
            f"reconciled: site {WEST} no longer knows attempt 1; requeued",
        )
        assert connections(WEST, tmp_path) == before + 1, "settled within one reconnect"
        assert client.site(WEST).status != SiteStatus.LOST
        again = wait_for(
            lambda: (
                (j := client.get(job.job_id)).state == JobState.RUNNING and j.attempt == 2 and j
            ),
            what="the job running again",
        )
        assert again.site == WEST
        wait_for(lambda: stamps(marker, "start").get(2), what="attempt 2 started")
        assert not has_event(client, job.job_id, "site_lost")


def test_a_site_back_from_lost_is_told_to_stop_the_attempt_that_moved_away(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
    marker: Path,
) -> None:
    broker = broker_factory(
        "--suspect-after", "1.5", "--lost-after", "4", "--lease", "2.5", "--clock-skew-margin", "1"
    )
    address, pki = broker.agent_address, broker.pki
    agents[WEST] = start_agent(tmp_path, WEST, address, pools=A800, pki=pki)
    with broker.client() as client:
        wait_for(lambda: client.site(WEST).status == SiteStatus.ACTIVE, what="west active")
        job = client.submit(job_spec("moved", marker), request_id="moved").job
        wait_for(lambda: client.get(job.job_id).state == JobState.RUNNING, what="running west")
        (_, old_pid) = wait_for(lambda: stamps(marker, "start").get(1), what="attempt 1 started")
        agents[EAST] = start_agent(tmp_path, EAST, address, pools=A800, pki=pki)
        wait_for(lambda: client.site(EAST).status == SiteStatus.ACTIVE, what="east active")

        # The whole west site freezes (agent and job) past the lost window, then wakes.
        agents[WEST].send_signal(signal.SIGSTOP)
        kill_group(old_pid, signal.SIGSTOP)
        wait_for(lambda: client.site(WEST).status == SiteStatus.LOST, what="west lost")
        moved = wait_for(
            lambda: (
                (j := client.get(job.job_id)).state == JobState.RUNNING and j.attempt == 2 and j
            ),
            what="the job running at the new site",
        )
        assert moved.site == EAST
        wait_for(lambda: stamps(marker, "start").get(2), what="attempt 2 started")
        before = connections(WEST, tmp_path)
        agents[WEST].send_signal(signal.SIGCONT)
        kill_group(old_pid, signal.SIGCONT)

        # The frozen job cannot trap SIGTERM: the attempt's watchdog SIGKILLs it at the lease
        # end, or the agent stops it when the broker reconciles its hello; either way it is gone.
        wait_for(lambda: process_gone(old_pid), what="the old attempt stopped")
        wait_for(lambda: client.site(WEST).status == SiteStatus.ACTIVE, what="west back")
        assert connections(WEST, tmp_path) == before + 1, "back within one reconnect"
        now = client.get(job.job_id)
        assert (now.state, now.site, now.attempt) == (JobState.RUNNING, EAST, 2)
        assert 2 not in stamps(marker, "end"), "the new attempt keeps running"


def test_a_site_silent_on_an_open_stream_is_cut_off_when_lost_and_stopped_at_its_hello(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
    marker: Path,
) -> None:
    broker = broker_factory(
        "--suspect-after", "3", "--lost-after", "8", "--lease", "5", "--clock-skew-margin", "1"
    )
    assert broker.pki is not None
    pki = broker.pki
    west = ScriptedAgent(broker.agent_address, WEST, credentials=pki.site_credentials(WEST))
    try:
        west.next("welcome")
        west.report_capacity("a800", 8)
        with broker.client() as client:
            job = client.submit(job_spec("stalled", marker), request_id="stalled").job
            dispatch = west.next("dispatch").dispatch
            assert (dispatch.job_id, dispatch.attempt) == (job.job_id, 1)
            west.ack(dispatch.delivery_id)
            west.job_event(job.job_id, 1, types_pb2.JOB_STATE_RUNNING)
            wait_for(lambda: client.get(job.job_id).state == JobState.RUNNING, what="running")
            agents[EAST] = start_agent(tmp_path, EAST, broker.agent_address, pools=A800, pki=pki)
            # West says nothing more but keeps its stream open; the broker ends it when lost.
            wait_for(lambda: client.site(WEST).status == SiteStatus.LOST, what="west lost")
            assert west.ended.wait(timeout=30), "the lost site's stream was ended"
            wait_for(
                lambda: (j := client.get(job.job_id)).state == JobState.RUNNING and j.attempt == 2,
                what="the job running at the new site",
            )
        west.close()

        # West comes back still holding attempt 1: its hello says so.
        running = types_pb2.JOB_STATE_RUNNING
        west = ScriptedAgent(
            broker.agent_address,
            WEST,
            credentials=pki.site_credentials(WEST),
            attempts=[(job.job_id, 1, running)],
        )
        west.next("welcome")
        cancel = west.next("cancel").cancel
        assert (cancel.job_id, cancel.attempt) == (job.job_id, 1)
        west.ack(cancel.delivery_id)
        west.job_event(job.job_id, 1, types_pb2.JOB_STATE_CANCELLED)
        with broker.client() as client:
            note = f"reconciled: site {WEST} still held attempt 1 (running); told to stop it"
            assert has_event(client, job.job_id, "stale_attempt_at_site") == [
                ("running", "stale_attempt_at_site", note)
            ]
            now = client.get(job.job_id)
            assert (now.state, now.site, now.attempt) == (JobState.RUNNING, EAST, 2)
    finally:
        west.close()
