"""The offline `plan` command prints the documented placement JSON and reports bad specs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from broker.commands.plan import plan_command

SPEC = """
name: pretrain
kind: training
resources: {accelerator: 910b, count: 64}
duration_hours: 72
dataset: {origin: shanghai, size_gb: 2000}
command: [python, train.py]
"""


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("plan")(plan_command)

    @app.callback()
    def _root() -> None:
        """Test root, so `plan` stays a sub-command."""

    return app


def test_plan_prints_the_placement_json(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(_app(), ["plan", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"chosen", "candidates"}
    assert doc["chosen"] in {c["site"] for c in doc["candidates"] if c["feasible"]}
    first = doc["candidates"][0]
    assert set(first) == {"site", "feasible", "reason", "terms", "total_cny"}
    assert set(first["terms"]) == {
        "energy",
        "carbon",
        "data_movement",
        "queue_wait",
        "reliability",
        "latency",
    }
    assert len(doc["candidates"]) == 10


def test_plan_prints_a_table(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(_app(), ["plan", str(spec)])
    assert result.exit_code == 0, result.output
    assert "chosen:" in result.stdout


def test_bad_spec_names_each_violation_on_one_line_and_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nkind: training\nduration_hours: -1\n")
    result = CliRunner().invoke(_app(), ["plan", str(spec)])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert f"{spec}:1: command: required field missing" in line
    assert "line 3: duration_hours: must be > 0" in line


def test_bad_topology_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(
        _app(), ["plan", str(spec), "--topology", str(tmp_path / "none.yaml")]
    )
    assert result.exit_code == 2
    assert "no such file" in result.stderr
