"""The commands themselves at COLUMNS=80: whole site ids and whole reasons, lines that fit,
and `-o wide|json|yaml` beside `--json`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml
from typer.testing import CliRunner

from broker.commands.plan import plan_command
from computenet.cli.main import app as computenet_app
from topology import default_topology

SPEC = """
name: finetune
kind: training
resources: {accelerator: a800, count: 64}
duration_hours: 24
command: [python, train.py]
"""
NARROW = {"COLUMNS": "80"}


def _broker_app() -> typer.Typer:
    app = typer.Typer()
    app.command("plan")(plan_command)

    @app.callback()
    def _root() -> None:
        """Test root, so `plan` stays a sub-command."""

    return app


def _lines_fit(text: str, width: int = 80) -> bool:
    return all(len(line) <= width for line in text.splitlines())


def test_broker_plan_at_80_columns_shows_each_infeasible_sites_whole_reason(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(_broker_app(), ["plan", str(spec)], env=NARROW)
    assert result.exit_code == 0, result.output
    assert _lines_fit(result.stdout), result.stdout
    doc = json.loads(CliRunner().invoke(_broker_app(), ["plan", str(spec), "--json"]).stdout)
    infeasible = {c["site"]: c["reason"] for c in doc["candidates"] if not c["feasible"]}
    assert "no a800 accelerators" in infeasible.values()
    lines = result.stdout.splitlines()
    for site, reason in infeasible.items():
        row = next(line for line in lines if site in line.split())
        assert reason in row, result.stdout  # whole, on the site's own line
    for header in ("site", "feasible", "total", "reason"):
        assert header in lines[1].split(), result.stdout


def test_broker_plan_output_formats(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(SPEC)
    runner = CliRunner()
    as_json = json.loads(runner.invoke(_broker_app(), ["plan", str(spec), "-o", "json"]).stdout)
    as_yaml = yaml.safe_load(runner.invoke(_broker_app(), ["plan", str(spec), "-o", "yaml"]).stdout)
    assert as_yaml["chosen"] == as_json["chosen"]
    assert [c["site"] for c in as_yaml["candidates"]] == [c["site"] for c in as_json["candidates"]]
    wide = runner.invoke(_broker_app(), ["plan", str(spec), "-o", "wide"], env=NARROW)
    assert wide.exit_code == 0 and "energy" in wide.stdout and "latency" in wide.stdout
    clash = runner.invoke(_broker_app(), ["plan", str(spec), "--json", "-o", "yaml"])
    assert clash.exit_code == 2


def test_topology_show_at_80_columns_shows_whole_site_ids() -> None:
    result = CliRunner().invoke(computenet_app, ["topology", "show"], env=NARROW)
    assert result.exit_code == 0, result.output
    assert _lines_fit(result.stdout), result.stdout
    first_words = {line.split()[0] for line in result.stdout.splitlines() if line.split()}
    topo = default_topology()
    assert {s.id for s in topo.sites} <= first_words
    assert {r.id for r in topo.regions} <= first_words
    as_yaml = yaml.safe_load(
        CliRunner().invoke(computenet_app, ["topology", "show", "-o", "yaml"]).stdout
    )
    assert [s["id"] for s in as_yaml["sites"]] == [s.id for s in topo.sites]
