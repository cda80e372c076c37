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


def _tenant_workload(path: Path) -> Path:
    """Two tenants' a800 jobs: `flood` first, `lab` after it, on the default federation."""
    from broker.simulate import WorkloadJob, export_jobs

    jobs = [
        WorkloadJob(
            job_id=f"{tenant}-{k}",
            submit_s=submit_s + k,
            kind="training",
            accelerator="a800",
            count=8,
            duration_s=3600.0 * (2 + k),
            origin="",
            dataset_gb=0.0,
            user_region="",
            latency_slo_ms=None,
            tenant=tenant,
        )
        for tenant, submit_s, n in (("flood", 0.0, 12), ("lab", 600.0, 3))
        for k in range(n)
    ]
    export_jobs(jobs, path)
    return path


TENANT_KEYS = {
    "jobs",
    "still_queued",
    "wait_mean_h",
    "wait_p95_h",
    "card_hours",
    "card_hour_share",
    "weight_share",
    "slowdown_mean",
    "preempted",
    "lost_card_hours",
}


def test_tenants_json_shape(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(
        "tenancy:\n  fair_share_half_life_h: 12\ntenants:\n  lab: {weight: 2, quota: {a800: 16}}\n",
        encoding="utf-8",
    )
    args = [
        "simulate",
        "--workload",
        str(_tenant_workload(tmp_path / "jobs.csv")),
        "--policy",
        "nearest,greedy",
        "--capacity-scale",
        "0.05",
        "--tenants",
        str(tenants),
        "--preempt",
        "--json",
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    section = json.loads(result.stdout)["tenants"]
    assert set(section) == {"file", "fairness_metric", "preemption", "policies"}
    assert (section["file"], section["preemption"]) == (str(tenants), True)
    assert set(section["policies"]) == {"nearest", "greedy"}
    for sides in section["policies"].values():
        assert set(sides) == {"with_tenancy", "without_tenancy"}
        for side in sides.values():
            assert set(side) == {"jain", "tenants"}
            assert 0.5 <= side["jain"] <= 1.0  # two tenants: J in [1/2, 1]
            assert set(side["tenants"]) == {"flood", "lab"}
            for row in side["tenants"].values():
                assert set(row) == TENANT_KEYS
            assert side["tenants"]["lab"]["weight_share"] == pytest.approx(2 / 3, abs=1e-4)
            assert side["tenants"]["lab"]["jobs"] == 3


def test_tenants_table_says_without_and_with(tmp_path: Path) -> None:
    tenants = tmp_path / "broker.yaml"  # a whole broker config file serves as a tenants file
    tenants.write_text("log_level: INFO\ntenants:\n  lab: {quota: {a800: 16}}\n", encoding="utf-8")
    args = [
        "simulate",
        "--workload",
        str(_tenant_workload(tmp_path / "jobs.csv")),
        "--policy",
        "nearest",
        "--capacity-scale",
        "0.05",
        "--tenants",
        str(tenants),
    ]
    result = CliRunner().invoke(_app(), args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "nearest: tenants, without → with tenancy" in result.stdout
    assert "Jain's index" in result.stdout


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("tenants:\n  lab: {weight: -1}\n", ":2: tenants.lab.weight: "),
        ("tenants:\n  lab:\n    quota: {a800: many}\n", ":3: tenants.lab.quota.a800: "),
        ("tenancy:\n  fair_share_half_life_h: 12\n", ": tenants: missing"),
    ],
)
def test_a_bad_tenants_file_names_file_line_and_field(
    tmp_path: Path, text: str, where: str
) -> None:
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(text, encoding="utf-8")
    args = [
        "simulate",
        "--workload",
        str(_tenant_workload(tmp_path / "jobs.csv")),
        "--tenants",
        str(tenants),
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 2
    assert f"{tenants}{where}" in result.stderr


def test_preempt_needs_tenants(tmp_path: Path) -> None:
    args = ["simulate", "--workload", str(_tenant_workload(tmp_path / "j.csv")), "--preempt"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 2
    assert "--preempt needs --tenants" in result.stderr
