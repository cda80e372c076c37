"""Partitions and failing probes with a real broker and real agents: the lease stops an old
attempt before its job starts elsewhere, and a failing capacity probe never makes a site lost."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from computenet.client import Client
from computenet.types import JobState, SiteStatus
from site_agent.journal import Journal
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import start_agent, wait_for_line
from tests.support.scripted_agent import ScriptedAgent
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

A800 = [{"model": "a800", "count": 8}]

# Short windows with the shape of the defaults (lease 40, skew 5, lost 60, suspect 15 s).
LIVENESS = """\
liveness:
  suspect_after_s: 1.5
  heartbeat_interval_s: 0.25
  lease_s: 3.5
  clock_skew_margin_s: 1
  lost_after_s: 5
  stale_capacity_after_s: 1
"""

FAKE_SCONTROL = """\
#!/bin/sh
# scontrol stand-in: logs each probe; fails while the flag file exists, as a downed slurmctld.
# Two nodes of 4 cards: room for both 2-card jobs of the test.
echo probe >> "{log}"
if [ -e "{flag}" ]; then
  echo "slurm_load_node error: Unable to contact slurm controller (connect failure)" >&2
  exit 1
fi
for n in n1 n2; do
  echo "NodeName=$n CPUAlloc=0 CPUTot=32 RealMemory=256000 AllocMem=0 Gres=gpu:a800:4 \
GresUsed=gpu:a800:0(IDX:N/A) State=IDLE Partitions=all"
  echo
done
"""


def stamped_job(name: str, stamps: Path, release: Path, **extra: Any) -> dict[str, Any]:
    """A job that writes start and end stamps (site, attempt, ns) and runs until `release`."""
    tag = "$COMPUTENET_JOB_ID $COMPUTENET_ATTEMPT $COMPUTENET_SITE"
    script = (
        f'echo "{tag} start $(date +%s%N)" >> {stamps}; '
        f"trap 'echo \"{tag} end $(date +%s%N)\" >> {stamps}; exit 143' TERM; "
        f"while [ ! -e {release} ]; do sleep 0.05; done; "
        f'echo "{tag} end $(date +%s%N)" >> {stamps}'
    )
    return {
        "name": name,
        "kind": "batch",
        "resources": {"accelerator": "a800", "count": 2, "cpu": 1, "memory_gb": 1},
        "duration_hours": 1.0,
        "command": ["sh", "-c", script],
        **extra,
    }


def read_stamps(stamps: Path) -> list[tuple[str, int, str, str, int]]:
    """(job, attempt, site, start|end, ns) lines, in the order written."""
    if not stamps.exists():
        return []
    rows = [line.split() for line in stamps.read_text().splitlines() if line.strip()]
    return [(r[0], int(r[1]), r[2], r[3], int(r[4])) for r in rows if len(r) == 5]


def stamp(stamps: Path, job: str, attempt: int, kind: str) -> int | None:
    found = [ns for j, a, _, k, ns in read_stamps(stamps) if (j, a, k) == (job, attempt, kind)]
    return found[0] if found else None


def journal_states(state_dir: Path) -> dict[tuple[str, int], tuple[JobState | None, str]]:
    """What an agent's own journal says of its attempts: (state, stop reason)."""
    journal = Journal(state_dir)
    try:
        return {r.key: (r.reported, r.stop_reason) for r in journal.load().attempts}
    finally:
        journal.close()


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def start_broker(broker_factory: BrokerFactory, tmp_path: Path, *extra: str) -> Any:
    config = tmp_path / "broker.yaml"
    config.write_text(LIVENESS)
    return broker_factory("--config", str(config), *extra)


def test_a_stalled_agent_stops_its_attempt_before_the_job_starts_elsewhere(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    """SIGSTOP the agent running a job past the lost window, then SIGCONT it.

    The job's wrapper (not stalled) ends the attempt at the lease; the broker requeues only
    after lost_after_s >= lease_s + skew, so attempt 1 ended before attempt 2 started; the
    woken agent stops what expired and starts nothing.
    """
    broker = start_broker(broker_factory, tmp_path)
    address, pki = broker.agent_address, broker.pki
    stamps, release = tmp_path / "stamps.txt", tmp_path / "release"
    agents["horinger"] = start_agent(tmp_path, "horinger", address, pools=A800, pki=pki)
    with broker.client() as client:
        wait_for(lambda: client.site("horinger").status == SiteStatus.ACTIVE, what="horinger")
        spec = stamped_job("stall", stamps, release)
        job = client.submit(spec, request_id="stall").job
        wait_for(lambda: stamp(stamps, job.job_id, 1, "start"), what="attempt 1 to start")
        assert client.get(job.job_id).site == "horinger"
        agents["chongqing"] = start_agent(tmp_path, "chongqing", address, pools=A800, pki=pki)
        wait_for(lambda: client.site("chongqing").status == SiteStatus.ACTIVE, what="chongqing")

        agents["horinger"].send_signal(signal.SIGSTOP)
        wait_for(lambda: client.site("horinger").status == SiteStatus.LOST, what="lost")
        started = wait_for(
            lambda: stamp(stamps, job.job_id, 2, "start"), what="attempt 2 to start elsewhere"
        )
        ended = stamp(stamps, job.job_id, 1, "end")
        assert ended is not None, "attempt 1 was still running when attempt 2 started"
        assert ended < started, (ended, started)
        assert client.get(job.job_id).site == "chongqing"

        agents["horinger"].send_signal(signal.SIGCONT)
        wait_for(lambda: client.site("horinger").status == SiteStatus.ACTIVE, what="rejoin")
        state_dir = tmp_path / "agent-horinger" / "state"
        states = wait_for(
            lambda: (
                (s := journal_states(state_dir)).get((job.job_id, 1), (None,))[0]
                == JobState.CANCELLED
                and s
            ),
            what="the woken agent to record attempt 1 stopped",
        )
        assert states[(job.job_id, 1)] == (JobState.CANCELLED, "lease expired")
        assert list(states) == [(job.job_id, 1)], "the woken agent started something"
        release.touch()
        done = wait_for(lambda: (j := client.get(job.job_id)).state.is_final and j, what="done")
    assert (done.state, done.attempt, done.site) == (JobState.SUCCEEDED, 2, "chongqing")
    starts = [(a, site) for j, a, site, k, _ in read_stamps(stamps) if k == "start"]
    assert starts == [(1, "horinger"), (2, "chongqing")]


def test_a_failing_capacity_probe_leaves_the_site_active_and_its_jobs_in_place(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    """A site whose `scontrol` fails for "five minutes" stays active with stale capacity.

    Scaled times: the broker's lost window is 5 s here against 60 s by default, so five minutes
    (five lost windows) is 25 s: the probe fails for 100 heartbeats of 0.25 s. Stale capacity
    withholds new work after 1 s (60 s by default).
    """
    broker = start_broker(broker_factory, tmp_path)
    fakebin, flag, probes = tmp_path / "bin", tmp_path / "slurm-down", tmp_path / "probes.log"
    fakebin.mkdir()
    scontrol = fakebin / "scontrol"
    scontrol.write_text(FAKE_SCONTROL.format(log=probes, flag=flag))
    scontrol.chmod(0o755)
    env = {**os.environ, "PATH": f"{fakebin}:{os.environ['PATH']}"}
    agents["horinger"] = start_agent(
        tmp_path,
        "horinger",
        broker.agent_address,
        pki=broker.pki,
        capacity={"source": "slurm"},
        env=env,
    )
    stamps, release = tmp_path / "stamps.txt", tmp_path / "release"
    seen: set[SiteStatus] = set()

    def probe_count() -> int:
        return len(probes.read_text().splitlines()) if probes.exists() else 0

    def failed_probes(client: Client, at_least: int) -> bool:
        seen.add(client.site("horinger").status)
        return probe_count() >= at_least

    with broker.client() as client:
        site = wait_for(
            lambda: (s := client.site("horinger")).status == SiteStatus.ACTIVE and s.pools and s,
            what="horinger active with capacity",
        )
        assert [(p.model, p.total) for p in site.pools] == [("a800", 8)]
        job = client.submit(stamped_job("steady", stamps, release), request_id="steady").job
        wait_for(lambda: client.get(job.job_id).state == JobState.RUNNING, what="running")

        flag.touch()  # slurmctld goes down
        stale = wait_for(
            lambda: (s := client.site("horinger")).capacity_stale and s, what="stale capacity"
        )
        assert "Unable to contact slurm controller" in stale.capacity_error
        assert [(p.model, p.total) for p in stale.pools] == [("a800", 8)]  # the last good one
        first = probe_count()
        # past stale_capacity_after_s, new work waits for fresh capacity
        wait_for(lambda: failed_probes(client, first + 8), what="stale past its window")
        waiting = client.submit(stamped_job("later", stamps, release), request_id="later").job
        wait_for(lambda: failed_probes(client, first + 100), timeout_s=180, what="five minutes")

        after = client.site("horinger")
        assert seen == {SiteStatus.ACTIVE} and after.status == SiteStatus.ACTIVE
        assert after.capacity_stale
        steady = client.get(job.job_id)
        assert (steady.state, steady.attempt) == (JobState.RUNNING, 1)
        assert client.get(waiting.job_id).state == JobState.PENDING

        flag.unlink()  # slurmctld is back
        wait_for(lambda: not client.site("horinger").capacity_stale, what="fresh capacity")
        wait_for(lambda: client.get(waiting.job_id).state == JobState.RUNNING, what="placed")
        release.touch()
        wait_for(
            lambda: all(client.get(j).state.is_final for j in (job.job_id, waiting.job_id)),
            what="both done",
        )
        assert client.get(job.job_id).state == JobState.SUCCEEDED
        causes = [e.cause for e in client.watch(job.job_id)]  # ends at the final state
        assert "site_lost" not in causes and causes.count("site_reported") >= 2, causes
    starts = [(j, a) for j, a, _, k, _ in read_stamps(stamps) if k == "start"]
    assert sorted(starts) == sorted([(job.job_id, 1), (waiting.job_id, 1)])


def test_the_broker_answers_each_heartbeat_with_a_renewal_and_keeps_stale_capacity(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = start_broker(broker_factory, tmp_path, "--metrics-listen", "127.0.0.1:0")
    metrics = wait_for_line(broker.proc, re.compile(r"metrics on (\S+)")).group(1)
    assert broker.pki is not None
    agent = ScriptedAgent(
        broker.agent_address,
        "horinger",
        credentials=broker.pki.site_credentials("horinger"),
        hello_sequence=7,
    )
    welcome = agent.next("welcome").welcome
    assert (welcome.heartbeat_sequence, welcome.lease_s) == (7, 3.5)
    agent.heartbeat(8, "a800", 8)
    assert agent.next("lease").lease.heartbeat_sequence == 8
    with broker.client() as client:
        fresh = wait_for(lambda: (s := client.site("horinger")).pools and s, what="capacity")
        failing = "capacity probe failed: scontrol: connection refused"
        sequences = itertools.count(9)
        done = threading.Event()

        def failing_beats() -> None:
            # as a live agent, every heartbeat interval, however long the checks below take
            while True:
                agent.heartbeat(next(sequences), error=failing)
                if done.wait(0.25):
                    return

        beater = threading.Thread(target=failing_beats, daemon=True)
        beater.start()
        renewal = agent.next("lease").lease
        assert (renewal.heartbeat_sequence, renewal.lease_s) == (9, 3.5)
        stale = wait_for(lambda: (s := client.site("horinger")).capacity_stale and s, what="stale")
        assert stale.status == SiteStatus.ACTIVE
        assert stale.capacity_error == failing
        assert (stale.pools, stale.capacity_unix_ms) == (fresh.pools, fresh.capacity_unix_ms)
        wait_for(
            lambda: "computenet_sites_capacity_stale 1.0" in scrape(metrics),
            what="the stale-capacity gauge",
        )
        done.set()
        beater.join()
        last = next(sequences)
        agent.heartbeat(last, "a800", 4)
        while agent.next("lease").lease.heartbeat_sequence != last:
            pass  # renewals of the failing heartbeats still on their way
        back = wait_for(lambda: not (s := client.site("horinger")).capacity_stale and s, what="ok")
        assert [p.total for p in back.pools] == [4] and back.capacity_error == ""
    agent.close()
