"""The systemd units ship in the package, the docs show them as shipped, and install-unit fills
in this installation's agent and config."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from site_agent.systemd import AGENT_UNIT, BROKER_UNIT, agent_unit, shipped_unit

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = """\
site: zhangjiakou
broker: 127.0.0.1:50051
capacity: {source: static, pools: [{model: a800, count: 8}]}
executor: {kind: local}
state_dir: ./agent-state
"""


def ini_blocks(doc: Path) -> list[str]:
    return re.findall(r"```ini\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize(
    ("doc", "package", "unit"),
    [("agent.md", "site_agent", AGENT_UNIT), ("agent.md", "broker", BROKER_UNIT)],
)
def test_docs_show_the_shipped_units(doc: str, package: str, unit: str) -> None:
    assert shipped_unit(package, unit) in ini_blocks(ROOT / "docs" / doc)


def test_units_are_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'site_agent = ["units/*.service"]' in text
    assert 'broker = ["units/*.service"]' in text


def agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "site_agent", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_install_unit_runs_this_installation_with_the_given_config(tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text(MINIMAL)
    printed = agent("install-unit", "--config", "agent.yaml", cwd=tmp_path)
    assert (printed.returncode, printed.stderr) == (0, "")
    exec_start = [line for line in printed.stdout.splitlines() if line.startswith("ExecStart=")]
    script = Path(sys.prefix) / "bin" / "computenet-agent"
    expected = script if script.is_file() else Path("/opt/computenet/bin/computenet-agent")
    assert exec_start == [f"ExecStart={expected} run --config {tmp_path / 'agent.yaml'}"]
    rest = [line for line in printed.stdout.splitlines() if not line.startswith("ExecStart=")]
    assert rest == [
        line for line in shipped_unit("site_agent", AGENT_UNIT).splitlines()
        if not line.startswith("ExecStart=")
    ]  # fmt: skip
    folder = tmp_path / "systemd"
    folder.mkdir()
    written = agent("install-unit", "-c", "agent.yaml", "--output", str(folder), cwd=tmp_path)
    assert written.returncode == 0
    assert (folder / AGENT_UNIT).read_text() == printed.stdout


def test_install_unit_refuses_a_broken_config(tmp_path: Path) -> None:
    (tmp_path / "agent.yaml").write_text(MINIMAL.replace("static", "magic"))
    proc = agent("install-unit", "--config", "agent.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("computenet-agent: error: agent.yaml:3: capacity.source")


def test_paths_with_spaces_are_quoted() -> None:
    text = agent_unit(Path("/etc/compute net/agent.yaml"), Path("/opt/my env/bin/computenet-agent"))
    assert (
        'ExecStart="/opt/my env/bin/computenet-agent" run --config "/etc/compute net/agent.yaml"'
        in text.splitlines()
    )
