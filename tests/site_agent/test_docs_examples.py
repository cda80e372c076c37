"""Every agent config shown in docs/agent.md is a valid config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from site_agent.config import load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_documented_config_loads(block: str, tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(block)
    config = load_config(path)
    assert config.site and config.state_dir.is_absolute()
    if config.tls is not None:
        assert config.tls.cert.name.startswith(config.site)


def test_the_doc_has_the_three_kinds_of_site() -> None:
    sources = {re.search(r"source: (\w+)", b).group(1) for b in BLOCKS if "source:" in b}  # type: ignore[union-attr]
    assert sources >= {"static", "host", "slurm"}
