"""A leader frozen past its lease is replaced, and once woken writes nothing and follows: its
agent moves to the new leader and no attempt runs twice."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from broker.store import open_store
from computenet import Client
from computenet.types import Job, JobEvent, JobState, SiteStatus
from tests.e2e.test_partitions import journal_states, read_stamps, scrape, stamp, stamped_job
from tests.harness.replicas import Replica, ReplicaSet
from tests.support.processes import start_agent
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(180)]

SITE = "horinger"
A800 = [{"model": "a800", "count": 8}]
WHOLE_POOL = {"accelerator": "a800", "count": 8, "cpu": 1, "memory_gb": 1}


def gauge(replica: Replica, name: str) -> float | None:
    match = re.search(rf"^{name} (\S+)$", scrape(replica.metrics_address), re.MULTILINE)
    return float(match.group(1)) if match else None


def agent_epoch(state_dir: Path) -> int:
    path = state_dir / "leader_epoch"
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else 0


def all_events(db_url: str) -> list[JobEvent]:
    store = open_store(db_url)
    try:
        return store.events_after(0, limit=100_000)
    finally:
        store.close()


def final_jobs(client: Client, *job_ids: str) -> list[Job]:
    """The jobs once all are final (empty before)."""
    jobs = [client.get(job_id) for job_id in job_ids]
    return jobs if all(j.state.is_final for j in jobs) else []


def placed_after(log_text: str) -> list[str]:
    """Placement rounds in a replica's log that placed at least one job."""
    return [
        line
        for line in log_text.splitlines()
        if re.search(r"placement round .* placed=[1-9]", line)
    ]


def test_a_frozen_leader_is_fenced_out_and_wakes_as_a_follower(
    postgres_db_url: str, agents: dict[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """The leader freezes with a job running at its agent and another waiting for the cards.

    While it is frozen a new leader is elected and the running job ends at the agent, whose
    report waits in the frozen leader's socket. Woken, the old leader would place the waiting
    job on those cards if it still acted: it must write nothing, follow, and hand the agent on.
    """
    stamps = tmp_path / "stamps.txt"
    first_release, second_release = tmp_path / "release-1", tmp_path / "release-2"
    state_dir = tmp_path / f"agent-{SITE}" / "state"
    with ReplicaSet(postgres_db_url, tmp_path, count=2, metrics=True).start() as replicas:
        old, old_term = replicas.wait_for_leader()
        agents[SITE] = start_agent(tmp_path, SITE, ",".join(replicas.addresses), pools=A800)
        wait_for(lambda: agent_epoch(state_dir) == old_term.epoch, what="the agent at the leader")
        with Client(address=old.address, timeout_s=5) as client:
            running = client.submit(
                stamped_job("running", stamps, first_release, resources=WHOLE_POOL)
            ).job
            wait_for(lambda: client.get(running.job_id).state == JobState.RUNNING, what="running")
            # the pool is full: the leader keeps this one pending in its memory when frozen
            waiting = client.submit(
                stamped_job("waiting", stamps, second_release, resources=WHOLE_POOL)
            ).job
            wait_for(lambda: client.get(waiting.job_id).reason, what="a pending reason")
            assert client.get(waiting.job_id).state == JobState.PENDING

        replicas.freeze(old)
        frozen_log = len(old.log_text())
        new, new_term = replicas.wait_for_leader(newer_than=old_term.epoch)
        assert new is not old
        first_release.touch()
        wait_for(lambda: stamp(stamps, running.job_id, 1, "end"), what="the running job to end")
        before_resume = max(e.sequence for e in all_events(postgres_db_url))

        replicas.resume(old)
        wait_for(lambda: "leadership lost" in old.log_text(), what="the old leader to step down")
        wait_for(
            lambda: agent_epoch(state_dir) == new_term.epoch,
            what="the agent to follow the new leader",
        )
        with Client(address=new.address, timeout_s=5) as client:
            wait_for(
                lambda: client.get(waiting.job_id).state == JobState.RUNNING,
                what="the waiting job to start under the new leader",
            )
            wait_for(
                lambda: replicas.has_role(old.broker_id, "follower"),
                what="the old leader listed as a follower",
            )
            status = replicas.status()
            assert status is not None and status.leader is not None
            assert (status.leader.broker_id, status.leader.epoch) == (new.broker_id, new_term.epoch)
            assert gauge(old, "computenet_replica_is_leader") == 0
            assert gauge(old, "computenet_leader_epoch") == 0
            assert gauge(new, "computenet_replica_is_leader") == 1
            assert gauge(new, "computenet_leader_epoch") == new_term.epoch

            second_release.touch()
            done = wait_for(
                lambda: final_jobs(client, running.job_id, waiting.job_id),
                what="both jobs to finish",
            )
            assert client.site(SITE).status == SiteStatus.ACTIVE
        assert [(j.state, j.attempt, j.site) for j in done] == [(JobState.SUCCEEDED, 1, SITE)] * 2
        woken_log = old.log_text()[frozen_log:]
        assert not placed_after(woken_log), woken_log
        assert placed_after(new.log_text()), "the new leader never placed the waiting job"

    events = all_events(postgres_db_url)
    late = [e for e in events if e.sequence > before_resume]
    assert {(e.job_id, e.attempt) for e in late} <= {(running.job_id, 1), (waiting.job_id, 1)}
    per_state = Counter((e.job_id, e.attempt, e.state) for e in events)
    assert all(n == 1 for (_, _, state), n in per_state.items() if state != JobState.RUNNING), (
        per_state
    )
    starts = Counter((j, a) for j, a, _, kind, _ in read_stamps(stamps) if kind == "start")
    assert starts == Counter({(running.job_id, 1): 1, (waiting.job_id, 1): 1})
    assert set(journal_states(state_dir)) == {(running.job_id, 1), (waiting.job_id, 1)}


def test_an_agent_leaves_a_frozen_leader_for_the_new_one(
    postgres_db_url: str, agents: dict[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    state_dir = tmp_path / f"agent-{SITE}" / "state"
    with ReplicaSet(postgres_db_url, tmp_path, count=2).start() as replicas:
        old, old_term = replicas.wait_for_leader()
        agents[SITE] = start_agent(tmp_path, SITE, ",".join(replicas.addresses), pools=A800)
        wait_for(lambda: agent_epoch(state_dir) == old_term.epoch, what="the agent at the leader")
        replicas.freeze(old)
        _, new_term = replicas.wait_for_leader(newer_than=old_term.epoch)
        # heartbeats go out every 2 s and go unanswered; the agent's lease is 40 s
        wait_for(
            lambda: agent_epoch(state_dir) == new_term.epoch,
            timeout_s=15,
            what="the agent to leave the frozen leader for the new one",
        )
