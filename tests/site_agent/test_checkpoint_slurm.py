"""A stop with checkpoint on a real Slurm: SIGTERM, the job saves and exits, the folder stays; the
next attempt resumes from its COMPUTENET_RESTORE_DIR."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from computenet.types import JobState
from site_agent.checkpoints import CheckpointTransfer, checkpoint_dir
from site_agent.executors.base import Launch, attempt_dir
from site_agent.executors.slurm import SlurmExecutor
from site_agent.records import ExecutorUpdate
from tests.site_agent.helpers import make_spec
from tests.site_agent.test_checkpoint_agent import COUNTER
from tests.site_agent.test_executor_slurm import wait_final
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(240)


def steps_saved(state_dir: Path) -> int:
    try:
        return int(json.loads((checkpoint_dir(state_dir, "ck") / "state.json").read_text())["step"])
    except (OSError, ValueError):
        return 0


@pytest.mark.slurm
def test_a_slurm_job_stopped_with_checkpoint_saves_and_resumes(  # type: ignore[no-untyped-def]
    slurm_cluster, tmp_path: Path
) -> None:
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    state_dir = tmp_path / "state"
    ex = SlurmExecutor(state_dir, env=slurm_cluster.env, checkpoint_grace_s=60)
    spec = make_spec(sys.executable, str(script), "100000", memory_gb=0.1)
    ex.start(Launch("ck", 1, 1, spec, "zhangjiakou"))
    seen: list[ExecutorUpdate] = []

    def running() -> bool:
        seen.extend(ex.poll())
        return any(u.state is JobState.RUNNING for u in seen)

    wait_for(running, timeout_s=90, what="the job to run")
    wait_for(lambda: steps_saved(state_dir) >= 10, timeout_s=90, what="ten saved steps")
    ex.cancel(("ck", 1), checkpoint=True)
    final = wait_final(ex)[-1]
    # it saved and exited on SIGTERM itself (143), well before the grace's SIGKILL
    assert (final.state, final.exit_code) == (JobState.FAILED, 143), final
    saved = steps_saved(state_dir)
    out = (attempt_dir(state_dir, "ck", 1) / "stdout.log").read_text().splitlines()
    assert out == ["start 0", f"stopped at {saved}"]

    store = tmp_path / "store"
    assert CheckpointTransfer(state_dir, store=store).export("ck", 1).ref == "ck/1"
    elsewhere = tmp_path / "elsewhere"
    restored = CheckpointTransfer(elsewhere, store=store).restore("ck", 2, "ck/1")
    there = SlurmExecutor(elsewhere, env=slurm_cluster.env)
    resumed = make_spec(sys.executable, str(script), str(saved + 10), memory_gb=0.1)
    there.start(Launch("ck", 2, 2, resumed, "wuhan", restore_dir=str(restored)))
    assert wait_final(there)[-1].state is JobState.SUCCEEDED
    out = (attempt_dir(elsewhere, "ck", 2) / "stdout.log").read_text().splitlines()
    assert out == [f"start {saved}", f"done at {saved + 10}"]


@pytest.mark.slurm
def test_a_slurm_job_that_ignores_sigterm_is_killed_after_the_checkpoint_grace(  # type: ignore[no-untyped-def]
    slurm_cluster, tmp_path: Path
) -> None:
    ex = SlurmExecutor(tmp_path, env=slurm_cluster.env, checkpoint_grace_s=3)
    deaf = make_spec("sh", "-c", 'trap "" TERM; echo up > started; sleep 600', memory_gb=0.1)
    handle = ex.start(Launch("deaf", 1, 1, deaf, "zhangjiakou"))
    seen: list[ExecutorUpdate] = []

    def running() -> bool:
        seen.extend(ex.poll())
        return any(u.state is JobState.RUNNING for u in seen)

    wait_for(running, timeout_s=90, what="the job to run")
    wait_for((attempt_dir(tmp_path, "deaf", 1) / "started").exists, timeout_s=60)
    ex.cancel(("deaf", 1), checkpoint=True)
    # SIGTERM alone does not end it: it is still running for Slurm after the first polls
    assert ex.poll() == []
    assert slurm_cluster.job_fields(int(handle))["JobState"] == "RUNNING"
    final = wait_final(ex, timeout_s=60)[-1]
    assert final.state in (JobState.FAILED, JobState.CANCELLED), final
    assert ex.commands["scancel"] == 2  # TERM, then KILL once the grace was over
