"""Exporting checkpoints to a real store folder (or through commands) and importing them back."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import pytest

from site_agent.checkpoints import (
    CheckpointError,
    CheckpointTransfer,
    Exported,
    checkpoint_dir,
    copy_atomic,
    restore_dir,
)
from site_agent.executors.base import attempt_dir, claim


def write_checkpoint(state_dir: Path, job_id: str, files: dict[str, bytes]) -> Path:
    folder = checkpoint_dir(state_dir, job_id)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_export_copies_the_folder_to_job_and_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, store = tmp_path / "state", tmp_path / "store"
    write_checkpoint(state, "j1", {"state.json": b'{"step": 7}', "shards/0.bin": b"x" * 5000})
    caplog.set_level(logging.INFO, logger="site_agent.checkpoints")
    exported = CheckpointTransfer(state, store=store).export("j1", 2)
    assert exported == Exported("j1/2", 5011)
    assert (store / "j1" / "2" / "state.json").read_bytes() == b'{"step": 7}'
    assert (store / "j1" / "2" / "shards" / "0.bin").stat().st_size == 5000
    assert sorted(p.name for p in (store / "j1").iterdir()) == ["2"]  # no temp copy left
    line = next(r.getMessage() for r in caplog.records if "checkpoint exported" in r.getMessage())
    assert "bytes=5011" in line and "seconds=" in line and "mb_per_s=" in line


def test_a_second_export_replaces_the_first_whole(tmp_path: Path) -> None:
    state, store = tmp_path / "state", tmp_path / "store"
    write_checkpoint(state, "j1", {"a": b"old", "gone": b"1"})
    transfer = CheckpointTransfer(state, store=store)
    transfer.export("j1", 1)
    (checkpoint_dir(state, "j1") / "gone").unlink()
    (checkpoint_dir(state, "j1") / "a").write_bytes(b"new")
    assert transfer.export("j1", 1) == Exported("j1/1", 3)
    assert sorted(p.name for p in (store / "j1" / "1").iterdir()) == ["a"]
    assert sorted(p.name for p in (store / "j1").iterdir()) == ["1"]


def test_a_copy_that_fails_leaves_no_partial_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok").write_bytes(b"1" * 100)
    dest = tmp_path / "store" / "j1" / "1"

    def full_disk(old: object, new: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("site_agent.checkpoints.os.rename", full_disk)
    with pytest.raises(OSError, match="No space left"):
        copy_atomic(src, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # the temporary copy is gone too


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_nothing_to_export_gives_no_ref_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, make: str
) -> None:
    state, store = tmp_path / "state", tmp_path / "store"
    if make == "empty":
        checkpoint_dir(state, "j1").mkdir(parents=True)
    caplog.set_level(logging.INFO, logger="site_agent.checkpoints")
    assert CheckpointTransfer(state, store=store).export("j1", 1) == Exported()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("empty or missing" in w for w in warnings)
    assert not (store / "j1" / "1").exists()


def test_without_a_store_the_checkpoint_stays_local(tmp_path: Path) -> None:
    state = tmp_path / "state"
    folder = write_checkpoint(state, "j1", {"a": b"1"})
    transfer = CheckpointTransfer(state)
    assert not transfer.configured
    assert transfer.export("j1", 1) == Exported()
    assert (folder / "a").read_bytes() == b"1"


def test_a_failing_export_command_gives_no_ref_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    write_checkpoint(state, "j1", {"a": b"1"})
    fail = f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(\"bucket unreachable\")'"
    transfer = CheckpointTransfer(state, export_command=fail, import_command="true")
    assert transfer.export("j1", 1) == Exported()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("bucket unreachable" in w and "exited 1" in w for w in warnings)


def test_a_hanging_export_command_times_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    write_checkpoint(state, "j1", {"a": b"1"})
    hang = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)'"
    transfer = CheckpointTransfer(state, export_command=hang, import_command="true", timeout_s=0.5)
    assert transfer.export("j1", 1) == Exported()
    assert any("timed out" in r.getMessage() for r in caplog.records)


def test_commands_move_a_checkpoint_both_ways(tmp_path: Path) -> None:
    state, bucket = tmp_path / "state", tmp_path / "bucket"
    write_checkpoint(state, "j1", {"state.json": b'{"step": 3}'})
    copy = f"{shlex.quote(sys.executable)} -c 'import shutil, sys; shutil.copytree(*sys.argv[1:])'"
    transfer = CheckpointTransfer(
        state,
        export_command=f"{copy} {{src}} {bucket}/{{ref}}",
        import_command=f"{copy} {bucket}/{{ref}} {{dest}}/data",
    )
    assert transfer.export("j1", 1) == Exported("j1/1", 11)
    assert (bucket / "j1" / "1" / "state.json").read_bytes() == b'{"step": 3}'
    restored = transfer.restore("j1", 2, "j1/1")
    assert restored == restore_dir(state, "j1", 2)
    assert (restored / "data" / "state.json").read_bytes() == b'{"step": 3}'


def test_restore_imports_into_a_fresh_folder_per_attempt(tmp_path: Path) -> None:
    state, store = tmp_path / "state", tmp_path / "store"
    write_checkpoint(state, "j1", {"state.json": b'{"step": 40}'})
    CheckpointTransfer(state, store=store).export("j1", 1)
    other_site = CheckpointTransfer(tmp_path / "other", store=store)
    stale = restore_dir(tmp_path / "other", "j1", 2)
    stale.mkdir(parents=True)
    (stale / "leftover").write_bytes(b"from a launch cut short")
    restored = other_site.restore("j1", 2, "j1/1")
    assert restored == stale
    assert sorted(p.name for p in restored.iterdir()) == ["state.json"]
    assert (restored / "state.json").read_bytes() == b'{"step": 40}'


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("j1/9", "is not in the store"),
        ("../etc/1", "not a checkpoint name"),
        ("j1", "not a checkpoint name"),
    ],
)
def test_restore_refuses_what_it_cannot_have(tmp_path: Path, ref: str, why: str) -> None:
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(CheckpointError, match=why):
        CheckpointTransfer(tmp_path / "state", store=store).restore("j1", 2, ref)


def test_restore_without_a_store_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint store configured"):
        CheckpointTransfer(tmp_path).restore("j1", 2, "j1/1")


def test_a_failing_import_command_fails_the_restore(tmp_path: Path) -> None:
    fail = f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(\"no such object\")'"
    transfer = CheckpointTransfer(tmp_path, export_command="true", import_command=fail)
    with pytest.raises(CheckpointError, match=r"cannot restore checkpoint j1/1: .*no such object"):
        transfer.restore("j1", 2, "j1/1")


def test_a_restore_for_an_attempt_already_launched_keeps_its_folder(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "j1" / "1").mkdir(parents=True)
    (store / "j1" / "1" / "state.json").write_text("new")
    transfer = CheckpointTransfer(tmp_path, store=store)
    first = transfer.restore("j1", 2, "j1/1")
    (first / "state.json").write_text("being read by the running job")
    claim(attempt_dir(tmp_path, "j1", 2))  # the launch happened before the agent restarted
    assert transfer.restore("j1", 2, "j1/1") == first
    assert (first / "state.json").read_text() == "being read by the running job"


def test_a_failing_import_command_leaves_no_restore_folder(tmp_path: Path) -> None:
    writes_half = "import pathlib, sys; pathlib.Path(sys.argv[1], 'part').touch(); sys.exit(3)"
    half = f"{shlex.quote(sys.executable)} -c {shlex.quote(writes_half)} {{dest}}"
    transfer = CheckpointTransfer(tmp_path, export_command="true", import_command=half)
    with pytest.raises(CheckpointError, match="exited 3"):
        transfer.restore("j1", 2, "j1/1")
    assert list((tmp_path / "restore" / "j1").iterdir()) == []
