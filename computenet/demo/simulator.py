"""Calls to the what-if simulator (`python -m broker simulate`) as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from computenet.demo.options import DATA_DIR_ENV
from computenet.demo.workload import SECONDS_PER_DAY, read_workload
from computenet.workload import WorkloadJob

WORKLOADS = "philly,alibaba-genai"
BASELINE_POLICY = "nearest"
FIRST_EXPORT_LIMIT = 4000
MAX_EXPORT_LIMIT = 64_000
TIMEOUT_S = 300.0


class SimulatorError(RuntimeError):
    """The simulator failed or printed something the demo cannot read."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """A policy's replay of the demo's jobs, as the simulator accounts it."""

    policy: str
    energy_cny: float
    carbon_t: float
    slo_attainment: float | None
    """Fraction in [0, 1] of inference card-hours within SLO."""
    jobs: int
    """Jobs that ran."""
    still_queued: int = 0
    too_large: int = 0
    """Jobs no pool could ever hold at the capacity scale."""
    wait_mean_h: float = 0.0
    offered_load: float | None = None


def simulate_argv(*args: str) -> list[str]:
    """The simulator's command line with `args`."""
    return [sys.executable, "-m", "broker", "simulate", *args]


def _env(data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, DATA_DIR_ENV: str(data_dir), **extra}


def _run(
    argv: Sequence[str], data_dir: Path, extra_env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    env = _env(data_dir, extra_env)
    done = subprocess.run(
        list(argv), capture_output=True, text=True, env=env, timeout=TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise SimulatorError(f"{' '.join(argv[3:])}: {done.stderr.strip() or done.returncode}")
    return done


def export_days(
    path: Path, *, days: int, seed: int, data_dir: Path, extra_env: Mapping[str, str]
) -> list[WorkloadJob]:
    """Export the merged Philly + GenAI timeline through its first `days` days.

    The simulator keeps the first N jobs of the timeline; N doubles until the export reaches
    past the window (or the traces run out), so the window is complete.
    """
    limit = FIRST_EXPORT_LIMIT
    while True:
        args = ["--workload", WORKLOADS, "--policy", BASELINE_POLICY, "--limit", str(limit)]
        args += ["--capacity-scale", "1"]  # only the export is used: the quickest replay
        args += ["--seed", str(seed), "--json", "--export-workload", str(path)]
        _run(simulate_argv(*args), data_dir, extra_env)
        jobs = read_workload(path)
        past_window = any(j.submit_s >= days * SECONDS_PER_DAY for j in jobs)
        if past_window or len(jobs) < limit or limit >= MAX_EXPORT_LIMIT:
            return jobs
        limit *= 2


def parse_baseline(stdout: str) -> Baseline:
    """The `nearest` policy's numbers from a `simulate --json` report."""
    try:
        document = json.loads(stdout)
        metrics = document["policies"][BASELINE_POLICY]
        slo = metrics.get("slo_attainment")
        load = document.get("offered_load", {}).get("overall")
        return Baseline(
            policy=BASELINE_POLICY,
            energy_cny=float(metrics["energy_cny"]),
            carbon_t=float(metrics["carbon_t"]),
            slo_attainment=None if slo is None else float(slo),
            jobs=int(metrics["jobs"]),
            still_queued=int(metrics["still_queued"]),
            too_large=int(metrics["too_large"]),
            wait_mean_h=float(metrics["wait_mean_h"]),
            offered_load=None if load is None else float(load),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SimulatorError(f"unreadable simulator report: {exc!r}") from None


class BaselineRun:
    """The baseline replay running in the background while the demo's jobs run."""

    def __init__(
        self,
        workload: Path,
        *,
        seed: int,
        data_dir: Path,
        scale: float,
        extra_env: Mapping[str, str],
    ) -> None:
        args = ["--workload", str(workload), "--policy", BASELINE_POLICY, "--json"]
        args += ["--seed", str(seed), "--capacity-scale", repr(scale), "--limit", "0"]
        self._argv = simulate_argv(*args)
        self._proc = subprocess.Popen(
            self._argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_env(data_dir, extra_env),
        )

    def result(self) -> Baseline:
        """Wait for the replay and parse its report."""
        out, err = self._proc.communicate(timeout=TIMEOUT_S)
        if self._proc.returncode != 0:
            raise SimulatorError(f"baseline replay failed: {err.strip() or self._proc.returncode}")
        return parse_baseline(out)

    def stop(self) -> None:
        """Kill the replay if it still runs."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
