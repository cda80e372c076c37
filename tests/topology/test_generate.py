"""The federation generator: valid topology files of any size, the same for the same seed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from computenet.cli.main import app
from topology import default_topology, load_topology, parse_topology
from topology.generate import generate_yaml

runner = CliRunner()


def test_a_thousand_sites_load_and_pass_validation() -> None:
    topo = parse_topology(generate_yaml(1000, seed=1), file="generated.yaml")
    builtin = default_topology()
    assert len(topo.sites) == 1000
    assert len({s.id for s in topo.sites}) == 1000
    # Every site is reachable from every user region over the generated links.
    far = max(topo.rtt_ms(r, s) for r in topo.region_ids for s in topo.site_ids)
    assert far < float("inf")
    # Members spread over every hub of the national network, not a few.
    hubs = Counter(s.hub for s in topo.sites)
    assert set(hubs) == {s.hub for s in builtin.sites}
    assert min(hubs.values()) >= 20
    assert {s.side for s in topo.sites} == {"east", "west"}


def test_members_take_their_cluster_facts_and_catalogue_models() -> None:
    topo = parse_topology(generate_yaml(120, seed=7))
    builtin = {s.id: s for s in default_topology().sites}
    catalogue = {p.model for s in builtin.values() for p in s.pools}
    for site in topo.sites:
        anchor = builtin[site.id.rsplit("-m", 1)[0]] if site.id not in builtin else site
        assert (site.province, site.hub, site.side) == (anchor.province, anchor.hub, anchor.side)
        assert site.carbon_kg_per_kwh == anchor.carbon_kg_per_kwh
        assert site.pools and all(p.count % 8 == 0 for p in site.pools)
        assert site.cpu_cores == site.accelerator_count // 8 * 128
        assert {p.model for p in site.pools} <= catalogue | {"a100", "h100"}
        assert abs(site.lat - anchor.lat) < 5 and abs(site.lon - anchor.lon) < 5


def test_the_built_in_federation_is_kept_whole() -> None:
    topo = parse_topology(generate_yaml(40, seed=2))
    builtin = default_topology()
    by_id = {s.id: s for s in topo.sites}
    assert all(by_id[s.id] == s for s in builtin.sites)
    assert topo.regions == builtin.regions
    assert set(builtin.links) <= set(topo.links)


def test_same_seed_same_text_other_seed_other_sites() -> None:
    assert generate_yaml(60, seed=5) == generate_yaml(60, seed=5)
    a = parse_topology(generate_yaml(60, seed=5))
    b = parse_topology(generate_yaml(60, seed=6))
    assert [s.id for s in a.sites] == [s.id for s in b.sites]
    assert [s.pools for s in a.sites] != [s.pools for s in b.sites]


@settings(max_examples=15, deadline=None)
@given(n_sites=st.integers(min_value=10, max_value=80), seed=st.integers(0, 2**32))
def test_any_size_and_seed_gives_a_valid_federation(n_sites: int, seed: int) -> None:
    topo = parse_topology(generate_yaml(n_sites, seed))
    assert len(topo.sites) == n_sites


def test_cli_writes_a_file_that_validates(tmp_path: Path) -> None:
    out = tmp_path / "fed.yaml"
    result = runner.invoke(app, ["topology", "generate", "--sites", "30", "--seed", "4", "-o", out])
    assert result.exit_code == 0, result.output
    assert len(load_topology(out).sites) == 30
    check = runner.invoke(app, ["topology", "validate", str(out)])
    assert check.exit_code == 0 and "30 sites" in check.stdout


def test_cli_refuses_fewer_sites_than_the_built_in_ones() -> None:
    result = runner.invoke(app, ["topology", "generate", "--sites", "3"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "at least 10" in result.stderr
