"""The offline bundle: built from a fresh clone, installed with no package index (in a network
namespace where one can be made), and the agent it installs runs its preflight."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VERSION = "computenet-offline-"

pytestmark = pytest.mark.bundle


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _offline_prefix() -> list[str]:
    """`unshare -n` where this user may make a network namespace (no network at all inside)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False)
    return [unshare, "-n"] if probe.returncode == 0 else []


def test_bundle_from_a_fresh_clone_installs_offline(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs the project as a git checkout and git")
    clone = tmp_path / "clone"
    _run(["git", "clone", "--quiet", str(ROOT), str(clone)])
    _run(
        [sys.executable, "packaging/bundle.py", "--out", str(tmp_path / "dist")],
        cwd=clone,
        timeout=900,
    )
    (bundle,) = (tmp_path / "dist").glob(f"{VERSION}*.tar.gz")
    with tarfile.open(bundle) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (folder,) = (tmp_path / "unpacked").iterdir()
    assert sorted(p.name for p in (folder / "units").iterdir()) == ["computenet-agent.service"]

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PYTHON": sys.executable}
    prefix = tmp_path / "opt" / "computenet"
    offline = _offline_prefix()
    _run([*offline, "sh", str(folder / "install.sh"), str(prefix)], env=env, timeout=900)

    agent = prefix / "bin" / "computenet-agent"
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "zhangjiakou",
                "broker": "127.0.0.1:50051",
                "capacity": {"source": "static", "pools": [{"model": "a800", "count": 8}]},
                "executor": {"kind": "local"},
                "state_dir": str(tmp_path / "state"),
            }
        )
    )
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    check = _run([str(agent), "check", "--config", str(config)], env=clean, cwd=tmp_path)
    assert "PASS  capacity     a800: 8/8 allocatable" in check.stdout
    unit = _run([str(agent), "install-unit", "--config", str(config)], env=clean)
    assert f"ExecStart={agent} run --config {config}" in unit.stdout.splitlines()
    assert (prefix / "share" / "computenet" / "units" / "computenet-agent.service").is_file()
    # the agent's install carries none of the broker's dependencies
    broker_only = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import sqlalchemy"], env=clean, check=False,
        capture_output=True,
    )  # fmt: skip
    assert broker_only.returncode != 0
