"""Pricing a stretch of an attempt's run: card-hours, card rent, energy and carbon per CST day.

cost_cny = card_hours x the site's tariff per card-hour of the model (topology `card_rent`)
         + energy_cny, where kWh = cards x board watts x PUE / 1000 x hours is priced by the
           site's hourly CST schedule over the actual window (topology.energy.run_energy)
carbon_kg = kWh x grid factor x (1 - green share)
"""

from __future__ import annotations

from datetime import UTC, datetime

from broker.store.accounting import AttemptRun, UsageIncrement, UsageLine
from topology import CST, Topology, UnknownNodeError
from topology.energy import run_energy

MS_PER_HOUR = 3_600_000
_DAY_MS = 24 * MS_PER_HOUR
_CST_OFFSET_MS = 8 * MS_PER_HOUR


def cst_day(unix_ms: int) -> str:
    """The CST calendar day (YYYY-MM-DD) of a Unix time in milliseconds."""
    return datetime.fromtimestamp(unix_ms / 1000, UTC).astimezone(CST).strftime("%Y-%m-%d")


def cst_day_start_ms(day: str) -> int:
    """Unix milliseconds of 00:00 CST of a YYYY-MM-DD day; ValueError if it is not a date."""
    moment = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=CST)
    return int(moment.timestamp() * 1000)


def split_by_cst_day(from_ms: int, to_ms: int) -> list[tuple[int, int]]:
    """[from, to) cut at every CST midnight inside it, in order."""
    pieces: list[tuple[int, int]] = []
    start = from_ms
    while start < to_ms:
        midnight = ((start + _CST_OFFSET_MS) // _DAY_MS + 1) * _DAY_MS - _CST_OFFSET_MS
        end = min(midnight, to_ms)
        pieces.append((start, end))
        start = end
    return pieces


def card_watts(topology: Topology, site: str, model: str) -> float:
    """Board power of one card of `model`: the site's pool, else any site's pool of it, else 0."""
    try:
        pool = topology.site(site).pool(model)
    except UnknownNodeError:
        pool = None
    if pool is None:
        pool = next((p for s in topology.sites for p in s.pools if p.model == model), None)
    return pool.watts if pool is not None else 0.0


def card_tariff(topology: Topology, site: str, model: str) -> float:
    """CNY per card-hour of `model` at `site` (0 where the topology prices neither)."""
    try:
        return topology.site(site).card_tariff_cny_per_hour(model)
    except UnknownNodeError:
        return 0.0


def price_stretch(topology: Topology, run: AttemptRun, from_ms: int, to_ms: int) -> UsageIncrement:
    """The priced usage of `run` over [from_ms, to_ms), one line per model and CST day."""
    lines: list[UsageLine] = []
    known_site = run.site in topology.site_ids
    for start, end in split_by_cst_day(from_ms, to_ms):
        hours = (end - start) / MS_PER_HOUR
        day = cst_day(start)
        start_hour = ((start + _CST_OFFSET_MS) % _DAY_MS) / MS_PER_HOUR
        for model, cards in run.pools:
            if cards <= 0:
                continue
            card_hours = cards * hours
            watts = cards * card_watts(topology, run.site, model)
            energy = (
                run_energy(topology, run.site, watts, start_hour, hours)
                if known_site and watts > 0
                else None
            )
            lines.append(
                UsageLine(
                    model=model,
                    day=day,
                    cards=cards,
                    card_hours=card_hours,
                    kwh=energy.kwh if energy else 0.0,
                    carbon_kg=energy.carbon_kg if energy else 0.0,
                    card_cny=card_hours * card_tariff(topology, run.site, model),
                    energy_cny=energy.cny if energy else 0.0,
                )
            )
    return UsageIncrement(
        job_id=run.job_id,
        attempt=run.attempt,
        tenant=run.tenant,
        site=run.site,
        from_unix_ms=from_ms,
        to_unix_ms=to_ms,
        lines=tuple(lines),
    )


def next_stretch(run: AttemptRun, now_unix_ms: int) -> tuple[int, int] | None:
    """The stretch of `run` still to price now: from where it is accounted to its end (or now
    while it runs); None if there is none."""
    end = run.ended_unix_ms if not run.running else now_unix_ms
    if end <= run.accounted_until_unix_ms:
        return None
    return run.accounted_until_unix_ms, end
