"""`computenet demo` for real: jobs finish, numbers match the broker's records, nothing is left."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from computenet import Client, Job, JobEvent, JobState
from computenet.tls import tls_channel_credentials
from tests.support.waiting import wait_for
from topology import Topology, default_topology
from topology.energy import run_energy

MARK = "COMPUTENET_DEMO_TEST_MARK"
CLI = "from computenet.cli.main import main; main()"
# 40 jobs of 20 trace days submitted in 20 s.
FAST = ["--jobs", "40", "--compression", "86400", "--seed", "0"]


def marked_pids(value: str) -> list[int]:
    """Live processes whose environment carries MARK=value: the demo and all it started
    (children inherit the environment, down to the jobs run in sessions of their own)."""
    needle = f"{MARK}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(value: str, timeout_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := marked_pids(value)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def read_line(stream: Any, timeout_s: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        if not selector.select(timeout=timeout_s):
            raise AssertionError(f"no output within {timeout_s} s")
        return str(stream.readline())
    finally:
        selector.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path, Any]]:
    """A way to start the demo marked and with its temporary folders under tmp_path."""
    mark = uuid.uuid4().hex
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        env = {**os.environ, MARK: mark, "TMPDIR": str(tmp_path)}
        proc = subprocess.Popen(
            [sys.executable, "-c", CLI, "demo", *args],
            stdout=subprocess.PIPE,
            stderr=open(tmp_path / "demo.stderr", "a"),  # noqa: SIM115 - closed with the process
            text=True,
            env=env,
        )
        started.append(proc)
        return proc

    yield mark, tmp_path, start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    for pid in marked_pids(mark):
        os.kill(pid, signal.SIGKILL)


def recompute(
    jobs: list[Job], events: dict[str, list[JobEvent]], compression: float, topology: Topology
) -> tuple[float, float, float]:
    """Energy CNY, carbon t and west share of training card-hours from the broker's records:
    each job's site and pool, its spec, and the wall time its last attempt started running
    (mapped to trace time from its submission at its `trace-submit-s`)."""
    energy = carbon_kg = west_h = train_h = 0.0
    for job in jobs:
        running = [e for e in events[job.job_id] if e.state is JobState.RUNNING]
        if not running or not job.site:
            continue
        spec, site = job.spec, str(job.site)
        started_ms = running[-1].time_unix_ms
        submit_s = float(spec.labels["trace-submit-s"])
        start_s = submit_s + (started_ms - job.created_unix_ms) / 1000 * compression
        if job.state is JobState.SUCCEEDED:
            hours = spec.duration_hours
        else:
            ended_ms = [e.time_unix_ms for e in events[job.job_id] if e.state.is_final][-1]
            hours = min(spec.duration_hours, (ended_ms - started_ms) / 1000 * compression / 3600)
        cards = spec.accelerators_total
        [pool, *_] = [p for p in topology.site(site).pools if p.model == job.pool]
        used = run_energy(
            topology, site, pool.watts * cards, start_s / 3600, hours,
            cards=cards, workload=spec.workload,
        )  # fmt: skip
        energy += used.cny
        carbon_kg += used.carbon_kg
        if spec.kind == "training":
            train_h += cards * hours
            west_h += cards * hours if topology.site(site).side == "west" else 0.0
    return energy, carbon_kg / 1000, west_h / train_h


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_demo_numbers_match_the_broker_and_nothing_is_left(demo: Any) -> None:
    mark, tmp_path, start = demo
    proc = start(
        *FAST, "--max-job-seconds", "3", "--json", "--keep", "--keep-running",
        "--map", str(tmp_path / "m.png"),
    )  # fmt: skip
    summary = json.loads(read_line(proc.stdout, timeout_s=200))
    # both arms count every job, whatever became of it
    assert sum(summary["jobs"].values()) == summary["submitted"] == 40
    assert sum(summary["baseline_jobs"].values()) == 40
    assert summary["jobs"].get("succeeded", 0) == 40 - summary["offered_load"]["too_large"]
    assert Path(summary["map_png"]).stat().st_size > 50_000
    topology = default_topology()

    token = Path(summary["token_file"]).read_text().strip()
    credentials = tls_channel_credentials(summary["ca"])
    with Client(address=summary["broker"], credentials=credentials, token=token) as client:
        jobs = list(client.list())
        events = {j.job_id: list(client.watch(j.job_id)) for j in jobs}
    assert len(jobs) == 40 and all(j.state.is_final for j in jobs)
    placements = json.loads(Path(summary["placements_file"]).read_text())
    assert {p["job_id"]: p["site"] for p in placements} == {j.job_id: j.site or "" for j in jobs}

    energy, carbon_t, west_share = recompute(jobs, events, summary["compression"], topology)
    assert summary["energy_cny"] == pytest.approx(energy, abs=0.01)
    assert summary["carbon_t"] == pytest.approx(carbon_t, abs=1e-4)
    assert west_share > 0.5, "training should mostly run west (by card-hours)"
    inference = [j for j in jobs if j.spec.kind == "inference" and j.spec.inference and j.site]
    assert inference and all(
        topology.rtt_ms(j.spec.inference.user_regions[0].region, str(j.site))
        <= j.spec.inference.latency_slo_ms
        for j in inference
        if j.spec.inference
    )
    assert summary["slo_attainment"] == 1.0

    # the summary states its offered load, and the simulator measures the same on the same cards
    load = summary["offered_load"]
    assert load["overall"] > 0 and load["cards"] > 0
    assert summary["baseline_offered_load"] == pytest.approx(load["overall"], abs=1e-3)
    workload = Path(summary["workdir"]) / "workload.csv"
    baseline = subprocess.run(
        [sys.executable, "-m", "broker", "simulate", "--workload", str(workload),
         "--policy", "nearest", "--json", "--limit", "0",
         "--capacity-scale", str(load["capacity_scale"])],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    nearest = json.loads(baseline.stdout)["policies"]["nearest"]
    assert summary["baseline_energy_cny"] == nearest["energy_cny"]
    assert nearest["jobs"] + nearest["still_queued"] + nearest["too_large"] == 40

    assert len(marked_pids(mark)) >= 12, "the scan sees the demo, its broker and its agents"
    proc.send_signal(signal.SIGINT)
    assert stopped(proc, tmp_path) == 0
    assert wait_gone(mark) == []


def stopped(proc: subprocess.Popen[str], tmp_path: Path, bound_s: float = 180.0) -> int:
    """The demo's exit code after a stop signal; if it outlives the bound (a hang, not a slow
    machine: the demo's own stop is bounded by three 5 s graces), fail with what it logged."""
    try:
        return proc.wait(timeout=bound_s)
    except subprocess.TimeoutExpired:
        logs = [*sorted(tmp_path.glob("**/*.log")), tmp_path / "demo.stderr"]
        tails = {
            str(p.relative_to(tmp_path)): p.read_text(errors="replace")[-1500:]
            for p in logs
            if p.exists()
        }
        raise AssertionError(f"the demo did not stop within {bound_s:g} s: {tails}") from None


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_sigterm_mid_run_stops_every_process_and_removes_the_folder(demo: Any) -> None:
    mark, tmp_path, start = demo
    proc = start(*FAST, "--max-job-seconds", "30")
    stderr = tmp_path / "demo.stderr"
    deadline = time.monotonic() + 90
    while "sites active" not in proc.stdout.readline():
        assert time.monotonic() < deadline and proc.poll() is None
    # Jobs start running, each in a session of its own, next to the broker and its agents.
    wait_for(lambda: len(marked_pids(mark)) > 12, what="jobs running next to broker and agents")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert wait_gone(mark) == []
    assert not list(tmp_path.glob("computenet-demo-*")), stderr.read_text()
