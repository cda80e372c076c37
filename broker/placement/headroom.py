"""Headroom for expected demand: what holding a pool costs the work still to come that needs it.

**Serving.**
Inference must run within its SLO of its users, so it can only use the pools near them, while
training and batch work can usually go anywhere. The delay term (delay.py) counts the jobs
queued now; it does not see the serving demand that will arrive for the near pools while a long
job holds them. A user region's expected serving demand is the cards its serving work keeps
busy on average, L_r (arrival rate x cards x hours, Little's law); its market M_r is the pools
within its SLO, of C_r cards in all. A card-hour taken from M_r is, with probability about
L_r / C_r (the share of the market that demand keeps busy), a card-hour serving work would have
used and now waits for. So a job that is not itself latency-bound, of `cards` x `duration_h`
(on the option's model), pays at option o

    cards x duration_h x value x sigma[o],  sigma[o] = sum over regions r with o in M_r of
                                                       L_r / C_r

the same form as delay.py's rho, with the expected serving cards in place of queued ones.
Latency-tolerant work then takes the near-user pools only where their serving share is low
or where nothing else is free; serving work itself does not pay it (it is the demand).

**Speed-scaled work.** Training and batch jobs with a reference model do more work per hour on
a fast card, so a card-hour of a pool is worth `speed` reference card-hours to them. Their
expected demand W_c (reference card-hours per hour: arrival rate x cards x hours on the
reference) competes for a market measured the same way, S_c = sum over its pools of cards x
speed. A card-hour of option o taken from it is `speed_c(o)` reference card-hours that demand
waits for with probability about W_c / S_c, so a job that does not scale (serving work, jobs
without a reference) pays at o

    cards x duration_h x value x omega[o],  omega[o] = sum over classes c using o of
                                                       speed_c(o) x W_c / S_c

Work that cannot use a card's speed then leaves the fast cards to work that can. A job that
scales does not pay it: on any option its run holds the same reference card-hours (run_h x
speed is its reference duration), so it would cost the same everywhere. On a speed-blind
topology every speed is 1 and omega is the market's share in cards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from broker.placement.tables import HOST_ONLY, EvalContext, FloatArray
from topology import UnknownAcceleratorError


@dataclass(frozen=True, slots=True)
class ServingDemand:
    """Latency-bound demand expected from one user region.

    `cards` is how many cards its serving work keeps busy on average (arrival rate x cards per
    job x hours per job); it may only use pools within `slo_ms` RTT of `region`.
    """

    region: str
    cards: float
    slo_ms: float

    def __post_init__(self) -> None:
        if self.cards < 0 or self.slo_ms < 0:
            raise ValueError(f"serving demand of {self.region!r}: cards and slo_ms must be >= 0")


def serving_share(
    ctx: EvalContext, demands: Sequence[ServingDemand], cards: FloatArray
) -> FloatArray:
    """sigma per option: expected serving cards per pool card of each market the option is in.

    `cards` holds every option's pool size (delay.pool_cards); regions the topology does not
    know, and markets without cards, add nothing.
    """
    table = ctx.table
    sigma = np.zeros(cards.size)
    pools = np.array([m != HOST_ONLY for m in table.opt_model], dtype=bool)
    for demand in demands:
        row = table.region_pos.get(demand.region)
        if row is None or demand.cards <= 0:
            continue
        market = pools & (table.opt_rtt_ms[row] <= demand.slo_ms)
        size = float(cards[market].sum())
        if size > 0:
            sigma[market] += demand.cards / size
    return sigma


@dataclass(frozen=True, slots=True)
class ScaledDemand:
    """Speed-scaled work (training, batch with a reference model) expected over the next hours.

    `cards` is how many reference cards it keeps busy on average (arrival rate x cards x hours
    on `reference`) for work of class `workload`; it may use pools of `models` (empty: any).
    """

    reference: str
    workload: str
    models: tuple[str, ...]
    cards: float

    def __post_init__(self) -> None:
        if self.cards < 0:
            raise ValueError(f"scaled demand on {self.reference!r}: cards must be >= 0")


def scaled_share(
    ctx: EvalContext, demands: Sequence[ScaledDemand], cards: FloatArray
) -> FloatArray:
    """omega per option: each class's expected reference cards per reference card of its
    market, times the option's speed for it; 0 for classes with an unknown reference."""
    table = ctx.table
    omega = np.zeros(cards.size)
    pools = np.array([m != HOST_ONLY for m in table.opt_model], dtype=bool)
    for demand in demands:
        if demand.cards <= 0 or demand.reference not in table.topology.accelerators:
            continue
        market = pools & (np.isin(table.opt_model, demand.models) if demand.models else True)
        try:
            speed = table.speeds(demand.reference, demand.workload)
        except (UnknownAcceleratorError, ValueError):
            continue
        size = float((cards[market] * speed[market]).sum())
        if size > 0:
            omega[market] += speed[market] * demand.cards / size
    return omega


@dataclass(frozen=True, slots=True)
class ExpectedDemand:
    """The demand a batch keeps headroom for (see the module docstring); empty: none."""

    serving: tuple[ServingDemand, ...] = ()
    scaled: tuple[ScaledDemand, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.serving or self.scaled)
