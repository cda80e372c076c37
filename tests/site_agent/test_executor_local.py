"""The local executor for real: subprocesses, exit codes, logs, cancel, and restart recovery."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from computenet.types import JobState
from site_agent.executors.base import ExecutorError, Launch, attempt_dir
from site_agent.executors.local import LocalExecutor
from site_agent.records import AttemptRecord, ExecutorUpdate, Phase
from tests.site_agent.helpers import make_spec
from tests.support.waiting import wait_for


def launch(job_id: str, *command: str) -> Launch:
    return Launch(job_id, 1, 7, make_spec(*command), "zhangjiakou")


def wait_final(executor: LocalExecutor, timeout_s: float = 20) -> list[ExecutorUpdate]:
    seen: list[ExecutorUpdate] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen += executor.poll()
        if seen and seen[-1].state is not JobState.RUNNING:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no final update within {timeout_s}s: {seen}")


def test_failing_command_reports_its_exit_code(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path)
    ex.start(launch("j1", "sh", "-c", "exit 3"))
    updates = wait_final(ex)
    assert [u.state for u in updates] == [JobState.RUNNING, JobState.FAILED]
    assert updates[-1].exit_code == 3


def test_echo_succeeds_and_logs_with_job_environment(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path)
    ex.start(launch("j2", "sh", "-c", 'echo hello; echo "$COMPUTENET_JOB_ID/$COMPUTENET_SITE"'))
    updates = wait_final(ex)
    assert (updates[-1].state, updates[-1].exit_code) == (JobState.SUCCEEDED, 0)
    folder = attempt_dir(tmp_path, "j2", 1)
    assert (folder / "stdout.log").read_text() == "hello\nj2/zhangjiakou\n"


def test_missing_binary_is_a_launch_failure_not_an_exit_code(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path)
    ex.start(launch("j3", "/nonexistent/binary"))
    updates = wait_final(ex)
    # It never ran: no RUNNING first, and the update says it failed to launch.
    assert [u.state for u in updates] == [JobState.FAILED]
    assert updates[-1].launch_failed
    assert "/nonexistent/binary" in updates[-1].message
    assert "No such file" in updates[-1].message
    assert "cannot start" in (attempt_dir(tmp_path, "j3", 1) / "stderr.log").read_text()


def test_a_command_that_runs_and_exits_127_is_its_own_failure(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path)
    ex.start(launch("j3b", "sh", "-c", "exit 127"))
    updates = wait_final(ex)
    assert (updates[-1].state, updates[-1].exit_code) == (JobState.FAILED, 127)
    assert not updates[-1].launch_failed


@pytest.mark.parametrize(
    ("command", "env", "words"),
    [
        ((), {}, "command is empty"),
        (("sh", "-c", "echo a\0b"), {}, "argument 3 of the command holds a NUL byte"),
        (("sh", "\ud800"), {}, "argument 2 of the command cannot be encoded"),
        (("true",), {"A=B": "1"}, "name 'A=B' is not valid"),
        (("true",), {"": "1"}, "name '' is not valid"),
        (("true",), {"X": "a\0"}, "variable 'X' holds a NUL byte"),
    ],
)
def test_what_the_os_cannot_take_is_refused_with_its_reason(
    tmp_path: Path, command: tuple[str, ...], env: dict[str, str], words: str
) -> None:
    ex = LocalExecutor(tmp_path, env={"PATH": os.environ["PATH"], **env})
    # model_copy skips validation, as a hostile or buggy broker might.
    spec = make_spec().model_copy(update={"command": command})
    with pytest.raises(ExecutorError, match=re.escape(words)):
        ex.start(Launch("j6", 1, 7, spec, "zhangjiakou"))
    assert ex.poll() == []


def wait_output(state_dir: Path, job_id: str, text: str) -> None:
    """Wait until the attempt's stdout holds `text`: the job itself says it got that far."""
    stdout = attempt_dir(state_dir, job_id, 1) / "stdout.log"
    wait_for(
        lambda: stdout.exists() and text in stdout.read_text(), what=f"{job_id} to print {text}"
    )


def test_cancel_ends_sleep_within_the_grace(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path, cancel_grace_s=30)
    ex.start(launch("j4", "sh", "-c", "echo started; exec sleep 60"))
    wait_output(tmp_path, "j4", "started")
    ex.cancel(("j4", 1))
    updates = wait_final(ex, timeout_s=60)
    # Ended by the SIGTERM (128 + 15), so within the grace: after it, SIGKILL would give 128 + 9.
    assert updates[-1].state is JobState.FAILED
    assert updates[-1].exit_code == 128 + 15


def test_cancel_kills_a_job_that_ignores_sigterm(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path, cancel_grace_s=0.5)
    ex.start(launch("j5", "sh", "-c", "trap '' TERM; echo ignoring; sleep 60"))
    wait_output(tmp_path, "j5", "ignoring")
    ex.cancel(("j5", 1))
    updates = wait_final(ex, timeout_s=10)
    assert updates[-1].state is JobState.FAILED
    assert updates[-1].exit_code == 128 + 9


def test_restarted_executor_recovers_without_rerunning(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    script = f"echo run >> {runs}; sleep 1; exit 4"
    first = LocalExecutor(tmp_path / "state")
    handle = first.start(launch("j6", "sh", "-c", script))
    # Running once the wrapper has started the command.
    seen: list[ExecutorUpdate] = []

    def started() -> bool:
        seen.extend(first.poll())
        return bool(seen)

    wait_for(started, what="j6 to start")
    assert [u.state for u in seen] == [JobState.RUNNING]

    second = LocalExecutor(tmp_path / "state")
    record = AttemptRecord("j6", 1, 7, spec=make_spec("sh"), phase=Phase.LAUNCHED, handle=handle)
    second.recover([record])
    updates = wait_final(second)
    assert (updates[-1].state, updates[-1].exit_code) == (JobState.FAILED, 4)
    assert second.start(launch("j6", "sh", "-c", script)) == handle
    assert runs.read_text() == "run\n"


def test_recover_after_job_finished_while_agent_was_down(tmp_path: Path) -> None:
    first = LocalExecutor(tmp_path)
    handle = first.start(launch("j7", "true"))
    exit_code = attempt_dir(tmp_path, "j7", 1) / "exit_code"
    wait_for(exit_code.exists, what="j7's recorded exit code")
    second = LocalExecutor(tmp_path)
    record = AttemptRecord("j7", 1, 7, phase=Phase.LAUNCHED, handle=handle)
    second.recover([record])
    assert [u.state for u in second.poll()] == [JobState.RUNNING, JobState.SUCCEEDED]


def test_claimed_but_never_launched_is_reported_lost(tmp_path: Path) -> None:
    folder = attempt_dir(tmp_path, "j8", 1)
    folder.mkdir(parents=True)
    (folder / "claim").touch()
    ex = LocalExecutor(tmp_path)
    ex.start(launch("j8", "true"))
    [update] = ex.poll()
    assert update.state is JobState.FAILED
    assert not (folder / "stdout.log").exists()


def test_cancel_of_unknown_attempt_reports_cancelled(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path)
    ex.cancel(("nope", 1))
    assert ex.poll() == [ExecutorUpdate("nope", 1, JobState.CANCELLED, 0, "not running")]


def test_job_runs_in_its_own_process_group(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path)
    handle = ex.start(launch("j9", "sh", "-c", "ps -o pgid= -p $$"))
    wait_final(ex)
    pgid = int((attempt_dir(tmp_path, "j9", 1) / "stdout.log").read_text().strip())
    assert pgid == int(handle) != os.getpgid(0)
