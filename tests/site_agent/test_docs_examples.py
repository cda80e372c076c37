"""Every agent config shown in docs/agent.md is a valid config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from site_agent.config import load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent.md"
YAML = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
SCHEDULES = {m.group(1): b for b in YAML if (m := re.match(r"# (\S+\.yaml)\n", b))}
"""Schedule files the doc shows (a block whose first line names the file), by name."""
BLOCKS = [b for b in YAML if b not in SCHEDULES.values()]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_documented_config_loads(block: str, tmp_path: Path) -> None:
    for name, schedule in SCHEDULES.items():  # the files the configs refer to
        (tmp_path / name).write_text(schedule)
    path = tmp_path / "agent.yaml"
    path.write_text(block)
    config = load_config(path)
    assert config.site and config.state_dir.is_absolute()
    if config.tls is not None:
        assert config.tls.cert.name.startswith(config.site)


def test_the_doc_has_the_three_kinds_of_site() -> None:
    sources = {re.search(r"source: (\w+)", b).group(1) for b in BLOCKS if "source:" in b}  # type: ignore[union-attr]
    assert sources >= {"static", "host", "slurm"}


def test_the_doc_shows_a_schedule_file_and_a_config_using_it() -> None:
    assert "prices.yaml" in SCHEDULES
    assert any("schedule: prices.yaml" in b for b in BLOCKS)
