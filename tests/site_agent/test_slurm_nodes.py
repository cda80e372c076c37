"""The Slurm executor and capacity source on a real two-node Slurm with accounting."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from computenet.types import JobState
from site_agent.capacity.slurm import SlurmSource
from site_agent.executors.base import Launch, attempt_dir
from site_agent.executors.slurm import SlurmExecutor
from site_agent.records import ExecutorUpdate
from tests.harness.slurm_nodes import SlurmNodesCluster
from tests.site_agent.helpers import make_spec
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slurm

MAPPED = {"nvidia_a800": "a800"}
# The batch script runs on the first node; srun starts one task on every node of the job.
BOTH_NODES = ("sh", "-c", "srun sh -c 'echo \"$SLURMD_NODENAME gpus=$CUDA_VISIBLE_DEVICES\"'")


def launch(job_id: str, *command: str, gpus: int = 0, gang: bool = True) -> Launch:
    spec = make_spec(*command, accelerator="a800" if gpus else "", count=gpus, memory_gb=0.1)
    return Launch(job_id, 1, 7, spec.model_copy(update={"gang": gang}), "zhangjiakou")


def executor(cluster: SlurmNodesCluster, state_dir: Path) -> SlurmExecutor:
    return SlurmExecutor(state_dir, env=cluster.env, gres_models=MAPPED)


def final_updates(
    ex: SlurmExecutor, *keys: tuple[str, int]
) -> dict[tuple[str, int], ExecutorUpdate]:
    """Poll until every attempt of `keys` has reported a final state; the last update of each."""
    last: dict[tuple[str, int], ExecutorUpdate] = {}

    def finished() -> bool:
        last.update(((u.job_id, u.attempt), u) for u in ex.poll())
        return all(k in last and last[k].state is not JobState.RUNNING for k in keys)

    wait_for(finished, timeout_s=90, interval_s=0.25, what=f"attempts {keys} to end")
    return last


def left_squeue(cluster: SlurmNodesCluster, slurm_id: str) -> bool:
    listed = cluster.run("squeue", "-h", "-t", "all", "-j", slurm_id, "-o", "%i", check=False)
    return not listed.strip()


def test_a_gang_of_two_nodes_runs_once_across_both(
    slurm_nodes_cluster: SlurmNodesCluster, tmp_path: Path
) -> None:
    ex = executor(slurm_nodes_cluster, tmp_path)
    slurm_id = ex.start(launch("gang", *BOTH_NODES, gpus=4))
    assert ex.commands["sbatch"] == 1
    update = final_updates(ex, ("gang", 1))[("gang", 1)]
    assert (update.state, update.exit_code) == (JobState.SUCCEEDED, 0), update
    lines = sorted((attempt_dir(tmp_path, "gang", 1) / "stdout.log").read_text().splitlines())
    assert lines == [f"{node} gpus=0,1" for node in slurm_nodes_cluster.nodes]
    fields = slurm_nodes_cluster.job_fields(int(slurm_id))
    assert fields["NodeList"] == "node[1-2]", fields


def test_one_squeue_per_poll_whatever_the_number_of_attempts(
    slurm_nodes_cluster: SlurmNodesCluster, tmp_path: Path
) -> None:
    ex = executor(slurm_nodes_cluster, tmp_path)
    per_poll = []
    try:
        for count in (1, 6):
            while len(ex._tracked) < count:
                ex.start(launch(f"q{len(ex._tracked)}", "sleep", "300"))
            before = dict(ex.commands)
            ex.poll()
            ran = {k: v - before.get(k, 0) for k, v in ex.commands.items()}
            per_poll.append({k: v for k, v in ran.items() if v})
    finally:
        for key in list(ex._tracked):
            ex.cancel(key)
    assert per_poll == [{"squeue": 1}, {"squeue": 1}], per_poll
    keys = [(f"q{i}", 1) for i in range(6)]
    ended = final_updates(ex, *keys)
    assert {ended[key].state for key in keys} == {JobState.CANCELLED}


def test_sacct_reports_jobs_that_left_squeue(
    slurm_nodes_cluster: SlurmNodesCluster, tmp_path: Path
) -> None:
    ex = executor(slurm_nodes_cluster, tmp_path)
    failed = ex.start(launch("gone-fail", "sh", "-c", "exit 3"))
    done = ex.start(launch("gone-ok", "true"))
    # nobody polls until the controller has purged both (MinJobAge): only sacct knows them
    wait_for(
        lambda: all(left_squeue(slurm_nodes_cluster, job) for job in (failed, done)),
        timeout_s=120,
        what="the controller to purge both jobs",
    )
    ended = final_updates(ex, ("gone-fail", 1), ("gone-ok", 1))
    assert (ended["gone-fail", 1].state, ended["gone-fail", 1].exit_code) == (JobState.FAILED, 3)
    assert ended["gone-ok", 1].state is JobState.SUCCEEDED
    assert ex.commands["sacct"] >= 1


def test_capacity_reports_node_shapes_of_mapped_gres_types(
    slurm_nodes_cluster: SlurmNodesCluster,
) -> None:
    snap = SlurmSource(env=slurm_nodes_cluster.env, gres_models=MAPPED).probe()
    [pool] = snap.pools
    assert (pool.model, pool.total, pool.nodes, pool.cards_per_node) == ("a800", 4, 2, 2)


def test_an_unmapped_gres_type_warns_and_counts_no_cards(
    slurm_nodes_cluster: SlurmNodesCluster, caplog: pytest.LogCaptureFixture
) -> None:
    source = SlurmSource(env=slurm_nodes_cluster.env)
    with caplog.at_level(logging.WARNING, logger="site_agent.capacity.slurm"):
        snap = source.probe()
        source.probe()
    assert snap.pools == ()
    assert len(source.warnings) == 1 and "'nvidia_a800'" in source.warnings[0]
    warned = [r for r in caplog.records if "gres_type=nvidia_a800" in r.getMessage()]
    assert len(warned) == 1, "warned once, not at every probe"


AGENT_CONFIG = """\
site: zhangjiakou
broker: 127.0.0.1:50051
capacity: {{source: slurm, gres_models: {gres_models}}}
executor: {{kind: slurm}}
state_dir: ./agent-state
"""


@pytest.mark.parametrize("mapped", [False, True])
def test_agent_check_warns_about_unmapped_gres_types(
    slurm_nodes_cluster: SlurmNodesCluster, tmp_path: Path, mapped: bool
) -> None:
    gres_models = "{nvidia_a800: a800}" if mapped else "{}"
    (tmp_path / "agent.yaml").write_text(AGENT_CONFIG.format(gres_models=gres_models))
    proc = subprocess.run(
        [sys.executable, "-m", "site_agent", "check", "--config", "agent.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLURM_CONF": slurm_nodes_cluster.env["SLURM_CONF"]},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    warned = "WARN  gres         slurm GRES type 'nvidia_a800' maps to no accelerator model"
    assert (warned in proc.stdout) is not mapped, proc.stdout
    assert ("PASS  gres         every GRES type maps to a model" in proc.stdout) is mapped
    assert ("a800: 4/4 allocatable" in proc.stdout) is mapped, proc.stdout


def test_replicas_run_as_one_array_and_end_together(
    slurm_nodes_cluster: SlurmNodesCluster, tmp_path: Path
) -> None:
    spec = make_spec("sh", "-c", 'echo "replica $COMPUTENET_REPLICA"', memory_gb=0.1)
    inference = {"user_regions": [{"region": "beijing"}], "latency_slo_ms": 30, "replicas": 3}
    spec = spec.model_validate({**spec.model_dump(), "kind": "inference", "inference": inference})
    ex = executor(slurm_nodes_cluster, tmp_path)
    ex.start(Launch("inf", 1, 7, spec, "zhangjiakou"))
    assert final_updates(ex, ("inf", 1))["inf", 1].state is JobState.SUCCEEDED
    folder = attempt_dir(tmp_path, "inf", 1)
    outputs = sorted((folder / f"stdout-{i}.log").read_text() for i in range(3))
    assert outputs == [f"replica {i}\n" for i in range(3)]
    assert ex.commands["sbatch"] == 1


# First run: records itself and waits to be requeued; the run after the requeue ends at once.
RUNS_TWICE = ("sh", "-c", 'echo run >> runs; [ "$(wc -l < runs)" -ge 2 ] || exec sleep 300')


def test_a_requeued_job_is_the_same_attempt_not_a_failure(
    slurm_nodes_cluster: SlurmNodesCluster, tmp_path: Path
) -> None:
    ex = executor(slurm_nodes_cluster, tmp_path)
    slurm_id = ex.start(launch("rq", *RUNS_TWICE))
    updates: list[ExecutorUpdate] = []
    runs = attempt_dir(tmp_path, "rq", 1) / "runs"

    def polled_until(done: object) -> bool:
        updates.extend(ex.poll())
        return bool(done)

    wait_for(lambda: polled_until(runs.exists() and updates), what="the first run")
    assert [u.state for u in updates] == [JobState.RUNNING]
    # what a site's scheduler does to a job it preempts with PreemptMode=REQUEUE
    slurm_nodes_cluster.run("scontrol", "requeue", slurm_id)
    wait_for(
        lambda: polled_until(
            slurm_nodes_cluster.job_fields(int(slurm_id)).get("JobState") == "PENDING"
        ),
        what="the job to wait again",
    )
    assert ex.poll() == [] and [u.state for u in updates] == [JobState.RUNNING]
    # Slurm holds a requeued job back for two minutes (BeginTime); let it start now
    slurm_nodes_cluster.run("scontrol", "update", f"JobId={slurm_id}", "StartTime=now")
    wait_for(
        lambda: polled_until(updates[-1].state is not JobState.RUNNING),
        timeout_s=120,
        what="the requeued run to end",
    )
    assert [u.state for u in updates] == [JobState.RUNNING, JobState.SUCCEEDED], updates
    assert runs.read_text() == "run\nrun\n"


def test_the_agent_warns_about_unmapped_gres_types_at_start(
    slurm_nodes_cluster: SlurmNodesCluster, tmp_path: Path
) -> None:
    # no broker answers at 127.0.0.1:1: the warning must not wait for the first heartbeat
    config = AGENT_CONFIG.format(gres_models="{}").replace("127.0.0.1:50051", "127.0.0.1:1")
    (tmp_path / "agent.yaml").write_text(config)
    log_path = tmp_path / "agent.log"
    with open(log_path, "wb") as log_file:
        agent = subprocess.Popen(
            [sys.executable, "-m", "site_agent", "run", "--config", "agent.yaml"],
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SLURM_CONF": slurm_nodes_cluster.env["SLURM_CONF"]},
        )
    try:
        wait_for(
            lambda: "gres_type=nvidia_a800" in log_path.read_text(),
            timeout_s=60,
            what="the unmapped GRES warning in the agent's log",
        )
        line = next(x for x in log_path.read_text().splitlines() if "gres_type=" in x)
        assert " WARNING site_agent.capacity.slurm " in line, line
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
