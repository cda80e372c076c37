"""The `computenet topology` commands, run in-process with typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from computenet.cli.main import app
from topology import default_topology

runner = CliRunner()


def test_show_json_has_the_documented_shape() -> None:
    result = runner.invoke(app, ["topology", "show", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"sites", "user_regions", "links"}
    site_keys = {
        "id",
        "name",
        "province",
        "side",
        "lat",
        "lon",
        "pools",
        "pue",
        "price_cny_per_kwh",
        "carbon_kg_per_kwh",
    }
    assert all(set(site) == site_keys for site in doc["sites"])
    assert all(set(pool) == {"model", "count"} for site in doc["sites"] for pool in site["pools"])
    assert all(set(r) == {"id", "lat", "lon", "demand_weight"} for r in doc["user_regions"])
    assert all(set(x) == {"a", "b", "rtt_ms", "bandwidth_gbps"} for x in doc["links"])
    guian = next(s for s in doc["sites"] if s["id"] == "guian")
    assert guian["price_cny_per_kwh"] == round(
        default_topology().mean_price_cny_per_kwh("guian"), 6
    )


def test_show_tables() -> None:
    result = runner.invoke(app, ["topology", "show"])
    assert result.exit_code == 0, result.output
    assert "horinger" in result.stdout and "beijing" in result.stdout


def test_route_json() -> None:
    result = runner.invoke(
        app, ["topology", "route", "--from", "beijing", "--to", "guian", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"from", "to", "rtt_ms", "bottleneck_gbps", "path"}
    assert doc["path"][0] == "beijing" and doc["path"][-1] == "guian"
    assert doc["rtt_ms"] == default_topology().rtt_ms("beijing", "guian")


def test_route_to_an_unknown_node_exits_2_with_one_line() -> None:
    result = runner.invoke(app, ["topology", "route", "--from", "beijing", "--to", "atlantis"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown node 'atlantis'"
    assert "Traceback" not in result.output


def test_validate_good_and_bad_files(tmp_path: Path) -> None:
    good = runner.invoke(app, ["topology", "validate", "topology/data/china.yaml"])
    assert good.exit_code == 0, good.output
    assert good.stdout.count("\n") == 1 and "10 sites" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        Path("topology/data/china.yaml").read_text().replace("rtt_ms: 30,", "rtt_ms: -1,", 1)
    )
    result = runner.invoke(app, ["topology", "validate", str(bad)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "links[0].rtt_ms: must be > 0 (got -1)" in line and line.startswith(f"{bad}:")


def test_missing_and_malformed_files_exit_2_without_traceback(tmp_path: Path) -> None:
    for args in (
        ["validate", str(tmp_path / "nope.yaml")],
        ["show", "--topology", str(tmp_path / "nope.yaml")],
    ):
        result = runner.invoke(app, ["topology", *args])
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1 and "no such file" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("sites: [\n")
    result = runner.invoke(app, ["topology", "validate", str(broken)])
    assert result.exit_code == 2 and "invalid YAML" in result.stderr
    assert "Traceback" not in result.output


def test_show_png_writes_a_map(tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    result = runner.invoke(app, ["topology", "show", "--png", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
