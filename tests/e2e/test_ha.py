"""Three broker replicas on PostgreSQL lose their leader to SIGKILL three times under a steady
stream of submissions: no acknowledged job is lost or duplicated, none runs twice, and every
capacity hold of a finished job is released."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from broker.store import open_store
from computenet.client import Client, RetryPolicy
from computenet.errors import ComputeNetError
from computenet.types import Job, JobState, SiteStatus
from tests.e2e.test_partitions import journal_states, read_stamps
from tests.harness.replicas import ReplicaSet
from tests.support.processes import start_agent
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(240)]

SITES = ("horinger", "chongqing", "guian")
A800 = [{"model": "a800", "count": 8}]
KILLS = 3
SUBMIT_FOR_S = 60.0
SUBMIT_EVERY_S = 0.25
ACKS_BETWEEN_KILLS = 12
"""Each kill waits for this many new acknowledgements: submissions go on through failovers."""
SUBMIT_RETRY = RetryPolicy(max_attempts=8, initial_backoff_s=0.1, max_backoff_s=1.0)


def sleeping_job(name: str, stamps: Path, sleep_s: int) -> dict[str, Any]:
    """A job that sleeps `sleep_s` between a start and an end stamp (job, attempt, site, ns)."""
    tag = "$COMPUTENET_JOB_ID $COMPUTENET_ATTEMPT $COMPUTENET_SITE"
    script = (
        f'echo "{tag} start $(date +%s%N)" >> {stamps}; '
        f"trap 'echo \"{tag} end $(date +%s%N)\" >> {stamps}; exit 143' TERM; "
        f"sleep {sleep_s} & wait $!; "
        f'echo "{tag} end $(date +%s%N)" >> {stamps}'
    )
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": 1, "cpu": 1, "memory_gb": 1},
        "duration_hours": 0.01,
        "command": ["sh", "-c", script],
    }


class Submitter(threading.Thread):
    """Submits short jobs at a steady pace through every replica until told to stop; keeps
    only the submissions whose call returned (request id -> job id)."""

    def __init__(self, replicas: ReplicaSet, stamps: Path) -> None:
        super().__init__(daemon=True)
        self.replicas, self.stamps = replicas, stamps
        self.acked: dict[str, str] = {}
        self.failed: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.replicas.client(timeout_s=5, retry=SUBMIT_RETRY) as client:
            k = 0
            while not self.stop.is_set():
                request_id = f"ha-{k}"
                spec = sleeping_job(request_id, self.stamps, 1 + k % 3)
                try:
                    self.acked[request_id] = client.submit(spec, request_id=request_id).job.job_id
                except ComputeNetError as exc:
                    self.failed.append(f"{request_id}: {exc}")
                k += 1
                self.stop.wait(SUBMIT_EVERY_S)


def kill_leaders(replicas: ReplicaSet, submitter: Submitter) -> list[int]:
    """Kill the leader KILLS times, each after fresh submissions went through; restart each
    killed replica as a follower. Returns the epochs seen, first to last."""
    _, leader = replicas.wait_for_leader()
    epochs = [leader.epoch]
    for _ in range(KILLS):
        wait_for(
            partial(lambda n: len(submitter.acked) >= n + ACKS_BETWEEN_KILLS, len(submitter.acked)),
            what="submissions between kills",
        )
        victim = replicas.by_id(leader.broker_id)
        replicas.kill(victim)
        _, leader = replicas.wait_for_leader(newer_than=leader.epoch)
        epochs.append(leader.epoch)
        replicas.restart(victim)
        wait_for(
            partial(replicas.has_role, victim.broker_id, "follower"),
            what=f"{victim.broker_id} back as a follower",
        )
    return epochs


def all_final(client: Client) -> list[Job]:
    """Every job, once all are final (empty before)."""
    jobs = list(client.list(page_size=500))
    return jobs if all(j.state.is_final for j in jobs) else []


def check_no_attempt_ran_twice(stamps: Path, journal_keys: dict[str, set[tuple[str, int]]]) -> None:
    starts = Counter((j, a) for j, a, _, kind, _ in read_stamps(stamps) if kind == "start")
    twice = {key: n for key, n in starts.items() if n > 1}
    assert not twice, f"attempts started more than once: {twice}"
    intervals: dict[str, list[tuple[int, int, int, str]]] = defaultdict(list)
    opened: dict[tuple[str, int, str], int] = {}
    for job, attempt, site, kind, ns in read_stamps(stamps):
        if kind == "start":
            opened[(job, attempt, site)] = ns
        else:
            begin = opened.pop((job, attempt, site))
            intervals[job].append((begin, ns, attempt, site))
    assert not opened, f"attempts that never ended: {opened}"
    for job, spans in intervals.items():
        spans.sort()
        for before, after in itertools.pairwise(spans):
            assert before[1] <= after[0], f"{job}: attempts overlap: {before} and {after}"
    holders: dict[tuple[str, int], list[str]] = defaultdict(list)
    for site, keys in journal_keys.items():
        for key in keys:
            holders[key].append(site)
    shared = {key: sites for key, sites in holders.items() if len(sites) > 1}
    assert not shared, f"one attempt was handed to several agents: {shared}"
    for job, attempt, site, kind, _ in read_stamps(stamps):
        if kind == "start":
            assert (job, attempt) in journal_keys[site], f"{site} ran {job}/{attempt} unrecorded"


def test_three_leader_kills_lose_nothing_and_run_nothing_twice(
    postgres_db_url: str, agents: dict[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    stamps = tmp_path / "stamps.txt"
    with ReplicaSet(postgres_db_url, tmp_path).start() as replicas:
        brokers = ",".join(replicas.addresses)
        for site in SITES:
            agents[site] = start_agent(tmp_path, site, brokers, pools=A800)
        with replicas.client(timeout_s=5, retry=SUBMIT_RETRY) as client:
            wait_for(
                lambda: {s.site_id for s in client.sites(status=SiteStatus.ACTIVE)} >= set(SITES),
                what="every site active",
            )
            submitter = Submitter(replicas, stamps)
            began = time.monotonic()
            submitter.start()
            try:
                epochs = kill_leaders(replicas, submitter)
                wait_for(
                    lambda: time.monotonic() - began >= SUBMIT_FOR_S,
                    timeout_s=SUBMIT_FOR_S + 5,
                    what="the submission period to end",
                )
            finally:
                submitter.stop.set()
                submitter.join(timeout=60)
            assert not submitter.is_alive()
            assert len(set(epochs)) == KILLS + 1 and epochs == sorted(epochs), epochs
            acked = dict(submitter.acked)
            assert len(acked) >= 100, (len(acked), submitter.failed[:5])

            jobs = wait_for(
                lambda: all_final(client),
                timeout_s=60,
                interval_s=1.0,
                what="every job to finish",
            )
        per_request = Counter(j.request_id for j in jobs)
        assert all(n == 1 for n in per_request.values()), "a request id was stored twice"
        by_request = {j.request_id: j for j in jobs}
        assert set(acked) <= set(by_request), "acknowledged submissions were lost"
        assert all(by_request[r].job_id == job_id for r, job_id in acked.items())
        states = Counter(j.state for j in jobs)
        assert set(states) == {JobState.SUCCEEDED}, (states, replicas.logs())

        journal_keys = {
            site: set(journal_states(tmp_path / f"agent-{site}" / "state")) for site in SITES
        }
        check_no_attempt_ran_twice(stamps, journal_keys)

        store = open_store(postgres_db_url)
        try:
            holds = store.holds()
        finally:
            store.close()
        final = {j.job_id for j in jobs if j.state.is_final}
        assert not [h for h in holds if h.job_id in final], "holds of finished jobs remain"
