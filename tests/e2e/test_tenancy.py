"""Tenants against a real broker and real agents: borrowed cards reclaimed by preemption."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.security.principal import Role
from broker.security.tokens import add_token
from computenet.client import Client
from computenet.types import JobEvent, JobState, SiteStatus
from tests.support.pki import Pki, make_pki
from tests.support.processes import BrokerProcess, start_agent, start_broker
from tests.support.waiting import wait_for

SITES = ["yangtze-demo", "horinger", "chongqing"]
CARDS_PER_SITE = 4
GRACE_S = 30

# A job that counts steps, saves its counter every EVERY steps and when stopped (SIGTERM),
# resumes from the counter it is given, and writes "start STEP SITE ATTEMPT" when it starts.
# It holds at step HOLD until its release file exists, so it runs as long as the test needs.
COUNTER = """
import json, os, signal, sys, time
from pathlib import Path

every, hold, out, release = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
site, attempt = os.environ["COMPUTENET_SITE"], os.environ["COMPUTENET_ATTEMPT"]
save_to = Path(os.environ["COMPUTENET_CHECKPOINT_DIR"]) / "counter.json"
restore = Path(os.environ.get("COMPUTENET_RESTORE_DIR") or "/nonexistent") / "counter.json"
step = json.loads(restore.read_text())["step"] if restore.exists() else 0
with out.open("a") as f:
    f.write(f"start {step} {site} {attempt}\\n")
stopping = False

def stop(signum, frame):
    global stopping
    stopping = True

def save():
    save_to.with_suffix(".tmp").write_text(json.dumps({"step": step}))
    os.replace(save_to.with_suffix(".tmp"), save_to)

signal.signal(signal.SIGTERM, stop)
while not stopping and not (step >= hold and release.exists()):
    if step >= hold:
        time.sleep(0.05)
        continue
    time.sleep(0.1)
    step += 1
    with out.open("a") as f:
        f.write(f"step {step}\\n")
    if step % every == 0:
        save()
save()
sys.exit(143 if stopping else 0)
"""
EVERY, HOLD = 2, 6


def counting(name: str, script: Path, folder: Path, release: Path) -> dict[str, Any]:
    """A one-card checkpointing training job counting to HOLD, then waiting for `release`."""
    argv = [sys.executable, str(script), str(EVERY), str(HOLD), str(folder / name), str(release)]
    return {
        "name": name,
        "kind": "training",
        "resources": {"accelerator": "a800", "count": 1, "cpu": 0.1, "memory_gb": 0.1},
        "duration_hours": 10.0,
        "checkpoint": {"interval_hours": 1.0, "size_gb": 0.1},
        "command": argv,
    }


def starts(out: Path) -> list[tuple[int, int]]:
    """(step it started from, attempt) for each start of the job writing `out`."""
    if not out.exists():
        return []
    rows = [line.split() for line in out.read_text().splitlines() if line.startswith("start ")]
    return [(int(r[1]), int(r[3])) for r in rows]


def steps(out: Path) -> int:
    """The last step the job counted."""
    if not out.exists():
        return 0
    done = [line for line in out.read_text().splitlines() if line.startswith("step ")]
    return int(done[-1].split()[1]) if done else 0


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[tuple[BrokerProcess, Pki]]:
    """A TLS broker with three tenants of equal weight and three agents of 4 a800 each, all
    mounting one checkpoint store; everything started is stopped at the end."""
    pki = make_pki(tmp_path / "pki")
    pki.tokens["carol"] = add_token(pki.tokens_path, "carol", tenant="tenant-c", role=Role.USER)
    config = tmp_path / "broker.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "tenancy": {"preemption": {"grace_s": GRACE_S, "budget_per_round": 8}},
                "tenants": {
                    "tenant-a": {"weight": 1, "quota": {"a800": 4}, "borrowing_limit": {"a800": 8}},
                    "tenant-b": {"weight": 1, "quota": {"a800": 4}, "borrowing_limit": {"a800": 0}},
                    "tenant-c": {"weight": 1, "quota": {"a800": 4}, "borrowing_limit": {"a800": 0}},
                },
                "rebalance": {"every_s": 0},
            }
        )
    )
    broker = start_broker(tmp_path, "--config", str(config), pki=pki)
    store = tmp_path / "checkpoint-store"
    store.mkdir()
    agents = [
        start_agent(
            tmp_path,
            site,
            broker.agent_address,
            pools=[{"model": "a800", "count": CARDS_PER_SITE}],
            pki=pki,
            checkpoints={"store": str(store)},
        )
        for site in SITES
    ]
    try:
        yield broker, pki
    finally:
        for proc in agents:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*agents, broker.proc]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
        for pid in leftovers.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def running(client: Client, ids: list[str]) -> list[str]:
    return [i for i in ids if client.get(i).state == JobState.RUNNING]


def events_of(client: Client, job_id: str) -> list[JobEvent]:
    """Every event of a job that has ended."""
    return list(client.watch(job_id))


@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_a_tenant_below_its_quota_reclaims_borrowed_cards_and_the_preempted_jobs_resume(
    federation: tuple[BrokerProcess, Pki], tmp_path: Path
) -> None:
    broker, pki = federation
    script, out = tmp_path / "counter.py", tmp_path / "out"
    script.write_text(COUNTER)
    out.mkdir()
    hold_a, hold_bc = tmp_path / "release-a", tmp_path / "release-bc"
    ops, alice = pki.client(broker.address), pki.client(broker.address, "alice")
    bob, carol = pki.client(broker.address, "bob"), pki.client(broker.address, "carol")
    with ops, alice, bob, carol:
        wait_for(
            lambda: all(ops.site(s).status == SiteStatus.ACTIVE for s in SITES),
            timeout_s=60,
            what="three active sites",
        )

        def submit(client: Client, name: str, release: Path) -> str:
            return client.submit(counting(name, script, out, release), request_id=name).job.job_id

        # Tenant A: four jobs within its quota first, then eight borrowed: the whole federation.
        nominal = [submit(alice, f"a-nominal-{i}", hold_a) for i in range(4)]
        wait_for(lambda: len(running(ops, nominal)) == 4, timeout_s=60, what="A's nominal jobs")
        borrowed = [submit(alice, f"a-borrowed-{i}", hold_a) for i in range(8)]
        a_jobs = nominal + borrowed
        wait_for(
            lambda: (
                len(running(ops, a_jobs)) == 12
                and all(steps(out / ops.get(i).spec.name) >= EVERY for i in a_jobs)
            ),
            timeout_s=120,
            what="A on all twelve cards, each past its first checkpoint",
        )

        # B and C, below their quotas, submit: B four cards, C two.
        b_jobs = [submit(bob, f"b-{i}", hold_bc) for i in range(4)]
        c_jobs = [submit(carol, f"c-{i}", hold_bc) for i in range(2)]
        wait_for(
            lambda: len(running(ops, b_jobs + c_jobs)) == 6,
            timeout_s=GRACE_S + 60,
            what="B at its nominal quota and C's two jobs running",
        )
        pending_a = [i for i in borrowed if ops.get(i).state == JobState.PENDING]
        assert len(pending_a) == 6, "exactly the shortfall was preempted"
        assert len(running(ops, nominal)) == 4
        assert all(ops.get(i).attempt == 1 for i in nominal)
        queued = ops.get(pending_a[0])
        assert queued.reason, "a requeued job says why it waits"

        # B and C finish: A's preempted jobs come back and resume from their checkpoints.
        hold_bc.touch()
        wait_for(
            lambda: len(running(ops, a_jobs)) == 12,
            timeout_s=120,
            what="A's preempted jobs running again",
        )
        for job_id in pending_a:
            name = ops.get(job_id).spec.name
            wait_for(lambda n=name: len(starts(out / n)) == 2, timeout_s=30, what=f"{name} again")
            (first, attempt_1), (resumed, attempt_2) = starts(out / name)
            assert (first, attempt_1, attempt_2) == (0, 1, 2)
            assert resumed >= EVERY, f"{name} started afresh instead of from its checkpoint"

        for job_id in a_jobs:
            ops.cancel(job_id, "test over")
        a_events = {i: events_of(ops, i) for i in a_jobs}
        bc_states = {ops.get(i).state for i in b_jobs + c_jobs}

    assert bc_states == {JobState.SUCCEEDED}
    for job_id in nominal:
        causes = [e.cause for e in a_events[job_id]]
        assert "preempted" not in causes, f"a job within A's quota was preempted: {causes}"
        assert {e.attempt for e in a_events[job_id] if e.attempt} == {1}  # 0: submitted
    for job_id in pending_a:
        [preempted] = [e for e in a_events[job_id] if e.cause == "preempted"]
        assert preempted.message.startswith("preempted: tenant-")
        assert "below nominal quota a800 4 waits" in preempted.message
        assert "tenant-a borrowing" in preempted.message
        after = a_events[job_id][a_events[job_id].index(preempted) + 1]
        assert after.state == JobState.PENDING, "requeued, not failed"
    for job_id in set(borrowed) - set(pending_a):
        trail = [(e.state.value, e.cause, e.attempt, e.message) for e in a_events[job_id]]
        assert "preempted" not in [e.cause for e in a_events[job_id]], trail
