"""The `simulate` command registered on a local typer app: JSON shape, table, plot and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from broker.commands.simulate import DEFAULT_CAPACITY_SCALE, simulate_command

POLICY_KEYS = {
    "energy_cny",
    "energy_kwh",
    "carbon_t",
    "slo_attainment",
    "jct_mean_h",
    "jct_p95_h",
    "wait_mean_h",
    "wait_p95_h",
    "utilization",
    "data_moved_tb",
    "decision_ms_p50",
    "total_cost_cny",
    "lp_gap",
    "jobs",
    "still_queued",
    "too_large",
}


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test app."""

    app.command("simulate")(simulate_command)
    return app


@pytest.mark.usefixtures("traces_present")
def test_json_shape(tmp_path: Path) -> None:
    export = tmp_path / "jobs.csv"
    args = [
        "simulate",
        "--workload",
        "philly,alibaba-genai",
        "--limit",
        "150",
        "--json",
        "--policy",
        "nearest,cheapest-energy,random,greedy,optimal",
        "--seed",
        "2",
        "--export-workload",
        str(export),
        "--plot",
        str(tmp_path / "p.png"),
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {
        "policies",
        "workload",
        "topology",
        "capacity_scale",
        "seed",
        "offered_load",
        "load_target",
        "arrival_factor",
        "speed_blind",
    }
    assert (document["workload"], document["topology"]) == ("philly,alibaba-genai", "default")
    assert (document["capacity_scale"], document["seed"]) == (DEFAULT_CAPACITY_SCALE, 2)
    assert (document["load_target"], document["arrival_factor"]) == (None, 1.0)
    offered = document["offered_load"]
    assert set(offered) == {"overall", "classes", "class_models", "window_h", "demand_card_h"}
    assert offered["classes"]["any"] == offered["overall"] > 0
    policies = document["policies"]
    assert list(policies) == ["nearest", "cheapest-energy", "random", "greedy", "optimal"]
    for name, metrics in policies.items():
        assert set(metrics) == POLICY_KEYS, name
        assert set(metrics["utilization"]) == {"overall", "east", "west", "classes"}
        assert set(metrics["utilization"]["classes"]) == set(offered["classes"])
        assert 0.0 <= metrics["slo_attainment"] <= 1.0
        assert metrics["jct_mean_h"] > 0 and metrics["jct_p95_h"] > 0
        assert metrics["jobs"] == 150
        assert (metrics["lp_gap"] is None) == (name != "optimal")
    assert len(export.read_text().splitlines()) == 151
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_table_on_a_normalised_file(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text(
        "submit_s,kind,accelerator,count,duration_s,origin,dataset_gb,user_region,"
        "latency_slo_ms,tenant\n"
        "0,training,,8,36000,,200,,,a\n"
        "0,inference,,2,3600,,,,20,b\n"
    )
    result = CliRunner().invoke(
        _app(), ["simulate", "--workload", str(path), "--policy", "nearest,greedy"]
    )
    assert result.exit_code == 0, result.output
    assert "energy (CNY)" in result.stdout and "greedy" in result.stdout
    assert "offered load" in result.stdout


def test_usage_errors_exit_2() -> None:
    runner = CliRunner()
    bad_policy = runner.invoke(_app(), ["simulate", "--policy", "fastest"])
    assert bad_policy.exit_code == 2 and "unknown policy 'fastest'" in bad_policy.output
    bad_workload = runner.invoke(_app(), ["simulate", "--workload", "nope.csv"])
    assert bad_workload.exit_code == 2 and "unknown workload" in bad_workload.output


@pytest.mark.usefixtures("traces_present")
def test_load_sets_the_offered_load_and_reports_every_policy_metric() -> None:
    args = ["simulate", "--workload", "philly,alibaba-genai", "--limit", "300", "--json"]
    args += ["--load", "0.8", "--policy", "nearest,greedy,optimal", "--seed", "1"]
    args += ["--capacity-scale", "0.005"]  # 300 jobs cannot load the default federation
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["load_target"] == 0.8
    assert document["offered_load"]["overall"] == pytest.approx(0.8, rel=1e-3)
    assert document["arrival_factor"] != 1.0
    for metrics in document["policies"].values():
        assert metrics["jct_mean_h"] > 0 and metrics["jct_p95_h"] > 0
        assert metrics["slo_attainment"] is not None and 0.0 <= metrics["slo_attainment"] <= 1.0
        assert metrics["energy_cny"] > 0 and metrics["total_cost_cny"] >= metrics["energy_cny"]
        assert 0.0 < metrics["utilization"]["overall"] <= 1.0


def test_an_unreachable_load_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text(
        "submit_s,kind,accelerator,count,duration_s,origin,dataset_gb,user_region,"
        "latency_slo_ms,tenant\n"
        "0,training,,8,36000,,200,,,a\n"
        "600,training,,8,36000,,200,,,a\n"
    )
    result = CliRunner().invoke(_app(), ["simulate", "--workload", str(path), "--load", "5"])
    assert result.exit_code == 2
    assert "out of reach" in result.output
