"""Card rent: a default per accelerator model, overridden per site, checked like every figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.topology.test_loader import _doc, _issues
from topology import default_topology, parse_topology

CATALOGUE = (
    "models: {rent: 'assumed'}\n"
    "accelerators:\n"
    "  a800: {memory_gb: 80, tflops_bf16: 312, watts: 400}\n"
    "  h20: {memory_gb: 96, tflops_bf16: 148, watts: 400}\n"
    "card_rent:\n"
    "  tariff_cny_per_card_hour: {a800: 7.0, h20: 6.0}\n"
    "  provenance: {tariff_cny_per_card_hour: 'M:rent'}\n"
)


def _with_pools(site_extra: str = "") -> str:
    return CATALOGUE + _doc(["a", "b"]).replace(
        "    pue: 1.2\n",
        "    pue: 1.2\n    pools: [{model: a800, count: 8}]\n" + site_extra,
        1,
    )


def test_defaults_apply_to_every_site_and_model() -> None:
    topo = parse_topology(_with_pools())
    for site in ("a", "b"):
        assert topo.site(site).card_tariff_cny_per_hour("a800") == 7.0
        # a model the site's file entry lacks is priced too: an agent may report it
        assert topo.site(site).card_tariff_cny_per_hour("h20") == 6.0
    assert topo.site("a").card_tariff_cny_per_hour("unknown") == 0.0


def test_a_site_overrides_the_models_it_names() -> None:
    topo = parse_topology(_with_pools("    tariff_cny_per_card_hour: {a800: 5.5}\n"))
    assert topo.site("a").card_tariff_cny_per_hour("a800") == 5.5
    assert topo.site("a").card_tariff_cny_per_hour("h20") == 6.0
    assert topo.site("b").card_tariff_cny_per_hour("a800") == 7.0


def test_unknown_models_and_bad_provenance_are_reported(tmp_path: Path) -> None:
    text = _with_pools("    tariff_cny_per_card_hour: {zz9: 1.0}\n").replace(
        "{a800: 7.0, h20: 6.0}", "{a800: 7.0, qq1: 6.0}"
    )
    issues = _issues(tmp_path, text.replace("'M:rent'", "'M:nowhere'"))
    assert any("sites[0].tariff_cny_per_card_hour.zz9: unknown accelerator" in i for i in issues)
    assert any("card_rent.tariff_cny_per_card_hour.qq1: unknown accelerator" in i for i in issues)
    assert any("card_rent.provenance.tariff_cny_per_card_hour: unknown models" in i for i in issues)


def test_negative_rent_is_refused(tmp_path: Path) -> None:
    issues = _issues(tmp_path, _with_pools().replace("a800: 7.0", "a800: -1"))
    assert any("card_rent.tariff_cny_per_card_hour.a800" in i for i in issues)


def test_the_default_topology_prices_every_pool() -> None:
    topo = default_topology()
    for site in topo.sites:
        for pool in site.pools:
            assert site.card_tariff_cny_per_hour(pool.model) > 0, (site.id, pool.model)
    west = topo.site("zhongwei").card_tariff_cny_per_hour("h20")
    assert west == pytest.approx(0.85 * topo.site("horinger").card_tariff_cny_per_hour("h20"))
