"""Rebalancing against real brokers and agents: migrations, draining, replicas and crashes."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from computenet.client import Client
from computenet.rebalance_types import MoveKind, RebalanceRunInfo
from computenet.types import JobState, SiteStatus
from tests.e2e.conftest import BrokerFactory
from tests.e2e.test_federation import starts
from tests.support.processes import BrokerProcess, start_agent
from tests.support.waiting import wait_for

A800 = [{"model": "a800", "count": 8}]
EAST, WEST, EAST2 = "yangtze-demo", "horinger", "chongqing"
CLI = Path(sys.executable).parent / "computenet"


def training(name: str, marker: Path, *, cards: int = 8, hours: float = 300.0) -> dict[str, Any]:
    """A long checkpointable training job that records each start, then sleeps."""
    script = (
        f'echo "$COMPUTENET_JOB_ID $COMPUTENET_ATTEMPT $COMPUTENET_SITE" >> {marker}; sleep 300'
    )
    return {
        "name": name,
        "kind": "training",
        "resources": {"accelerator": "a800", "count": cards, "cpu": 1, "memory_gb": 1},
        "duration_hours": hours,
        "checkpoint": {"interval_hours": 1.0, "size_gb": 1.0},
        "command": ["sh", "-c", script],
    }


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Agents by site; at the end they stop, and so do the job processes this test started."""
    running: dict[str, subprocess.Popen[str]] = {}
    yield running
    for proc in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # a stopping agent stops its attempts
    for proc in running.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    for pid in leftovers.stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def cli(broker: BrokerProcess, *args: str) -> Any:
    """Run `computenet ARGS --json` against the broker as the operator; the parsed output."""
    assert broker.pki is not None
    env = {
        **os.environ,
        "COMPUTENET_CA": str(broker.pki.ca),
        "COMPUTENET_TOKEN": broker.pki.tokens["operator"],
    }
    out = subprocess.run(
        [str(CLI), *args, "--broker", broker.address, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def state_of(client: Client, job_id: str) -> tuple[JobState, str | None]:
    job = client.get(job_id)
    return job.state, job.site


def site_active(client: Client, site: str) -> bool:
    return client.site(site).status == SiteStatus.ACTIVE


# A job that counts steps: it saves its counter every EVERY steps and when stopped (SIGTERM),
# resumes from the counter it is given, and appends "STEP SITE ATTEMPT" per step to a file.
# It holds at step HOLD until the test releases it, so the move lands mid-run, whatever the
# machine's load; HOLD is off the EVERY grid, so the last periodic save is behind the stop.
COUNTER = """
import json, os, signal, sys, time
from pathlib import Path

target, every, hold = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out, release = Path(sys.argv[4]), Path(sys.argv[5])
site, attempt = os.environ["COMPUTENET_SITE"], os.environ["COMPUTENET_ATTEMPT"]
save_to = Path(os.environ["COMPUTENET_CHECKPOINT_DIR"]) / "counter.json"
restore = Path(os.environ.get("COMPUTENET_RESTORE_DIR") or "/nonexistent") / "counter.json"
step = json.loads(restore.read_text())["step"] if restore.exists() else 0
stopping = False

def stop(signum, frame):
    global stopping
    stopping = True

def save():
    save_to.with_suffix(".tmp").write_text(json.dumps({"step": step}))
    os.replace(save_to.with_suffix(".tmp"), save_to)

signal.signal(signal.SIGTERM, stop)
while step < target and not stopping:
    if step >= hold and not release.exists():
        time.sleep(0.05)
        continue
    time.sleep(0.2)
    step += 1
    with out.open("a") as f:
        f.write(f"{step} {site} {attempt}\\n")
    if step % every == 0:
        save()
save()
sys.exit(143 if stopping else 0)
"""
TARGET, EVERY, HOLD = 60, 5, 32


def counting(name: str, script: Path, out: Path, release: Path, cards: int) -> dict[str, Any]:
    """A long checkpointing training job (as the planner sees it) that counts TARGET steps."""
    argv = [sys.executable, str(script), str(TARGET), str(EVERY), str(HOLD), str(out), str(release)]
    return {
        "name": name,
        "kind": "training",
        "resources": {"accelerator": "a800", "count": cards, "cpu": 1, "memory_gb": 0.1},
        "duration_hours": 300.0,
        "checkpoint": {"interval_hours": 1.0, "size_gb": 1.0},
        "command": argv,
    }


def steps(out: Path) -> list[tuple[int, str, int]]:
    """(step, site, attempt) per line the job wrote."""
    rows = [line.split() for line in out.read_text().splitlines() if line.strip()]
    return [(int(r[0]), r[1], int(r[2])) for r in rows]


@pytest.mark.e2e
@pytest.mark.parametrize(
    "executor",
    ["local", pytest.param("slurm", marks=[pytest.mark.slurm, pytest.mark.timeout(300)])],
)
def test_a_counting_job_moved_west_by_a_rebalancing_apply_resumes_from_its_checkpoint(
    broker_factory: BrokerFactory,
    agents: dict[str, subprocess.Popen[str]],
    tmp_path: Path,
    executor: str,
    request: pytest.FixtureRequest,
) -> None:
    # the Slurm sites submit to the one test cluster, whose node runs on this machine: the
    # agents' state folders, the checkpoint store and the job's output file are shared as is
    env = request.getfixturevalue("slurm_cluster").env if executor == "slurm" else None
    cards = 2 if executor == "slurm" else 8  # the Slurm node has 4 cards
    pools = [{"model": "a800", "count": 2 * cards}]
    store = tmp_path / "checkpoint-store"  # the store both sites mount
    store.mkdir()
    script, out, release = tmp_path / "counter.py", tmp_path / "steps.txt", tmp_path / "release"
    script.write_text(COUNTER)
    broker = broker_factory("--rebalance-every", "0", "--broker-id", "b1")

    def agent(site: str) -> subprocess.Popen[str]:
        return start_agent(
            tmp_path,
            site,
            broker.agent_address,
            pools=pools,
            executor=executor,
            env=env,
            pki=broker.pki,
            checkpoints={"store": str(store)},
        )

    agents[EAST] = agent(EAST)
    with broker.client() as client:
        wait_for(lambda: site_active(client, EAST), timeout_s=30, what="the eastern site")
        spec = counting("llm", script, out, release, cards)
        job_id = client.submit(spec, request_id="llm").job.job_id
        wait_for(
            lambda: out.exists() and any(step >= HOLD for step, _, _ in steps(out)),
            timeout_s=120,
            what="the job to count up to its hold, east",
        )
        agents[WEST] = agent(WEST)
        wait_for(lambda: site_active(client, WEST), timeout_s=30, what="the western site")

        plan = cli(broker, "rebalance", "plan")
        assert plan["dry_run"] and plan["moves_planned"] == 1
        move = plan["moves"][0]
        assert (move["job_id"], move["kind"], move["from_site"]) == (job_id, "migrate", EAST)
        assert move["to_site"] == WEST and not move["applied"]
        assert move["savings_cny"] > move["cost_cny"] > 0
        assert state_of(client, job_id) == (JobState.RUNNING, EAST)  # a plan changes nothing

        run = cli(broker, "rebalance", "apply")
        assert not run["dry_run"] and run["moves_applied"] == 1, run
        assert run["realised_savings_cny"] == pytest.approx(move["net_cny"], rel=0.05)
        wait_for(
            lambda: client.get(job_id).attempt == 2, timeout_s=60, what="the stop east, attempt 2"
        )
        release.touch()
        done = wait_for(
            lambda: (j := client.get(job_id)).state.is_final and j,
            timeout_s=120,
            what="the job to finish",
        )
        events = list(client.watch(job_id))
    assert (done.state, done.site, done.attempt) == (JobState.SUCCEEDED, WEST, 2)

    counted = steps(out)
    east = [step for step, site, attempt in counted if (site, attempt) == (EAST, 1)]
    west = [step for step, site, attempt in counted if (site, attempt) == (WEST, 2)]
    assert len(east) + len(west) == len(counted), "attempt 1 east, attempt 2 west, nothing else"
    assert east == list(range(1, len(east) + 1)) and west, counted
    assert west == list(range(west[0], TARGET + 1)), "it reached its target count"
    # the west attempt resumed from the counter the east one saved: it redid at most one
    # checkpoint interval (none when the stop's own save came through)
    restored = json.loads(
        (
            tmp_path / f"agent-{WEST}" / "state" / "restore" / job_id / "2" / "counter.json"
        ).read_text()
    )
    assert restored == {"step": west[0] - 1}
    assert east[-1] - EVERY <= west[0] - 1 <= east[-1]

    trail = [(e.state, e.site, e.attempt) for e in events]
    migrating = trail.index((JobState.MIGRATING, EAST, 1))
    moved = events[migrating + 1]
    assert (moved.state, moved.site, moved.attempt) == (JobState.PLACED, WEST, 2)
    assert f"checkpoint {job_id}/1" in moved.message, moved
    assert "migration_fell_back" not in [e.cause for e in events]
    assert trail[-1] == (JobState.SUCCEEDED, WEST, 2)
    history = cli(broker, "rebalance", "history")
    assert [r["dry_run"] for r in history] == [False, True]
    assert history[0]["moves"][0]["applied"]


@pytest.mark.e2e
def test_draining_a_site_evacuates_its_jobs_and_takes_nothing_new(
    broker_factory: BrokerFactory, agents: dict[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    broker = broker_factory("--rebalance-every", "0")
    pki = broker.pki
    pools = [{"model": "a800", "count": 24}]
    agents[WEST] = start_agent(tmp_path, WEST, broker.agent_address, pools=pools, pki=pki)
    marker = tmp_path / "starts.txt"
    with broker.client() as client:
        wait_for(lambda: site_active(client, WEST), timeout_s=30, what="the western site")
        jobs = [
            client.submit(training(f"t{k}", marker), request_id=f"t{k}").job.job_id
            for k in range(2)
        ]
        wait_for(
            lambda: all(state_of(client, j) == (JobState.RUNNING, WEST) for j in jobs),
            timeout_s=30,
            what="run",
        )
        agents[EAST] = start_agent(tmp_path, EAST, broker.agent_address, pools=pools, pki=pki)
        wait_for(lambda: site_active(client, EAST), timeout_s=30, what="the eastern site")

        assert client.drain(WEST).status == SiteStatus.DRAINING
        run = client.apply_rebalance()
        assert sorted(m.job_id for m in run.moves if m.applied) == sorted(jobs), run
        assert {(m.kind, m.from_site, m.to_site) for m in run.moves} == {
            (MoveKind.EVACUATE, WEST, EAST)
        }
        wait_for(
            lambda: all(state_of(client, j) == (JobState.RUNNING, EAST) for j in jobs),
            timeout_s=40,
            what="moved",
        )
        fresh = client.submit(training("new", marker), request_id="new").job.job_id
        wait_for(
            lambda: state_of(client, fresh)[0] == JobState.RUNNING, timeout_s=30, what="the new job"
        )
        assert state_of(client, fresh)[1] == EAST
        assert client.plan_rebalance().moves == ()  # balanced now: nothing more to move
    assert sorted((a, s) for j, a, s in starts(marker) if j in jobs) == [
        (1, WEST),
        (1, WEST),
        (2, EAST),
        (2, EAST),
    ]


def all_runs(client: Client) -> list[RebalanceRunInfo]:
    """Every recorded rebalancing run, newest first, read a page at a time."""
    page = client.rebalance_runs(page_size=7)
    runs = list(page.runs)
    while page.next_page_token:
        page = client.rebalance_runs(page_size=7, page_token=page.next_page_token)
        runs += page.runs
    return runs


@pytest.mark.e2e
def test_two_replicas_on_postgres_run_each_scheduled_fire_once(
    broker_factory: BrokerFactory, postgres_db_url: str
) -> None:
    first = broker_factory("--rebalance-every", "2", "--broker-id", "a", db_url=postgres_db_url)
    second = broker_factory("--rebalance-every", "2", "--broker-id", "b", db_url=postgres_db_url)
    with first.client() as client:
        wait_for(
            lambda: len(all_runs(client)) >= 9, timeout_s=120, interval_s=0.5, what="nine runs"
        )
        runs = all_runs(client)
    with second.client() as client:
        # The same records through the other replica, which may already hold a newer run.
        seen_by_second = all_runs(client)
    assert [r.run_id for r in seen_by_second][len(seen_by_second) - len(runs) :] == [
        r.run_id for r in runs
    ]
    scheduled = [r for r in runs if r.trigger.startswith("interval@")]
    fires = sorted(r.trigger for r in scheduled)
    assert len(fires) == len(set(fires)) == len(runs)  # one run per fire, no duplicates
    times = [
        datetime.fromisoformat(f.removeprefix("interval@").replace("Z", "+00:00")) for f in fires
    ]
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
    assert gaps == {2.0}, f"every fire between the first and the last ran once: {gaps}"
    assert len({r.run_id for r in runs}) == len(runs)
    assert all(not r.dry_run and not r.errors for r in runs)


def await_fresh_reports(client: Client, sites: tuple[str, ...], rounds: int = 2) -> None:
    """Wait until every site has reported `rounds` more times.

    Reports still in flight come before the next one on each agent's stream, so after one
    round they have been applied; after the second, whatever they set off has been reported.
    """
    for _ in range(rounds):
        mark = {site: client.site(site).last_report_unix_ms for site in sites}
        wait_for(functools.partial(_reported_since, client, mark), what="a report from every site")


def _reported_since(client: Client, mark: dict[str, int]) -> bool:
    return all(client.site(site).last_report_unix_ms > ms for site, ms in mark.items())


def _running_processes(marker: Path) -> int:
    """Job attempts alive at any agent: their shells (the only processes run as `sh -c`)."""
    pattern = f"^sh -c .*{marker}"
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return len(out.stdout.split())


@pytest.mark.e2e
def test_a_broker_killed_mid_apply_leaves_every_job_running_once_or_pending(
    broker_factory: BrokerFactory, agents: dict[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    broker = broker_factory("--rebalance-every", "0", "--broker-id", "b1")
    pki = broker.pki
    pools = [{"model": "a800", "count": 32}]
    agents[EAST] = start_agent(tmp_path, EAST, broker.agent_address, pools=pools, pki=pki)
    marker = tmp_path / "starts.txt"
    with broker.client() as client:
        wait_for(lambda: site_active(client, EAST), timeout_s=30, what="the eastern site")
        jobs = [
            client.submit(training(f"t{k}", marker), request_id=f"t{k}").job.job_id
            for k in range(4)
        ]
        wait_for(
            lambda: all(state_of(client, j)[0] == JobState.RUNNING for j in jobs),
            timeout_s=30,
            what="running",
        )
        agents[WEST] = start_agent(tmp_path, WEST, broker.agent_address, pools=pools, pki=pki)
        wait_for(lambda: site_active(client, WEST), timeout_s=30, what="the western site")
    applying = subprocess.Popen(
        [str(CLI), "rebalance", "apply", "--broker", broker.address, "--json"],
        env={
            **os.environ,
            "COMPUTENET_CA": str(pki.ca),
            "COMPUTENET_TOKEN": pki.tokens["operator"],
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with broker.client() as client:
        wait_for(
            lambda: any(state_of(client, j)[0] != JobState.RUNNING for j in jobs),
            timeout_s=20,
            what="a move",
        )
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(timeout=10)
    applying.wait(timeout=30)
    restarted = broker_factory(
        "--rebalance-every",
        "0",
        "--broker-id",
        "b1",
        listen=broker.address,
        agent_listen=broker.agent_address,
    )
    with restarted.client() as client:

        def settled() -> bool:
            # Capacity is ample, so a job requeued by the crash is placed again at once.
            states = [state_of(client, j)[0] for j in jobs]
            return states == [JobState.RUNNING] * 4 and _running_processes(marker) == 4

        wait_for(settled, timeout_s=45, what="every job running exactly once")
        await_fresh_reports(client, (EAST, WEST))  # and still so once late reports are in
        assert settled(), [(state_of(client, j), _running_processes(marker)) for j in jobs]
        for job_id in jobs:
            job = client.get(job_id)
            assert [s for j, a, s in starts(marker) if j == job_id and a == job.attempt] == [
                job.site
            ]
