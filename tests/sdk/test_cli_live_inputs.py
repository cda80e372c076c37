"""How the CLI names the energy inputs of a placement and reads REGION=WEIGHT pairs."""

from __future__ import annotations

import pytest
import typer

from computenet.cli.demand import parse_weights
from computenet.cli.energy_inputs import describe, energy_lines
from computenet.types import CandidateSite, EnergyInputs, Placement, SiteId

AT_10_CST_MS = 1_767_232_800_000  # 2026-01-01T10:00:00+08:00


@pytest.mark.parametrize(
    ("inputs", "text"),
    [
        (None, "price: topology schedule; carbon: topology"),
        (
            EnergyInputs(0.31, 0.0, AT_10_CST_MS),
            "price: reported 0.31 CNY/kWh at 10:00 CST; carbon: topology",
        ),
        (
            EnergyInputs(0.31, 0.52, AT_10_CST_MS),
            "price: reported 0.31 CNY/kWh at 10:00 CST; carbon: reported 0.52 kgCO2/kWh",
        ),
        (
            EnergyInputs(0.0, 0.52, AT_10_CST_MS),
            "price: topology schedule; carbon: reported 0.52 kgCO2/kWh at 10:00 CST",
        ),
    ],
)
def test_describe(inputs: EnergyInputs | None, text: str) -> None:
    assert describe(inputs) == text


def test_energy_lines_name_reporting_sites_then_the_rest() -> None:
    live = EnergyInputs(0.31, 0.0, AT_10_CST_MS)
    placement = Placement(
        chosen=SiteId("a"),
        candidates=(
            CandidateSite(SiteId("a"), True, energy_inputs=live),
            CandidateSite(SiteId("b"), True),
            CandidateSite(SiteId("c"), False, "no free a800"),
        ),
    )
    assert energy_lines(placement) == [
        "energy inputs:",
        "  a: price: reported 0.31 CNY/kWh at 10:00 CST; carbon: topology",
        "  other sites: price: topology schedule; carbon: topology",
    ]
    plain = Placement(chosen=SiteId("b"), candidates=(CandidateSite(SiteId("b"), True),))
    assert energy_lines(plain) == [
        "energy inputs: price: topology schedule; carbon: topology (no site reported live figures)"
    ]
    assert energy_lines(Placement(chosen=None)) == []


def test_weights_keep_order_and_repeats() -> None:
    assert parse_weights(["beijing=2.5", " xian =1", "beijing=0"]) == [
        ("beijing", 2.5),
        ("xian", 1.0),
        ("beijing", 0.0),
    ]


@pytest.mark.parametrize("pair", ["beijing", "=2", "beijing=", "beijing=lots", "beijing=nan"])
def test_a_malformed_pair_is_a_usage_error(pair: str) -> None:
    with pytest.raises(typer.Exit) as exited:
        parse_weights([pair])
    assert exited.value.exit_code == 2
