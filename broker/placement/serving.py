"""Headroom for latency-bound demand: what taking a near-user pool costs the serving still to come.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from broker.placement.tables import HOST_ONLY, EvalContext, FloatArray


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
