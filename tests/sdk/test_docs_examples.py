"""The documented specs load as they are written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from computenet.spec import load_spec, parse_spec

DOCS = Path(__file__).resolve().parents[2] / "docs"

MINIMAL = """\
name: smoke
kind: batch
resources: {accelerator: a800, count: 1}
duration_hours: 0.01
command: ["sh", "-c", "echo hello"]
"""


@pytest.mark.parametrize("name", ["training", "inference", "batch"])
def test_example_files_load(name: str) -> None:
    spec = load_spec(DOCS / "examples" / f"{name}.yaml")
    assert spec.kind == name


def test_the_minimal_spec_is_documented_and_accepted_as_is() -> None:
    assert MINIMAL in (DOCS / "jobs.md").read_text(encoding="utf-8")
    spec = parse_spec(yaml.safe_load(MINIMAL))
    assert (spec.resources.accelerator, spec.resources.count, spec.command) == (
        "a800", 1, ("sh", "-c", "echo hello"),
    )  # fmt: skip


def test_every_yaml_block_of_the_reference_is_a_valid_spec() -> None:
    text = (DOCS / "jobs.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 3
    for block in blocks:
        parse_spec(yaml.safe_load(block))


def test_examples_in_the_reference_match_the_files() -> None:
    text = (DOCS / "jobs.md").read_text(encoding="utf-8")
    for name in ("training", "inference"):
        body = (DOCS / "examples" / f"{name}.yaml").read_text(encoding="utf-8")
        spec_lines = "".join(line for line in body.splitlines(True) if not line.startswith("#"))
        assert spec_lines in text, name
