"""The offline `plan` command prints the documented placement JSON and reports bad specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from broker.commands.plan import plan_command
from topology import default_topology

TERMS = ("energy", "carbon", "data_movement", "queue_wait", "reliability", "latency")

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
    assert set(first) == {
        "site",
        "feasible",
        "reason",
        "terms",
        "total_cny",
        "accelerator",
        "run_hours",
    }
    assert first["accelerator"] == "910b"
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


ANY_OF = """
name: pretrain-any
kind: training
resources: {accelerators: [a800, 910b, k100ai], reference: a800, count: 64}
duration_hours: 100
command: [python, train.py]
"""


def test_plan_lists_each_feasible_site_and_model_with_its_scaled_duration(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(ANY_OF)
    result = CliRunner().invoke(_app(), ["plan", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    topology = default_topology()
    feasible = [c for c in doc["candidates"] if c["feasible"]]
    # every (site, accepted model) pool of the idle federation, each once
    expected = {
        (site.id, pool.model)
        for site in topology.sites
        for pool in site.pools
        if pool.model in {"a800", "910b", "k100ai"} and pool.count >= 64
    }
    assert {(c["site"], c["accelerator"]) for c in feasible} == expected
    assert len(feasible) == len(expected)
    for c in feasible:
        speed = topology.speed(c["accelerator"], "a800", "llm-training")
        assert c["run_hours"] == pytest.approx(100 / speed)
        assert set(c["terms"]) == set(TERMS)
    models = {c["accelerator"] for c in feasible}
    assert models == {"a800", "910b", "k100ai"}
    hours = {c["accelerator"]: c["run_hours"] for c in feasible}
    assert hours["a800"] == 100 and hours["k100ai"] > hours["910b"] > hours["a800"]
    assert (doc["chosen"], feasible[0]["site"]) == (feasible[0]["site"], doc["chosen"])
    # feasible rows come cheapest first
    totals = [c["total_cny"] for c in feasible]
    assert totals == sorted(totals)


def test_plan_table_shows_the_model_and_hours(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(ANY_OF)
    result = CliRunner().invoke(_app(), ["plan", str(spec)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "model" in result.stdout and "hours" in result.stdout
    assert "k100ai" in result.stdout and "344.8" in result.stdout  # 100 h / 0.29
