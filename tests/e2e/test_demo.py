"""`computenet demo` for real: jobs finish, numbers match the broker's records, nothing is left."""

from __future__ import annotations

import json
import math
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

from computenet import Client, Job
from computenet.tls import tls_channel_credentials
from tests.support.waiting import wait_for
from topology import Topology, default_topology

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


def card_watts(topology: Topology, site: str, cards: int) -> float:
    """Per-card power of the least power-hungry pool that holds the job (no pool is busy
    enough at this load for the choice to depend on other jobs)."""
    pools = sorted(topology.site(site).pools, key=lambda p: p.watts)
    pool = next(p for p in pools if p.count >= cards)
    return pool.watts


def recompute(jobs: list[Job], topology: Topology) -> tuple[float, float, float]:
    """Energy CNY, carbon t and west share of training card-hours from the broker's records."""
    energy = carbon_kg = west_h = train_h = 0.0
    for job in jobs:
        spec, site = job.spec, str(job.site)
        cards = spec.accelerators_total
        kw = card_watts(topology, site, cards) * cards * topology.site(site).pue / 1000
        submit_s = float(spec.labels["trace-submit-s"])
        start_h = math.ceil(submit_s / 60) * 60 / 3600
        energy += topology.energy_cost_cny(site, kw, start_h, spec.duration_hours)
        carbon_kg += topology.carbon_kg(site, kw * spec.duration_hours)
        if spec.kind == "training":
            train_h += cards * spec.duration_hours
            west_h += cards * spec.duration_hours if topology.site(site).side == "west" else 0.0
    return energy, carbon_kg / 1000, west_h / train_h


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_demo_numbers_match_the_broker_and_nothing_is_left(demo: Any) -> None:
    mark, tmp_path, start = demo
    proc = start(
        *FAST, "--max-job-seconds", "3", "--json", "--keep", "--keep-running",
        "--map", str(tmp_path / "m.png"),
    )  # fmt: skip
    summary = json.loads(read_line(proc.stdout, timeout_s=150))
    assert summary["jobs"] == {"succeeded": 40}
    assert Path(summary["map_png"]).stat().st_size > 50_000
    topology = default_topology()

    token = Path(summary["token_file"]).read_text().strip()
    credentials = tls_channel_credentials(summary["ca"])
    with Client(address=summary["broker"], credentials=credentials, token=token) as client:
        jobs = list(client.list())
    assert len(jobs) == 40 and all(j.state.is_final and j.site for j in jobs)
    placements = json.loads(Path(summary["placements_file"]).read_text())
    assert {p["job_id"]: p["site"] for p in placements} == {j.job_id: j.site for j in jobs}

    energy, carbon_t, west_share = recompute(jobs, topology)
    assert summary["energy_cny"] == pytest.approx(energy, abs=0.01)
    assert summary["carbon_t"] == pytest.approx(carbon_t, abs=1e-4)
    assert west_share > 0.5, "training should mostly run west (by card-hours)"
    inference = [j for j in jobs if j.spec.kind == "inference" and j.spec.inference]
    assert inference and all(
        topology.rtt_ms(j.spec.inference.user_regions[0].region, str(j.site))
        <= j.spec.inference.latency_slo_ms
        for j in inference
        if j.spec.inference
    )
    assert summary["slo_attainment"] == 1.0
    assert summary["placements"]["training"]["west"] > summary["placements"]["training"]["east"]

    workload = Path(summary["workdir"]) / "workload.csv"
    baseline = subprocess.run(
        [sys.executable, "-m", "broker", "simulate", "--workload", str(workload),
         "--policy", "nearest", "--json", "--limit", "0"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    nearest = json.loads(baseline.stdout)["policies"]["nearest"]
    assert summary["baseline_energy_cny"] == nearest["energy_cny"]
    assert summary["energy_cny"] < summary["baseline_energy_cny"]

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
