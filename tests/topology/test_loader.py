"""Loader errors name the file, the line and the field of every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from topology import TopologyError, load_topology, parse_topology

SITE = """\
  - id: {id}
    name: Site {id}
    province: P
    hub: h
    lat: 30.0
    lon: 110.0
    side: east
    kind: cloud
    cpu_cores: 64
    memory_gb: 512
    interconnect_gbps: 200
    pue: 1.2
    price_cny_per_kwh: {prices}
    carbon_kg_per_kwh: 0.5
    green_share: 0.1
    mtbf_hours: 500
"""
PRICES = "[" + ", ".join(["0.5"] * 24) + "]"


def _doc(sites: list[str], regions: str = "", links: str = "") -> str:
    text = "sites:\n" + "".join(SITE.format(id=s, prices=PRICES) for s in sites)
    text += "user_regions:\n" + regions if regions else ""
    text += "links:\n" + links if links else ""
    return text


def _issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "topo.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    return [str(issue) for issue in info.value.issues]


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return lines[occurrence - 1]


def test_valid_document_loads(tmp_path: Path) -> None:
    text = _doc(
        ["a", "b"],
        "  - {id: r, lat: 31, lon: 111, demand_weight: 1}\n",
        "  - {a: a, b: b, rtt_ms: 5, bandwidth_gbps: 100}\n"
        "  - {a: r, b: a, rtt_ms: 2, bandwidth_gbps: 10}\n",
    )
    (tmp_path / "ok.yaml").write_text(text)
    topo = load_topology(tmp_path / "ok.yaml")
    assert topo.rtt_ms("r", "b") == 7


def test_unknown_node_in_a_link(tmp_path: Path) -> None:
    text = _doc(
        ["a", "b"],
        links="  - {a: a, b: b, rtt_ms: 5, bandwidth_gbps: 100}\n"
        "  - {a: a, b: ghost, rtt_ms: 5, bandwidth_gbps: 100}\n",
    )
    line = _line_of(text, "ghost")
    assert _issues(tmp_path, text) == [
        f"{tmp_path / 'topo.yaml'}:{line}: links[1].b: unknown node 'ghost'"
    ]


def test_duplicate_id(tmp_path: Path) -> None:
    text = _doc(["a", "a"])
    (issue,) = _issues(tmp_path, text)
    assert f"topo.yaml:{_line_of(text, '- id: a', 2)}: sites[1].id: duplicate id 'a'" in issue


def test_duplicate_id_across_sites_and_regions(tmp_path: Path) -> None:
    text = _doc(["a"], "  - {id: a, lat: 31, lon: 111, demand_weight: 1}\n")
    (issue,) = _issues(tmp_path, text)
    assert f":{_line_of(text, '{id: a')}: user_regions[0].id: duplicate id 'a'" in issue


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("rtt_ms", "-1", "must be > 0 (got -1)"),
        ("rtt_ms", "0", "must be > 0 (got 0)"),
        ("bandwidth_gbps", "0", "must be > 0 (got 0)"),
        ("bandwidth_gbps", "-40", "must be > 0 (got -40)"),
    ],
)
def test_non_positive_rtt_or_bandwidth(
    tmp_path: Path, field: str, value: str, expected: str
) -> None:
    values = {"rtt_ms": "5", "bandwidth_gbps": "100", field: value}
    link = "".join(f"    {name}: {number}\n" for name, number in values.items())
    text = _doc(["a", "b"], links="  - a: a\n    b: b\n" + link)
    line = _line_of(text, f"    {field}: {value}")
    assert _issues(tmp_path, text) == [
        f"{tmp_path / 'topo.yaml'}:{line}: links[0].{field}: {expected}"
    ]


def test_price_schedule_of_the_wrong_length(tmp_path: Path) -> None:
    text = _doc(["a"]).replace(PRICES, "[0.5, 0.6, 0.7]")
    (issue,) = _issues(tmp_path, text)
    line = _line_of(text, "price_cny_per_kwh")
    assert issue.endswith(
        f"topo.yaml:{line}: sites[0].price_cny_per_kwh: must have 24 hourly values (got 3)"
    )


def test_region_that_cannot_reach_any_site(tmp_path: Path) -> None:
    regions = (
        "  - {id: r1, lat: 31, lon: 111, demand_weight: 1}\n"
        "  - {id: r2, lat: 32, lon: 112, demand_weight: 1}\n"
    )
    text = _doc(["a"], regions, "  - {a: r1, b: a, rtt_ms: 3, bandwidth_gbps: 10}\n")
    (issue,) = _issues(tmp_path, text)
    assert issue.endswith(
        f":{_line_of(text, 'id: r2')}: user_regions[1].id: region 'r2' cannot reach any site"
    )


def test_many_problems_are_all_reported_in_line_order(tmp_path: Path) -> None:
    text = _doc(["a"]).replace("pue: 1.2", "pue: 0.5").replace("kind: cloud", "kind: quantum")
    issues = _issues(tmp_path, text)
    assert [i.split(": ", 1)[1] for i in issues] == [
        "sites[0].kind: must be one of 'hpc', 'cloud' or 'intelligent' (got 'quantum')",
        "sites[0].pue: must be >= 1 (got 0.5)",
    ]


def test_tariff_with_a_time_of_use_profile(tmp_path: Path) -> None:
    text = (
        "tou_profiles:\n  east:\n"
        "    - {hours: [0, 8], multiplier: 0.5}\n"
        "    - {hours: [22, 24], multiplier: 0.5}\n"
    )
    text += _doc(["a"]).replace(
        f"price_cny_per_kwh: {PRICES}", "tariff: {flat_cny_per_kwh: 0.8, profile: east}"
    )
    topo = parse_topology(text)
    assert topo.price_cny_per_kwh("a", 3) == pytest.approx(0.4)
    assert topo.price_cny_per_kwh("a", 12.5) == pytest.approx(0.8)
    assert topo.mean_price_cny_per_kwh("a") == pytest.approx((14 * 0.8 + 10 * 0.4) / 24)
    bad = text.replace("profile: east}", "profile: west}")
    (issue,) = _issues(tmp_path, bad)
    assert (
        f":{_line_of(bad, 'profile: west')}: sites[0].tariff.profile: unknown tou profile 'west'"
        in issue
    )


def test_unknown_field_and_unknown_accelerator(tmp_path: Path) -> None:
    text = _doc(["a"]).replace(
        "    pue: 1.2\n", "    pue: 1.2\n    colour: red\n    pools: [{model: zz9, count: 8}]\n"
    )
    (issue,) = _issues(tmp_path, text)
    assert f":{_line_of(text, 'colour')}: sites[0].colour: unknown field" in issue
    fixed = text.replace("    colour: red\n", "")
    (issue,) = _issues(tmp_path, fixed)
    assert f":{_line_of(fixed, 'zz9')}: sites[0].pools[0].model: unknown accelerator 'zz9'" in issue


def test_provenance_must_reference_known_sources(tmp_path: Path) -> None:
    text = "sources: {census: 'NBS 2021'}\n" + _doc(["a"]).replace(
        "    pue: 1.2\n", "    pue: 1.2\n    provenance: {pue: 'S:census,nowhere', lat: 'guess'}\n"
    )
    issues = _issues(tmp_path, text)
    assert any("sites[0].provenance.pue: unknown sources key(s) nowhere" in i for i in issues)
    assert any("sites[0].provenance.lat: must look like" in i for i in issues)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(tmp_path / "absent.yaml")
    assert str(info.value) == f"{tmp_path / 'absent.yaml'}: no such file"
    (issue,) = _issues(tmp_path, "sites: [\n  {id: a\n")
    assert issue.startswith(f"{tmp_path / 'topo.yaml'}:") and "invalid YAML" in issue
    (issue,) = _issues(tmp_path, "- just\n- a list\n")
    assert issue.endswith("top level must be a mapping")
