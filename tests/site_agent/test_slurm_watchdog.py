"""The Slurm lease watchdog: its pure decision, then its process lifetime (no Slurm needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from site_agent.executors import slurm_watchdog, wrapper
from site_agent.executors.slurm import SlurmExecutor
from site_agent.executors.slurm_watchdog import Step, decide, to_send
from tests.support.waiting import wait_for

times = st.integers(min_value=0, max_value=10**12)
leads = st.integers(min_value=0, max_value=10**7)
ids = st.lists(st.integers(min_value=1, max_value=10**6).map(str), max_size=8)


@given(expiry=times, lead=leads, now=times)
def test_decide_follows_the_lease(expiry: int, lead: int, now: int) -> None:
    step = decide((expiry, lead), now)
    assert (step is Step.KILL) == (now >= expiry)
    assert (step is Step.HOLD) == (now < expiry - lead)


@given(now=times)
def test_no_lease_of_this_boot_stops_nothing(now: int) -> None:
    assert decide(None, now) is Step.HOLD


@given(expiry=times, lead=leads, now=times, later=st.integers(min_value=0, max_value=10**9))
def test_time_only_escalates_and_a_renewal_only_relaxes(
    expiry: int, lead: int, now: int, later: int
) -> None:
    assert decide((expiry, lead), now + later) >= decide((expiry, lead), now)
    assert decide((expiry + later, lead), now) <= decide((expiry, lead), now)


@given(job_ids=ids, before=st.dictionaries(st.integers(1, 10**6).map(str), st.sampled_from(Step)))
def test_each_job_gets_each_step_once(job_ids: list[str], before: dict[str, Step]) -> None:
    assert to_send(Step.HOLD, job_ids, before) == []
    for step in (Step.TERM, Step.KILL):
        due = to_send(step, job_ids, before)
        assert set(due) == {j for j in job_ids if before.get(j, Step.HOLD) < step}
        after = {**before, **dict.fromkeys(due, step)}
        assert to_send(step, job_ids, after) == []


def test_jobs_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / slurm_watchdog.JOBS_FILE
    assert slurm_watchdog.read_jobs(path) == []
    slurm_watchdog.write_jobs(path, ["12", "7", "12"])
    assert slurm_watchdog.read_jobs(path) == ["12", "7"]


@pytest.fixture
def stand_in_agent() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def spawn_watchdog(state_dir: Path, agent_pid: int) -> subprocess.Popen[bytes]:
    ticks = slurm_watchdog.start_ticks(agent_pid)
    command = [sys.executable, "-I", slurm_watchdog.__file__, str(state_dir), str(agent_pid)]
    return subprocess.Popen([*command, str(ticks)], start_new_session=True)


def owner(state_dir: Path) -> int | None:
    try:
        return int((state_dir / slurm_watchdog.PID_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_watchdog_exits_when_the_agent_is_gone_and_no_job_is_listed(
    tmp_path: Path, stand_in_agent: subprocess.Popen[bytes]
) -> None:
    wrapper.write_lease(tmp_path / slurm_watchdog.LEASE_FILE, wrapper.monotonic_ms() + 600_000, 0)
    dog = spawn_watchdog(tmp_path, stand_in_agent.pid)
    try:
        wait_for(lambda: owner(tmp_path) == dog.pid, what="the watchdog to take the pid file")
        stand_in_agent.send_signal(signal.SIGSTOP)
        wait_for(lambda: proc_state(stand_in_agent.pid) == "T", what="the agent to stop")
        ticks = slurm_watchdog.start_ticks(stand_in_agent.pid)
        assert slurm_watchdog.process_alive(stand_in_agent.pid, ticks)  # stalled is not gone
        assert not slurm_watchdog.process_alive(stand_in_agent.pid, ticks + 1)  # a reused pid is
        assert dog.poll() is None
        stand_in_agent.kill()
        stand_in_agent.wait()
        assert dog.wait(timeout=60) == 0
    finally:
        if dog.poll() is None:
            os.killpg(dog.pid, signal.SIGKILL)
            dog.wait()


def test_a_new_watchdog_replaces_the_old_one(
    tmp_path: Path, stand_in_agent: subprocess.Popen[bytes]
) -> None:
    first = spawn_watchdog(tmp_path, stand_in_agent.pid)
    second = None
    try:
        wait_for(lambda: owner(tmp_path) == first.pid, what="the first watchdog to start")
        second = spawn_watchdog(tmp_path, stand_in_agent.pid)
        assert first.wait(timeout=60) == 0
        assert owner(tmp_path) == second.pid and second.poll() is None
    finally:
        for dog in (first, second):
            if dog is not None and dog.poll() is None:
                os.killpg(dog.pid, signal.SIGKILL)
                dog.wait()


def test_a_restarted_executor_takes_the_watchdog_over(tmp_path: Path) -> None:
    first = SlurmExecutor(tmp_path)
    second = SlurmExecutor(tmp_path)
    try:
        first.set_lease(wrapper.monotonic_ms() + 600_000, 1000)
        old = first.watchdog_pid
        assert old is not None
        wait_for(lambda: owner(tmp_path) == old, what="the first watchdog to start")
        second.recover([])  # a published lease of this boot: enforce it at once
        new = second.watchdog_pid
        assert new is not None and new != old
        wait_for(lambda: owner(tmp_path) == new, what="the new watchdog to take over")
        wait_for(lambda: first._watchdog is not None and first._watchdog.poll() == 0, what="exit")
    finally:
        for ex in (first, second):
            if ex._watchdog is not None and ex._watchdog.poll() is None:
                os.killpg(ex._watchdog.pid, signal.SIGKILL)
                ex._watchdog.wait()
