"""The Slurm executor: pure argument and state mapping tables, then jobs on a real Slurm."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from computenet.types import JobState
from site_agent.executors.base import ExecutorError, Launch, attempt_dir
from site_agent.executors.slurm import SlurmExecutor
from site_agent.executors.slurm_jobs import (
    batch_script,
    map_state,
    parse_exit_code,
    parse_sacct,
    parse_scontrol_job,
    parse_squeue,
    sbatch_args,
    time_limit_minutes,
)
from site_agent.records import ExecutorUpdate
from tests.site_agent.helpers import make_spec


@pytest.mark.parametrize(
    ("state", "exit_code", "expected"),
    [
        ("PENDING", "0:0", None),
        ("CONFIGURING", "0:0", None),
        ("RUNNING", "0:0", JobState.RUNNING),
        ("COMPLETING", "0:0", JobState.RUNNING),
        ("COMPLETED", "0:0", JobState.SUCCEEDED),
        ("FAILED", "3:0", JobState.FAILED),
        ("CANCELLED by 0", "0:15", JobState.CANCELLED),
        ("TIMEOUT", "0:0", JobState.FAILED),
        ("NODE_FAIL", "0:0", JobState.FAILED),
        ("PREEMPTED", "0:0", JobState.FAILED),
        ("OUT_OF_MEMORY", "0:125", JobState.FAILED),
        ("BOOT_FAIL", "0:0", JobState.FAILED),
        ("DEADLINE", "0:0", JobState.FAILED),
        ("WEIRD", "0:0", JobState.FAILED),
    ],
)
def test_map_state(state: str, exit_code: str, expected: JobState | None) -> None:
    status = map_state(state, exit_code, "NonZeroExitCode")
    assert status.state is expected
    assert status.message.startswith(f"slurm {state.split()[0]}")


def test_map_state_keeps_code_and_reason() -> None:
    status = map_state("FAILED", "3:0", "NonZeroExitCode")
    assert (status.exit_code, status.message) == (
        3,
        "slurm FAILED reason=NonZeroExitCode exit_code=3:0",
    )
    assert map_state("CANCELLED", "0:15").exit_code == 143


@pytest.mark.parametrize(
    ("text", "code"), [("0:0", 0), ("3:0", 3), ("0:9", 137), ("1:15", 1), ("", 0)]
)
def test_parse_exit_code(text: str, code: int) -> None:
    assert parse_exit_code(text) == code


def test_parsers_of_captured_outputs() -> None:
    assert parse_squeue("PENDING|None\n") == ("PENDING", "None")
    assert parse_squeue("") is None
    fields = parse_scontrol_job(
        "JobId=1 JobName=wrap UserId=root(0) JobState=FAILED Reason=NonZeroExitCode "
        "Dependency=(null) ExitCode=3:0 RunTime=00:00:03 TRES=cpu=1,mem=100M,node=1\n"
    )
    assert (fields["JobState"], fields["ExitCode"], fields["TRES"]) == (
        "FAILED",
        "3:0",
        "cpu=1,mem=100M,node=1",
    )
    assert parse_sacct("COMPLETED|0:0|None\n") == ("COMPLETED", "0:0", "None")
    assert parse_sacct("") is None


def test_sbatch_args(tmp_path: Path) -> None:
    spec = make_spec("python", "train.py", accelerator="a800", count=4, cpu_cores=7.5, memory_gb=2)
    args = sbatch_args(spec, name="cn-j1-2", folder=tmp_path, partition="gpu", extra=["--qos=x"])
    assert args == [
        "--parsable",
        "--job-name=cn-j1-2",
        f"--chdir={tmp_path}",
        f"--output={tmp_path / 'stdout.log'}",
        f"--error={tmp_path / 'stderr.log'}",
        "--cpus-per-task=8",
        "--time=8",
        "--mem=2048M",
        "--gres=gpu:a800:4",
        "--partition=gpu",
        "--qos=x",
    ]
    cpu_only = sbatch_args(make_spec("true", memory_gb=0), name="n", folder=tmp_path)
    assert not any(a.startswith(("--gres", "--mem")) for a in cpu_only)
    assert time_limit_minutes(0.001, 1.25) == 1
    assert time_limit_minutes(10, 1.25) == 750


def test_batch_script_quotes_the_command() -> None:
    script = batch_script(["sh", "-c", "echo 'a b'; exit 3"], {"COMPUTENET_JOB_ID": "j1"})
    assert script.startswith("#!/bin/sh\nexport COMPUTENET_JOB_ID=j1\n")
    assert script.endswith("\nexec sh -c 'echo '\"'\"'a b'\"'\"'; exit 3'\n")


@pytest.mark.parametrize(
    ("command", "code", "start_error"),
    [
        (["sh", "-c", 'echo "$COMPUTENET_JOB_ID"; exit 3'], 3, False),
        (["/nonexistent/binary", "x"], 127, True),
        (["no-such-program-anywhere"], 127, True),
    ],
)
def test_batch_script_records_a_command_it_cannot_start(
    tmp_path: Path, command: list[str], code: int, start_error: bool
) -> None:
    (tmp_path / "job.sh").write_text(batch_script(command, {"COMPUTENET_JOB_ID": "j1"}))
    # What slurmd does with it: run it with the job's folder as working directory.
    done = subprocess.run(["sh", "job.sh"], cwd=tmp_path, capture_output=True, timeout=30)
    assert done.returncode == code
    assert (tmp_path / "start_error").exists() == start_error
    if start_error:
        assert command[0] in (tmp_path / "start_error").read_text()
    else:
        assert done.stdout == b"j1\n"


def wait_final(ex: SlurmExecutor, timeout_s: float = 90) -> list[ExecutorUpdate]:
    seen: list[ExecutorUpdate] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen += ex.poll()
        if seen and seen[-1].state is not JobState.RUNNING:
            return seen
        time.sleep(0.25)
    raise AssertionError(f"no final update within {timeout_s}s: {seen}")


def slurm_launch(job_id: str, *command: str, gpus: int = 0) -> Launch:
    spec = make_spec(*command, accelerator="a800" if gpus else "", count=gpus, memory_gb=0.1)
    return Launch(job_id, 1, 9, spec, "zhangjiakou")


@pytest.mark.slurm
def test_slurm_job_succeeds(slurm_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ex = SlurmExecutor(tmp_path, env=slurm_cluster.env)
    handle = ex.start(slurm_launch("s1", "sh", "-c", 'echo "hi $COMPUTENET_JOB_ID"', gpus=2))
    assert handle.isdigit()
    fields = slurm_cluster.job_fields(int(handle))
    assert fields["JobName"] == "cn-s1-1"
    updates = wait_final(ex)
    assert (updates[-1].state, updates[-1].exit_code) == (JobState.SUCCEEDED, 0), updates
    assert (attempt_dir(tmp_path, "s1", 1) / "stdout.log").read_text() == "hi s1\n"


@pytest.mark.slurm
def test_slurm_job_failure_keeps_exit_code(slurm_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ex = SlurmExecutor(tmp_path, env=slurm_cluster.env)
    ex.start(slurm_launch("s2", "sh", "-c", "exit 3"))
    updates = wait_final(ex)
    assert (updates[-1].state, updates[-1].exit_code) == (JobState.FAILED, 3), updates
    assert "slurm FAILED" in updates[-1].message


@pytest.mark.slurm
def test_slurm_missing_binary_is_a_launch_failure(slurm_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ex = SlurmExecutor(tmp_path, env=slurm_cluster.env)
    ex.start(slurm_launch("s5", "/nonexistent/binary", "--flag"))
    updates = wait_final(ex)
    assert updates[-1].state is JobState.FAILED and updates[-1].launch_failed, updates
    assert "cannot start '/nonexistent/binary'" in updates[-1].message


@pytest.mark.slurm
def test_sbatch_refusing_the_job_is_an_executor_error(slurm_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ex = SlurmExecutor(tmp_path, env=slurm_cluster.env, partition="no-such-partition")
    with pytest.raises(ExecutorError, match="sbatch failed"):
        ex.start(slurm_launch("s6", "true"))
    assert ex.poll() == []


@pytest.mark.slurm
def test_slurm_cancel_reaches_scancel(slurm_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ex = SlurmExecutor(tmp_path, env=slurm_cluster.env)
    handle = ex.start(slurm_launch("s3", "sleep", "120"))
    slurm_cluster.wait_job_state(int(handle), {"RUNNING"}, timeout_s=60)
    ex.cancel(("s3", 1))
    updates = wait_final(ex)
    assert updates[-1].state is JobState.CANCELLED, updates


@pytest.mark.slurm
def test_restarted_slurm_executor_adopts_instead_of_resubmitting(
    slurm_cluster, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    first = SlurmExecutor(tmp_path, env=slurm_cluster.env)
    handle = first.start(slurm_launch("s4", "true"))
    second = SlurmExecutor(tmp_path, env=slurm_cluster.env)
    assert second.start(slurm_launch("s4", "true")) == handle
    assert wait_final(second)[-1].state is JobState.SUCCEEDED
