"""Which of a site's accelerator pools a job's cards take: the least power-hungry that fits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from topology.model import Site

Allocation = tuple[tuple[int, int], ...]
"""(pool index in `pools_by_watts` order, cards) for every pool a job draws from."""


@dataclass(frozen=True, slots=True)
class CardPool:
    """One pool as allocation sees it: model, cards offered, board watts per card."""

    model: str
    cards: int
    watts: float


def scaled_cards(count: int, scale: float) -> int:
    """Cards of a pool at a capacity scale: rounded to the nearest whole card (halves up)."""
    return int(count * scale + 0.5)


def pools_by_watts(site: Site, scale: float = 1.0) -> tuple[CardPool, ...]:
    """A site's pools, least power-hungry first (ties in topology order), at a capacity scale.

    This order is the allocation rule's preference: every caller that takes cards in it draws
    the same power for the same job at the same site.
    """
    ordered = sorted(enumerate(site.pools), key=lambda item: (item[1].watts, item[0]))
    return tuple(CardPool(p.model, scaled_cards(p.count, scale), p.watts) for _, p in ordered)


def fit(
    pools: Sequence[CardPool], free: Sequence[int], accelerator: str, cards: int, gang: bool
) -> Allocation | None:
    """Where `cards` of `accelerator` ("" for any model) go now; None if they do not fit.

    A gang takes the first acceptable pool (in `pools` order) with room for all its cards;
    other jobs (inference replicas) fill acceptable pools in that order.
    """
    usable = [k for k, p in enumerate(pools) if not accelerator or p.model == accelerator]
    return take(free, usable, cards, gang)


def take(free: Sequence[int], order: Sequence[int], cards: int, gang: bool) -> Allocation | None:
    """Where `cards` go among the pools `order` lists (indices into `free`, preferred first).

    A gang takes the first of them with room for all its cards; other jobs (inference
    replicas) fill them in that order. None if the cards do not fit now.
    """
    if gang:
        chosen = next((k for k in order if free[k] >= cards), None)
        return None if chosen is None else ((chosen, cards),)
    taken: list[tuple[int, int]] = []
    left = cards
    for k in order:
        if left == 0:
            break
        n = min(free[k], left)
        if n > 0:
            taken.append((k, n))
            left -= n
    return tuple(taken) if left == 0 else None


def allocation_watts(pools: Sequence[CardPool], allocation: Allocation) -> float:
    """Board power of the allocated cards."""
    return sum(pools[k].watts * n for k, n in allocation)
