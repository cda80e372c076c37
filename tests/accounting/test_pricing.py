"""Pricing a stretch of a run: card-hours and rent by model, energy over the CST window, days."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.accounting.pricing import (
    card_tariff,
    card_watts,
    cst_day,
    cst_day_start_ms,
    next_stretch,
    price_stretch,
    split_by_cst_day,
)
from broker.store.accounting import AttemptRun
from computenet.types import JobId, SiteId, TenantId
from topology import default_topology
from topology.energy import run_energy

TOPO = default_topology()
H = 3_600_000
DAY0 = cst_day_start_ms("2026-12-05")


def _run(site: str = "horinger", pools=(("a800", 8),), **times: int) -> AttemptRun:
    return AttemptRun(JobId("j"), 1, TenantId("t"), SiteId(site), tuple(pools), 16.0, DAY0, **times)


def test_cst_days_begin_at_midnight_cst() -> None:
    assert cst_day(DAY0) == "2026-12-05"
    assert cst_day(DAY0 - 1) == "2026-12-04"
    assert DAY0 % (24 * H) == 16 * H  # 00:00 CST is 16:00 UTC the day before


def test_a_stretch_over_midnight_is_cut_there() -> None:
    assert split_by_cst_day(DAY0 - H, DAY0 + 2 * H) == [(DAY0 - H, DAY0), (DAY0, DAY0 + 2 * H)]
    assert split_by_cst_day(DAY0, DAY0) == []


def test_one_hour_of_eight_cards_at_a_known_site() -> None:
    inc = price_stretch(TOPO, _run(), DAY0 + 10 * H, DAY0 + 11 * H)
    [line] = inc.lines
    energy = run_energy(TOPO, "horinger", 8 * 400.0, 10.0, 1.0)
    assert (line.model, line.day, line.cards) == ("a800", "2026-12-05", 8)
    assert line.card_hours == pytest.approx(8.0)
    assert line.card_cny == pytest.approx(8.0 * 7.0)
    assert (line.kwh, line.energy_cny, line.carbon_kg) == pytest.approx(
        (energy.kwh, energy.cny, energy.carbon_kg)
    )
    assert line.kwh > 0 and line.carbon_kg > 0


def test_site_overrides_and_unknown_models() -> None:
    assert card_tariff(TOPO, "zhongwei", "h20") == pytest.approx(5.1)
    assert card_tariff(TOPO, "nowhere", "h20") == 0.0
    assert card_watts(TOPO, "zhongwei", "a800") == 400.0  # from another site's pool
    inc = price_stretch(TOPO, _run(pools=(("zz9", 4),)), DAY0, DAY0 + H)
    [line] = inc.lines
    assert line.card_hours == 4.0 and line.card_cny == line.kwh == line.energy_cny == 0.0


def test_host_only_runs_price_nothing_but_advance() -> None:
    inc = price_stretch(TOPO, _run(pools=(("", 0),)), DAY0, DAY0 + H)
    assert inc.lines == () and (inc.from_unix_ms, inc.to_unix_ms) == (DAY0, DAY0 + H)


def test_next_stretch_runs_to_now_or_to_the_end() -> None:
    assert next_stretch(_run(accounted_until_unix_ms=DAY0), DAY0 + 5) == (DAY0, DAY0 + 5)
    ended = _run(ended_unix_ms=DAY0 + 3, accounted_until_unix_ms=DAY0)
    assert next_stretch(ended, DAY0 + 99) == (DAY0, DAY0 + 3)
    assert next_stretch(_run(accounted_until_unix_ms=DAY0 + 9), DAY0 + 9) is None


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 3 * 24 * H),
    length=st.integers(1, 3 * 24 * H),
    cuts=st.lists(st.integers(1, 3 * 24 * H), max_size=4),
    site=st.sampled_from(["zhangjiakou", "horinger", "zhongwei", "shaoguan"]),
)
def test_pricing_in_pieces_adds_up_to_pricing_at_once(
    start: int, length: int, cuts: list[int], site: str
) -> None:
    pools = tuple((p.model, 8) for p in TOPO.site(site).pools)
    run = _run(site=site, pools=pools)
    begin, end = DAY0 + start, DAY0 + start + length
    points = sorted({begin, end, *(begin + c for c in cuts if c < length)})
    pieces = [price_stretch(TOPO, run, a, b) for a, b in itertools.pairwise(points)]
    lines = [line for piece in pieces for line in piece.lines]
    hours = length / H
    assert math.fsum(x.card_hours for x in lines) == pytest.approx(8 * len(pools) * hours)
    rent = sum(8 * hours * TOPO.site(site).card_tariff_cny_per_hour(m) for m, _ in pools)
    assert math.fsum(x.card_cny for x in lines) == pytest.approx(rent)
    watts = sum(8 * p.watts for p in TOPO.site(site).pools)
    start_hour = ((begin - DAY0) / H) % 24
    whole = run_energy(TOPO, site, watts, start_hour, hours)
    assert math.fsum(x.energy_cny for x in lines) == pytest.approx(whole.cny)
    assert math.fsum(x.kwh for x in lines) == pytest.approx(whole.kwh)
    assert {x.day for x in lines} == {cst_day(a) for a, _ in split_by_cst_day(begin, end)}
