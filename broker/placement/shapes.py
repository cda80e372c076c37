"""Node shapes of pools: how many whole nodes a job takes, and the cards that ties up.

A pool whose node shape is known (nodes x cards per node, as its site reports) gives each job
whole nodes: a job of C cards takes ceil(C / cards_per_node) nodes and ties up all their
cards, its footprint. A pool of unknown shape (cards_per_node 0) is one bin of cards, and a
job's footprint there is its cards. See docs/placement.md ("Node shapes") for why this rule
keeps every placement runnable by the site's scheduler.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]


def nodes_needed(cards: int, cards_per_node: int) -> int:
    """Whole nodes a job of `cards` takes in a pool of `cards_per_node` (0 if shape unknown)."""
    if cards_per_node <= 0 or cards <= 0:
        return 0
    return -(-cards // cards_per_node)


def footprint(cards: int, cards_per_node: int) -> int:
    """Cards a job of `cards` ties up: whole nodes' cards if the shape is known, else `cards`."""
    if cards_per_node <= 0:
        return cards
    return nodes_needed(cards, cards_per_node) * cards_per_node


def footprints(cards: NDArray[np.generic], cards_per_node: IntArray) -> IntArray:
    """`footprint` elementwise (arrays broadcast against each other)."""
    need = np.asarray(cards, dtype=np.int64)
    cpn = np.asarray(cards_per_node, dtype=np.int64)
    shaped = cpn > 0
    whole = -(-need // np.where(shaped, cpn, 1)) * cpn
    return np.where(shaped, whole, need).astype(np.int64)


def plural(count: int, noun: str) -> str:
    """`1 node`, `2 nodes`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
