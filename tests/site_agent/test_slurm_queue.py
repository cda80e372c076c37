"""Polling Slurm, pure parts: squeue and sacct rows, attempt states, sbatch node shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computenet.types import JobState
from site_agent.executors.slurm_jobs import GresShape, gpu_args, map_state, sbatch_args
from site_agent.executors.slurm_queue import (
    SINGLE_TASK,
    TaskRow,
    attempt_status,
    merged,
    missing,
    parse_sacct_rows,
    parse_squeue_rows,
    sacct_args,
    squeue_args,
    wait_status,
)
from tests.site_agent.helpers import make_spec
from tests.support.fake_slurm import fake_slurm_bin, polling_cost, tracked_executor

# Recorded from slurm-wlm 22.05.8 (the multi-node test cluster): `squeue -h -r -t all -j
# 1,2,3,4,999 -O ArrayJobID:|,ArrayTaskID:|,State:|,exit_code:|,Reason:|` where 1 ran
# `exit 3`, 2 was killed by signal 9, 3 was cancelled, 4 is a three-task array (task 0 done,
# task 1 running, task 2 pending) and 999 was never submitted.
SQUEUE = """\
3|N/A|CANCELLED|0|Priority|
1|N/A|FAILED|768|NonZeroExitCode|
2|N/A|FAILED|9|JobLaunchFailure|
4|0|COMPLETED|0|None|
4|1|RUNNING|0|None|
4|2|PENDING|0|Resources|
"""
# `sacct -n -P -X -j 1,2,3,4,999 -o JobID,State,ExitCode,Reason` a little earlier.
SACCT = """\
1|FAILED|3:0|None
2|FAILED|0:9|None
3|CANCELLED by 0|0:0|None
4_0|COMPLETED|0:0|None
4_[1-2]|PENDING|0:0|None
"""


def test_parse_squeue_rows_of_recorded_output() -> None:
    rows = parse_squeue_rows(SQUEUE)
    assert sorted(rows) == ["1", "2", "3", "4"]
    assert rows["1"] == {SINGLE_TASK: TaskRow("FAILED", "3:0", "NonZeroExitCode")}
    assert rows["2"][SINGLE_TASK].exit_code == "0:9"
    assert sorted(rows["4"]) == ["0", "1", "2"]
    assert parse_squeue_rows("") == {}


def test_parse_sacct_rows_expands_pending_array_ranges() -> None:
    rows = parse_sacct_rows(SACCT)
    assert rows["3"][SINGLE_TASK].state == "CANCELLED by 0"
    assert sorted(rows["4"]) == ["0", "1", "2"]
    assert rows["4"]["2"] == TaskRow("PENDING", "0:0", "None")
    assert parse_sacct_rows("5+0|RUNNING|0:0|None\n") == {}
    assert sorted(parse_sacct_rows("7_[0,2-3%2]|PENDING|0:0|None\n")["7"]) == ["0", "2", "3"]


@pytest.mark.parametrize(("raw", "pair"), [("0", "0:0"), ("768", "3:0"), ("9", "0:9"), ("", "0:0")])
def test_wait_status(raw: str, pair: str) -> None:
    assert wait_status(raw) == pair


def test_both_sources_give_the_same_states() -> None:
    queued, accounted = parse_squeue_rows(SQUEUE), parse_sacct_rows(SACCT)
    for job in ("1", "2", "3"):
        from_queue, from_accounting = attempt_status(queued[job]), attempt_status(accounted[job])
        assert from_queue is not None and from_accounting is not None
        assert (from_queue.state, from_queue.exit_code) == (
            from_accounting.state,
            from_accounting.exit_code,
        )
    assert attempt_status(queued["1"]) == map_state("FAILED", "3:0", "NonZeroExitCode")


def test_one_command_each_for_any_number_of_jobs() -> None:
    ids = [str(i) for i in range(1, 1001)]
    assert squeue_args(ids)[:2] == ["squeue", "-h"]
    assert ",".join(ids) in squeue_args(ids)
    assert sacct_args(["5", "6"])[-3:] == ["5,6", "-o", "JobID,State,ExitCode,Reason"]


def test_missing_asks_sacct_only_for_jobs_or_tasks_gone_from_squeue() -> None:
    queued = parse_squeue_rows(SQUEUE)
    assert missing(["1", "4", "8"], queued, {"4": 3, "8": 1}) == ["8"]
    assert missing(["4"], queued, {"4": 5}) == ["4"]


def row(state: str, code: str = "0:0") -> TaskRow:
    return TaskRow(state, code, "None")


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["PENDING"], None),
        (["REQUEUED"], None),
        (["RUNNING"], JobState.RUNNING),
        (["COMPLETED"], JobState.SUCCEEDED),
        (["PREEMPTED"], JobState.FAILED),
        (["PENDING", "PENDING"], None),
        (["COMPLETED", "PENDING"], JobState.RUNNING),
        (["COMPLETED", "RUNNING"], JobState.RUNNING),
        (["COMPLETED", "COMPLETED"], JobState.SUCCEEDED),
        (["COMPLETED", "FAILED"], JobState.FAILED),
        (["CANCELLED by 0", "COMPLETED"], JobState.CANCELLED),
        (["CANCELLED by 0", "FAILED"], JobState.FAILED),
    ],
)
def test_attempt_status_of_tasks(states: list[str], expected: JobState | None) -> None:
    rows = {str(i): row(s) for i, s in enumerate(states)}
    status = attempt_status(rows, len(states))
    assert status is not None and status.state is expected


def test_an_array_with_tasks_unknown_is_not_final() -> None:
    status = attempt_status({"0": row("COMPLETED")}, 2)
    assert status is not None and status.state is JobState.RUNNING
    assert attempt_status({}, 1) is None


def test_preempted_and_requeued_as_slurm_means_them() -> None:
    assert map_state("REQUEUED").state is None  # requeued: the same attempt waits again
    assert map_state("REQUEUE_HOLD").state is None
    preempted = map_state("PREEMPTED", "0:15")
    assert preempted.state is JobState.FAILED
    assert "preempted by the site, not requeued" in preempted.message


def test_squeue_rows_override_sacct_rows() -> None:
    both = merged({"0": row("RUNNING")}, {"0": row("PENDING"), "1": row("PENDING")})
    assert both == {"0": row("RUNNING"), "1": row("PENDING")}


@given(
    st.lists(
        st.sampled_from(["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "REQUEUED"]),
        min_size=1,
        max_size=6,
    )
)
def test_attempt_is_final_only_when_every_task_is(states: list[str]) -> None:
    status = attempt_status({str(i): row(s) for i, s in enumerate(states)}, len(states))
    assert status is not None
    all_final = all(s in ("COMPLETED", "FAILED", "CANCELLED") for s in states)
    assert (status.state not in (None, JobState.RUNNING)) == all_final
    if status.state is JobState.SUCCEEDED:
        assert set(states) == {"COMPLETED"}


SHAPE = GresShape("nvidia_a800", nodes=2, cards_per_node=2)


@pytest.mark.parametrize(
    ("count", "gang", "shape", "expected"),
    [
        (2, True, SHAPE, ["--gres=gpu:nvidia_a800:2"]),
        (1, True, None, ["--gres=gpu:a800:1"]),
        (
            4,
            True,
            SHAPE,
            ["--gres=gpu:nvidia_a800:2", "--nodes=2", "--ntasks-per-node=1", "--exclusive"],
        ),
        (4, False, SHAPE, ["--gres=gpu:nvidia_a800:2", "--nodes=2", "--ntasks-per-node=1"]),
        (
            6,
            True,
            GresShape("a800", 4, 4),
            ["--gres=gpu:a800:3", "--nodes=2", "--ntasks-per-node=1", "--exclusive"],
        ),
        (16, True, None, ["--gres=gpu:a800:16"]),
        (0, True, SHAPE, []),
    ],
)
def test_gpu_args_ask_for_whole_nodes_for_gangs(
    count: int, gang: bool, shape: GresShape | None, expected: list[str]
) -> None:
    spec = make_spec("true", accelerator="a800", count=count)
    spec = spec.model_copy(update={"gang": gang})
    assert gpu_args(spec, shape) == expected


def test_replicas_become_an_array_with_a_log_per_task(tmp_path: Path) -> None:
    spec = make_spec("serve", accelerator="a800", count=1, memory_gb=2)
    inference = {"user_regions": [{"region": "beijing"}], "latency_slo_ms": 30, "replicas": 3}
    spec = spec.model_validate({**spec.model_dump(), "kind": "inference", "inference": inference})
    args = sbatch_args(spec, name="cn-i-1", folder=tmp_path)
    assert "--array=0-2" in args
    assert f"--output={tmp_path / 'stdout-%a.log'}" in args


def test_multi_node_jobs_spread_memory_and_cpus(tmp_path: Path) -> None:
    spec = make_spec("train", accelerator="a800", count=4, cpu_cores=8, memory_gb=4)
    args = sbatch_args(spec, name="n", folder=tmp_path, shape=SHAPE)
    assert "--mem=2048M" in args and "--cpus-per-task=4" in args


@pytest.mark.parametrize("attempts", [1, 100, 1000])
def test_polling_cost_is_flat_in_the_number_of_attempts(tmp_path: Path, attempts: int) -> None:
    env = fake_slurm_bin(tmp_path / "bin")
    ex = tracked_executor(tmp_path / "state", attempts, env)
    first = ex.poll()
    assert len(first) == attempts and {u.state for u in first} == {JobState.RUNNING}
    assert ex.poll() == []  # nothing changed: nothing reported twice
    assert ex.commands == {"squeue": 2}
    assert polling_cost(tmp_path / "again", attempts, polls=4) == {"squeue": 4}
