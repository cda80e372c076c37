"""Node shapes of pools: what a job takes of a pool's free cards and of its whole free nodes.

A pool whose node shape is known (nodes x cards per node, as its site reports) is counted with
two numbers: free cards, and whole nodes surely free of any work. A job whose cards fit on one
node (a single-node job) takes just its cards, and may spoil one whole node, since the site may
put it on a node of its own. A job of more cards than a node holds (a multi-node job) takes
ceil(cards / cards_per_node) whole nodes, and its footprint is those nodes' cards. A pool of
unknown shape (cards_per_node 0) is one bin of cards, and a job's footprint there is its cards.
See docs/placement.md ("Node shapes") for why this keeps every placement runnable by the
site's scheduler.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]


def nodes_needed(cards: int, cards_per_node: int) -> int:
    """Nodes a job of `cards` spans at least in a pool of `cards_per_node` (0 if shape unknown)."""
    if cards_per_node <= 0 or cards <= 0:
        return 0
    return -(-cards // cards_per_node)


def multi_node(cards: int, cards_per_node: int) -> bool:
    """True if a job of `cards` outgrows one node of a pool of known shape."""
    return 0 < cards_per_node < cards


def nodes_taken(cards: int, cards_per_node: int) -> int:
    """Whole nodes a job removes from a pool's count of surely free ones.

    A multi-node job takes ceil(cards / cards_per_node) whole nodes; a single-node job may sit
    on a node of its own, so it spoils one. Nothing where the shape is unknown.
    """
    if cards_per_node <= 0 or cards <= 0:
        return 0
    return nodes_needed(cards, cards_per_node)


def footprint(cards: int, cards_per_node: int) -> int:
    """Cards a job of `cards` takes of a pool's free cards: whole nodes' if it is multi-node."""
    if not multi_node(cards, cards_per_node):
        return cards
    return nodes_needed(cards, cards_per_node) * cards_per_node


def fits_pool(cards: int, cards_per_node: int, free_cards: int, whole_nodes: int) -> bool:
    """True if a job of `cards` fits a pool with `free_cards` and `whole_nodes` surely free.

    A single-node job (or any job in a pool of unknown shape) needs only its cards; a
    multi-node job needs its whole nodes, and their cards.
    """
    if not multi_node(cards, cards_per_node):
        return free_cards >= cards
    need = nodes_needed(cards, cards_per_node)
    return whole_nodes >= need and free_cards >= need * cards_per_node


def node_balance(
    in_service: int, held_cards: Iterable[int], cards_per_node: int, others_cards: int
) -> int:
    """Nodes in service less those the pool's jobs take or may spoil; may be below zero.

    `held_cards` are the cards of each federation job in the pool, `others_cards` the cards
    busy with the site's own work (each may sit on a node of its own). Whole nodes surely free
    are max(0, balance); the balance itself is kept so that a job released later gives back
    exactly the nodes it took.
    """
    taken = sum(nodes_taken(cards, cards_per_node) for cards in held_cards)
    return in_service - taken - max(0, others_cards)


def footprints(cards: NDArray[np.generic], cards_per_node: IntArray) -> IntArray:
    """`footprint` elementwise (arrays broadcast against each other)."""
    need = np.asarray(cards, dtype=np.int64)
    cpn = np.asarray(cards_per_node, dtype=np.int64)
    multi = (cpn > 0) & (need > cpn)
    whole = -(-need // np.where(multi, cpn, 1)) * cpn
    return np.where(multi, whole, need).astype(np.int64)


def nodes_taken_many(cards: NDArray[np.generic], cards_per_node: IntArray) -> IntArray:
    """`nodes_taken` elementwise (arrays broadcast against each other)."""
    need = np.asarray(cards, dtype=np.int64)
    cpn = np.asarray(cards_per_node, dtype=np.int64)
    shaped = (cpn > 0) & (need > 0)
    return np.where(shaped, -(-need // np.where(shaped, cpn, 1)), 0).astype(np.int64)


def whole_nodes_wanted(cards: NDArray[np.generic], cards_per_node: IntArray) -> IntArray:
    """Whole free nodes a job must find: its nodes if multi-node, else 0 (elementwise)."""
    need = np.asarray(cards, dtype=np.int64)
    cpn = np.asarray(cards_per_node, dtype=np.int64)
    multi = (cpn > 0) & (need > cpn)
    return np.where(multi, -(-need // np.where(multi, cpn, 1)), 0).astype(np.int64)


def plural(count: int, noun: str) -> str:
    """`1 node`, `2 nodes`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
