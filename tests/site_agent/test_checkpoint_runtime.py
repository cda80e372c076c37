"""The runtime carries out checkpoint exports and imports with a real local executor, journal and
store folder: the final report names the export, and a restore that fails never starts fresh."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

import pytest

from computenet.types import JobState
from site_agent.checkpoints import CheckpointTransfer, checkpoint_dir
from site_agent.events import CancelReceived, DispatchReceived, Started
from site_agent.executors.base import Launch
from site_agent.executors.local import LocalExecutor
from site_agent.journal import Journal
from site_agent.records import ExecutorUpdate, Report
from site_agent.runtime import AgentRuntime
from site_agent.state import AgentState
from tests.site_agent.helpers import make_spec
from tests.support.waiting import wait_for, wait_for_async

# saves step 7 on SIGTERM, then exits 143 (stopped, not finished)
SAVES_ON_TERM = (
    "trap 'echo 7 > \"$COMPUTENET_CHECKPOINT_DIR/step\"; exit 143' TERM; "
    "echo up > started; sleep 60 & wait"
)


def runtime(tmp_path: Path, store: Path) -> AgentRuntime:
    state_dir = tmp_path / "state"
    return AgentRuntime(
        state=AgentState(),
        journal=Journal(state_dir),
        executor=LocalExecutor(state_dir, cancel_grace_s=30),
        site="wuhu",
        checkpoints=CheckpointTransfer(state_dir, store=store),
    )


def dispatch(command: str, attempt: int = 1, restore_ref: str = "") -> DispatchReceived:
    spec = make_spec("sh", "-c", command, on_site_loss="fail")
    return DispatchReceived(
        f"d{attempt}", attempt, "j1", attempt, attempt, spec, "t1", restore_ref=restore_ref
    )


def final_report(rt: AgentRuntime) -> Report | None:
    finals = [r for r in rt.state.unacked.values() if r.state.is_final]
    return finals[-1] if finals else None


async def drive_until_final(rt: AgentRuntime) -> Report:
    """Poll the executor (as the agent's loop does) until the attempt's final report exists."""
    while (report := final_report(rt)) is None:
        await rt.poll_executor()
        await asyncio.sleep(0.05)  # the agent's poll interval
    return report


def test_a_checkpoint_stop_reports_the_exported_ref(tmp_path: Path) -> None:
    store = tmp_path / "store"

    async def main() -> Report:
        rt = runtime(tmp_path, store)
        await rt.handle(Started("s", rt.clock_ms(), rt.mono_ms()))
        await rt.handle(dispatch(SAVES_ON_TERM))
        started = tmp_path / "state" / "jobs" / "j1" / "1" / "started"
        await wait_for_async(started.exists, what="the job to start")
        await rt.handle(CancelReceived("c", 9, "j1", 1, "moving", checkpoint=True))
        report = await asyncio.wait_for(drive_until_final(rt), 30)
        await rt.transfers_done()
        rt.journal.close()
        return report

    report = asyncio.run(main())
    assert (report.state, report.exit_code, report.message) == (JobState.CANCELLED, 143, "moving")
    assert (report.checkpoint_ref, report.checkpoint_bytes) == ("j1/1", 2)
    assert (store / "j1" / "1" / "step").read_text() == "7\n"


def test_a_restore_that_fails_fails_the_launch_and_starts_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()

    async def main() -> Report | None:
        rt = runtime(tmp_path, store)
        await rt.handle(Started("s", rt.clock_ms(), rt.mono_ms()))
        await rt.handle(dispatch("echo ran > ran", attempt=2, restore_ref="j1/1"))
        await rt.transfers_done()
        rt.journal.close()
        return final_report(rt)

    report = asyncio.run(main())
    assert report is not None
    assert (report.state, report.launch_failed) == (JobState.FAILED, True)
    assert (
        report.message
        == f"cannot restore checkpoint j1/1: checkpoint j1/1 is not in the store {store}"
    )
    assert not (tmp_path / "state" / "jobs" / "j1" / "2").exists()


def test_a_restored_attempt_sees_the_checkpoint_in_its_restore_dir(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "j1" / "1").mkdir(parents=True)
    (store / "j1" / "1" / "step").write_text("7\n")

    async def main() -> Report:
        rt = runtime(tmp_path, store)
        await rt.handle(Started("s", rt.clock_ms(), rt.mono_ms()))
        show = 'cat "$COMPUTENET_RESTORE_DIR/step"; echo "$COMPUTENET_RESTORE_DIR"'
        await rt.handle(dispatch(show, attempt=2, restore_ref="j1/1"))
        report = await asyncio.wait_for(drive_until_final(rt), 30)
        rt.journal.close()
        return report

    report = asyncio.run(main())
    assert report.state is JobState.SUCCEEDED
    out = (tmp_path / "state" / "jobs" / "j1" / "2" / "stdout.log").read_text().splitlines()
    assert out == ["7", str(tmp_path / "state" / "restore" / "j1" / "2")]


# takes a second to save after SIGTERM: longer than no grace at all, well inside a long one
SLOW_SAVE = (
    "trap 'sleep 1; echo 7 > \"$COMPUTENET_CHECKPOINT_DIR/step\"; exit 143' TERM; "
    "echo up > started; sleep 60 & wait"
)


@pytest.mark.parametrize(
    ("checkpoint", "exit_code", "saved"), [(True, 143, True), (False, 137, False)]
)
def test_a_checkpoint_stop_gets_the_checkpoint_grace(
    tmp_path: Path, checkpoint: bool, exit_code: int, saved: bool
) -> None:
    ex = LocalExecutor(tmp_path, cancel_grace_s=0, checkpoint_grace_s=30)
    ex.start(Launch("j1", 1, 1, make_spec("sh", "-c", SLOW_SAVE), "wuhu"))
    wait_for((tmp_path / "jobs" / "j1" / "1" / "started").exists, what="the job to start")
    ex.cancel(("j1", 1), checkpoint=checkpoint)
    finals: list[ExecutorUpdate] = []

    def ended() -> bool:
        finals.extend(u for u in ex.poll() if u.state is not JobState.RUNNING)
        return bool(finals)

    wait_for(ended, what="the job to end")
    assert finals[0].exit_code == exit_code
    assert (checkpoint_dir(tmp_path, "j1") / "step").exists() is saved


def test_an_import_runs_beside_the_agent_and_a_cancel_meanwhile_starts_nothing(
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    # an import that lasts until the test lets it finish (bounded: it gives up after 30 s)
    waits = (
        "import pathlib, sys, time\n"
        "deadline = time.monotonic() + 30\n"
        "while not pathlib.Path(sys.argv[1]).exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "pathlib.Path(sys.argv[2], 'step').write_text('7')\n"
    )
    state_dir = tmp_path / "state"
    rt = AgentRuntime(
        state=AgentState(),
        journal=Journal(state_dir),
        executor=LocalExecutor(state_dir),
        site="wuhu",
        checkpoints=CheckpointTransfer(
            state_dir,
            export_command="true",
            import_command=f"{shlex.quote(sys.executable)} -c {shlex.quote(waits)} {go} {{dest}}",
        ),
    )

    async def main() -> Report | None:
        await rt.handle(Started("s", rt.clock_ms(), rt.mono_ms()))
        await rt.handle(dispatch("echo ran > ran", attempt=2, restore_ref="j1/1"))
        # the agent takes events while the import runs
        await rt.handle(CancelReceived("c", 9, "j1", 2, "moved elsewhere"))
        cancelled = final_report(rt)
        go.touch()
        await rt.transfers_done()
        rt.journal.close()
        return cancelled

    report = asyncio.run(main())
    assert report is not None
    assert (report.state, report.message) == (JobState.CANCELLED, "moved elsewhere")
    assert not (state_dir / "jobs" / "j1" / "2").exists()
