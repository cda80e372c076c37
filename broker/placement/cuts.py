"""Packing cuts for the batch LP: how many whole jobs of at least a given size a pool still holds.

A pool with F free cards holds at most floor(F / s) jobs of s or more cards, and a job of c >= s
cards fills floor(c / s) of those s-slots, so every integral placement satisfies, per pool and
size level s,

    sum over jobs of c >= s cards at the pool: floor(c / s) * x  <=  floor(F / s).

The plain LP may pour fractions of 256-card gangs into pools with 300 free cards each and fill
the rest with small jobs; these rows (Chvatal-Gomory cuts of the card row) stop that, which
closes most of the gap between the LP and the integer optimum when gangs are large against the
pools' free cards. They hold for any job sizes; with sizes that divide each other (1, 2, 4, ...
256) they are exactly the counting conditions under which the jobs of each size can be packed.
"""

from __future__ import annotations

import numpy as np

from broker.placement.tables import IntArray

MAX_LEVELS = 12  # more distinct sizes than this: cut at the largest, where packing loses most


def size_levels(cards: IntArray) -> IntArray:
    """The size levels to cut at: distinct card counts of at least 2, at most MAX_LEVELS largest."""
    distinct = np.unique(cards[cards >= 2])
    return distinct[-MAX_LEVELS:].astype(np.int64)


def slot_limits(free_cards: IntArray, levels: IntArray) -> IntArray:
    """floor(F / s) per pool (rows) and level (columns)."""
    return (np.asarray(free_cards, dtype=np.int64)[:, None] // levels[None, :]).astype(np.int64)
