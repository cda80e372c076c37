"""The local executor's devices and checkpoint folder, with real processes: each attempt sees its
own devices, frees them when it ends, keeps them across an agent restart, and every attempt of a
job sees the same checkpoint folder."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from computenet.types import JobState
from site_agent.checkpoints import CheckpointTransfer, checkpoint_dir
from site_agent.devices.inventory import static_inventory
from site_agent.executors.base import ExecutorError, Launch, attempt_dir
from site_agent.executors.local import LocalExecutor
from site_agent.records import AttemptRecord, ExecutorUpdate, Phase
from tests.site_agent.helpers import make_spec
from tests.support.waiting import wait_for

ENV_DUMP = (
    'echo "devices=$COMPUTENET_DEVICES ascend=${ASCEND_RT_VISIBLE_DEVICES-unset} '
    'cuda=${CUDA_VISIBLE_DEVICES-unset} checkpoints=$COMPUTENET_CHECKPOINT_DIR"'
)


def held_until(release: Path) -> str:
    """A job that prints its environment, then runs until `release` exists."""
    return f"{ENV_DUMP}; while [ ! -e {release} ]; do sleep 0.05; done"


def launch(job_id: str, script: str, count: int, model: str = "910b", attempt: int = 1) -> Launch:
    spec = make_spec("sh", "-c", script, accelerator=model, count=count)
    return Launch(job_id, attempt, 7, spec, "wuhu")


def env_of(state_dir: Path, job_id: str, attempt: int = 1) -> dict[str, str]:
    """What the attempt printed with ENV_DUMP, once it has."""
    out = attempt_dir(state_dir, job_id, attempt) / "stdout.log"
    text = wait_for(lambda: out.exists() and out.read_text(), what=f"{job_id} to print its env")
    return dict(pair.split("=", 1) for pair in text.split())


def finals(executor: LocalExecutor, count: int) -> list[ExecutorUpdate]:
    seen: list[ExecutorUpdate] = []

    def done() -> bool:
        seen.extend(u for u in executor.poll() if u.state is not JobState.RUNNING)
        return len(seen) >= count

    wait_for(done, what=f"{count} final updates")
    return seen


def ids(value: str) -> set[str]:
    return set(value.split(",")) - {""}


def test_concurrent_attempts_get_disjoint_devices_of_their_vendor(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path, devices=static_inventory([("910b", 4), ("a800", 2)]))
    release = tmp_path / "release"
    ex.start(launch("j1", held_until(release), 2))
    ex.start(launch("j2", held_until(release), 2))
    first, second = env_of(tmp_path, "j1"), env_of(tmp_path, "j2")
    assert len(ids(first["ascend"])) == len(ids(second["ascend"])) == 2
    assert ids(first["ascend"]).isdisjoint(ids(second["ascend"]))
    assert first["devices"] == first["ascend"]
    # NVIDIA cards on the same host are hidden from an Ascend job
    assert first["cuda"] == second["cuda"] == ""
    with pytest.raises(ExecutorError, match="no devices for the attempt: 1 910b devices"):
        ex.start(launch("j3", "true", 1))
    release.touch()
    finals(ex, 2)
    # freed with the final updates: the whole pool is there for the next attempt
    ex.start(launch("j4", ENV_DUMP, 4))
    assert ids(env_of(tmp_path, "j4")["ascend"]) == {"0", "1", "2", "3"}


def test_an_attempt_without_accelerators_sees_none(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path, devices=static_inventory([("a800", 2)]))
    ex.start(launch("j1", ENV_DUMP, 0, model=""))
    env = env_of(tmp_path, "j1")
    assert (env["devices"], env["cuda"], env["ascend"]) == ("", "", "unset")


def test_a_restarted_executor_keeps_the_devices_of_running_attempts(tmp_path: Path) -> None:
    inventory = static_inventory([("a800", 4)])
    release = tmp_path / "release"
    first = LocalExecutor(tmp_path, devices=inventory)
    handle = first.start(launch("j1", held_until(release), 2, model="a800"))
    before = env_of(tmp_path, "j1")
    del first  # the agent process goes away; the attempt runs on

    second = LocalExecutor(tmp_path, devices=inventory)
    spec = make_spec("sh", accelerator="a800", count=2)
    second.recover([AttemptRecord("j1", 1, 7, spec=spec, phase=Phase.LAUNCHED, handle=handle)])
    second.start(launch("j2", held_until(release), 2, model="a800"))
    after = env_of(tmp_path, "j2")
    assert len(ids(after["cuda"])) == 2
    assert ids(before["cuda"]).isdisjoint(ids(after["cuda"]))
    with pytest.raises(ExecutorError, match="0 free"):
        second.start(launch("j3", "true", 1, model="a800"))
    release.touch()
    assert {u.job_id for u in finals(second, 2)} == {"j1", "j2"}
    second.start(launch("j4", ENV_DUMP, 4, model="a800"))
    assert ids(env_of(tmp_path, "j4")["cuda"]) == {"0", "1", "2", "3"}


def test_every_attempt_of_a_job_sees_the_same_checkpoint_folder(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path)
    save = 'echo "step 40" > "$COMPUTENET_CHECKPOINT_DIR/state"'
    ex.start(launch("j1", save, 0, model=""))
    assert [u.state for u in finals(ex, 1)] == [JobState.SUCCEEDED]
    resume = 'cat "$COMPUTENET_CHECKPOINT_DIR/state"; echo "$COMPUTENET_CHECKPOINT_DIR"'
    ex.start(launch("j1", resume, 0, model="", attempt=2))
    assert [u.state for u in finals(ex, 1)] == [JobState.SUCCEEDED]
    out = (attempt_dir(tmp_path, "j1", 2) / "stdout.log").read_text().splitlines()
    folder = checkpoint_dir(tmp_path, "j1")
    assert out == ["step 40", str(folder)]
    assert folder.is_dir() and folder.is_relative_to(tmp_path)
    assert os.listdir(folder) == ["state"]


DOC = Path(__file__).resolve().parents[2] / "docs" / "agent.md"


def test_the_documented_training_script_checkpoints_on_sigterm_and_resumes(tmp_path: Path) -> None:
    (script,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    train = tmp_path / "train.py"
    train.write_text(script)
    state_dir = tmp_path / "state"
    ex = LocalExecutor(state_dir, cancel_grace_s=30)
    ex.start(launch("train", f"exec {sys.executable} {train}", 0, model=""))
    saved = checkpoint_dir(state_dir, "train") / "state.json"
    wait_for(saved.exists, what="a first checkpoint")
    ex.cancel(("train", 1))
    # it exits by itself after saving, well inside the grace, and says it did not finish
    assert [(u.state, u.exit_code) for u in finals(ex, 1)] == [(JobState.FAILED, 143)]
    first = (attempt_dir(state_dir, "train", 1) / "stdout.log").read_text().split("\n")
    assert first[0] == "starting at 0"
    stopped_at = json.loads(saved.read_text())["step"]
    assert first[1] == f"stopped at {stopped_at}"  # saved on SIGTERM, not only every 50 steps
    assert 0 < stopped_at < 500

    # another site resumes it from the store, through COMPUTENET_RESTORE_DIR
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    assert CheckpointTransfer(state_dir, store=store).export("train", 1).ref == "train/1"
    restored = CheckpointTransfer(elsewhere, store=store).restore("train", 3, "train/1")
    there = LocalExecutor(elsewhere)
    moved = launch("train", f"exec {sys.executable} {train}", 0, model="", attempt=3)
    there.start(replace(moved, restore_dir=str(restored)))
    assert [u.state for u in finals(there, 1)] == [JobState.SUCCEEDED]
    third = (attempt_dir(elsewhere, "train", 3) / "stdout.log").read_text().split("\n")
    assert third[:2] == [f"starting at {stopped_at}", "done at 500"]

    ex.start(launch("train", f"exec {sys.executable} {train}", 0, model="", attempt=2))
    assert [u.state for u in finals(ex, 1)] == [JobState.SUCCEEDED]
    second = (attempt_dir(state_dir, "train", 2) / "stdout.log").read_text().split("\n")
    assert second[:2] == [f"starting at {stopped_at}", "done at 500"]
