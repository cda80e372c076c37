"""Ledger rules on pools of known node shape: free cards, and whole nodes surely free.

The property test lays every job and every card of the site's own work out on explicit nodes,
as adversarially as the site's scheduler may (a single-node job on any node with room, packed
or alone, or left waiting in the queue; a multi-node job on whole free nodes, its cards spread
or packed), and checks that the ledger never counts more whole free nodes, or more free cards,
than the explicit nodes have, so every multi-node job it accepts finds its nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.control.capacity import (
    holds_by_site,
    placeable_cards,
    site_capacity,
    whole_nodes_free,
)
from broker.placement.shapes import fits_pool, multi_node, nodes_needed
from broker.store.protocol import Hold
from computenet.types import CapacityReport, JobId, PoolCapacity, SiteId, SiteStatus

MODEL = "a800"


def _hold(job: str, cards: int, pool: str = MODEL) -> Hold:
    return Hold(JobId(job), 1, SiteId("s"), pool, cards, 1.0, 1.0, 0)


def _pool(
    nodes: int, per_node: int, *, allocatable: int | None = None, local: int = 0
) -> PoolCapacity:
    total = nodes * per_node
    return PoolCapacity(
        MODEL,
        total,
        total if allocatable is None else allocatable,
        in_use=local,
        nodes=nodes,
        cards_per_node=per_node,
    )


@pytest.mark.parametrize(
    ("pool", "held", "whole"),
    [
        (_pool(4, 4), [], 4),
        (_pool(4, 4), [1], 3),  # one card still takes a node
        (_pool(4, 4), [1, 1], 2),  # the scheduler may put them on two nodes
        (_pool(4, 4), [5], 2),
        (_pool(4, 4), [16], 0),
        (_pool(4, 4), [4, 4, 4, 4, 4], 0),  # never below zero
        (_pool(4, 4, local=1), [], 3),  # a local card spoils one node
        (_pool(4, 4, local=3), [], 1),  # three local cards may sit on three nodes
        (_pool(4, 4, allocatable=12), [], 3),  # a drained node
        (_pool(4, 4, allocatable=11), [], 2),  # part of a node out: that node is out
        (_pool(2, 2, allocatable=8), [], 2),  # never more nodes than the pool has
    ],
)
def test_whole_nodes_free(pool: PoolCapacity, held: list[int], whole: int) -> None:
    lines = [_hold(f"j{i}", n) for i, n in enumerate(held)]
    assert whole_nodes_free(pool, lines) == whole


def test_site_capacity_counts_cards_and_whole_nodes_and_keeps_the_shape() -> None:
    pools = (_pool(4, 4, local=2), PoolCapacity("910b", 8, 8, in_use=3))
    held = holds_by_site([_hold("j", 3), _hold("k", 2, pool="910b")])["s"]
    cap = site_capacity("s", SiteStatus.ACTIVE, CapacityReport(pools), held)
    # a800: 16 - 3 held - 2 local cards; 4 nodes - 1 for the job - 2 local cards may spoil;
    # 910b has no known shape: 8 - 2 held - 3 local cards
    assert cap.free == {MODEL: 11, "910b": 3}
    assert cap.whole_nodes == {MODEL: 1}
    assert cap.cards_per_node == {MODEL: 4} and cap.nodes == {MODEL: 4}


@pytest.mark.parametrize(
    ("held", "cards", "nodes"),
    [
        ([], 16, 4),
        ([1] * 16, 0, -12),  # sixteen 1-card jobs fill four 4-card nodes, no card idle
        ([4, 4], 8, 2),  # a job of a whole node is a single-node job
        ([5], 8, 2),  # a multi-node job takes its nodes' cards: 3 idle on its second node
        ([5, 1], 7, 1),
    ],
)
def test_placeable_cards_are_free_cards_less_multi_node_jobs_idle_cards(
    held: list[int], cards: int, nodes: int
) -> None:
    lines = [_hold(f"j{i}", n) for i, n in enumerate(held)]
    pool = PoolCapacity(MODEL, 16, 16, held=sum(held), nodes=4, cards_per_node=4)
    assert placeable_cards(pool, lines) == cards
    summed = holds_by_site(lines).get("s")
    cap = site_capacity("s", SiteStatus.ACTIVE, CapacityReport((pool,)), summed)
    assert cap.free == {MODEL: cards} and cap.whole_nodes == {MODEL: nodes}


def test_a_half_known_shape_is_no_shape() -> None:
    pool = PoolCapacity(MODEL, 8, 8, in_use=1, nodes=2)
    cap = site_capacity("s", SiteStatus.ACTIVE, CapacityReport((pool,)), None)
    assert cap.free == {MODEL: 7} and not cap.cards_per_node


def test_a_pool_takes_one_one_card_job_per_card() -> None:
    """N nodes x C cards accept N * C one-card jobs: no card is left idle."""
    for nodes, per_node in [(2, 8), (3, 4), (1, 1), (5, 2)]:
        lines: list[Hold] = []
        while True:
            pool = _pool(nodes, per_node)
            cap = site_capacity(
                "s", SiteStatus.ACTIVE, CapacityReport((pool,)), holds_by_site(lines).get("s")
            )
            if not fits_pool(1, per_node, cap.free[MODEL], cap.whole_nodes[MODEL]):
                break
            lines.append(_hold(f"j{len(lines)}", 1))
        assert len(lines) == nodes * per_node


@dataclass
class _Site:
    """Explicit nodes: the cards each running job and each local card holds on each of them.

    Jobs the ledger accepted are running (laid out on nodes) or waiting in the site's queue
    (holding no node yet); every one of them is a ledger line. A multi-node job may block its
    nodes for anything else (exclusive).
    """

    nodes: int
    per_node: int
    down: frozenset[int]
    used: list[int] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)
    cards: dict[str, int] = field(default_factory=dict)
    running: dict[str, dict[int, int]] = field(default_factory=dict)
    exclusive: dict[str, bool] = field(default_factory=dict)
    local: list[int] = field(default_factory=list)  # node of each local card

    def __post_init__(self) -> None:
        self.used = [0] * self.nodes

    def in_service(self) -> list[int]:
        return [n for n in range(self.nodes) if n not in self.down]

    def whole_free(self) -> list[int]:
        return [n for n in self.in_service() if self.used[n] == 0 and n not in self.blocked]

    def free_cards(self) -> int:
        return sum(self.per_node - self.used[n] for n in self.in_service() if n not in self.blocked)

    def with_room(self, cards: int) -> list[int]:
        return [
            n
            for n in self.in_service()
            if n not in self.blocked and self.per_node - self.used[n] >= cards
        ]

    def waiting(self) -> list[str]:
        return sorted(j for j in self.cards if j not in self.running)

    def report(self) -> CapacityReport:
        federation = sum(sum(layout.values()) for layout in self.running.values())
        pool = PoolCapacity(
            MODEL,
            self.nodes * self.per_node,
            len(self.in_service()) * self.per_node,
            in_use=federation + len(self.local),
            federation_in_use=federation,
            nodes=self.nodes,
            cards_per_node=self.per_node,
        )
        return CapacityReport((pool,))

    def ledger(self) -> tuple[int, int]:
        """(free cards, node balance) as the broker counts them."""
        lines = [_hold(job, cards) for job, cards in self.cards.items()]
        cap = site_capacity("s", SiteStatus.ACTIVE, self.report(), holds_by_site(lines).get("s"))
        return cap.free[MODEL], cap.whole_nodes[MODEL]

    def start(self, job: str, nodes: list[int], spread: bool, exclusive: bool) -> None:
        cards = self.cards[job]
        layout: dict[int, int] = {}
        left = cards
        share = -(-cards // len(nodes))
        for n in nodes:
            take = min(left, share if spread else self.per_node - self.used[n])
            layout[n] = take
            self.used[n] += take
            left -= take
        assert left == 0, "the chosen nodes hold the job"
        self.running[job] = layout
        if exclusive:
            self.blocked |= set(nodes)
            self.exclusive[job] = True

    def finish(self, job: str) -> None:
        del self.cards[job]
        layout = self.running.pop(job, {})
        for n, cards in layout.items():
            self.used[n] -= cards
        if self.exclusive.pop(job, False):
            self.blocked -= set(layout)


@st.composite
def sites(draw: st.DrawFn) -> _Site:
    nodes = draw(st.integers(1, 6))
    per_node = draw(st.integers(1, 8))
    down = draw(st.frozensets(st.integers(0, nodes - 1), max_size=nodes - 1))
    return _Site(nodes, per_node, down)


def _accept(site: _Site, data: st.DataObject, job: str) -> None:
    """Offer the site a job; if the ledger takes it, lay it out as adversarially as allowed."""
    cards = data.draw(st.integers(1, 3 * site.per_node), label="cards")
    free, balance = site.ledger()
    if not fits_pool(cards, site.per_node, free, balance):
        return  # the gang filter and the batch ledger refuse it
    site.cards[job] = cards
    if multi_node(cards, site.per_node):
        needed = nodes_needed(cards, site.per_node)
        whole = site.whole_free()
        assert len(whole) >= needed, "accepted, so whole free nodes must hold it"
        chosen = data.draw(st.permutations(whole), label="nodes")[:needed]
        site.start(job, chosen, data.draw(st.booleans(), label="spread"), data.draw(st.booleans()))
    else:
        _maybe_start(site, data, job)


def _maybe_start(site: _Site, data: st.DataObject, job: str) -> None:
    """A single-node job starts on any node with room (packed or alone), or keeps waiting."""
    room = site.with_room(site.cards[job])
    if room and data.draw(st.booleans(), label="starts now"):
        site.start(job, [data.draw(st.sampled_from(room), label="node")], True, False)


@settings(max_examples=300, deadline=None)
@given(sites(), st.data())
def test_the_ledger_never_counts_more_than_the_explicit_nodes_have(
    site: _Site, data: st.DataObject
) -> None:
    for step in range(data.draw(st.integers(1, 40), label="steps")):
        free, balance = site.ledger()
        assert max(0, balance) <= len(site.whole_free()), "whole free nodes counted too high"
        assert free <= site.free_cards(), "free cards counted too high"
        kind = data.draw(st.sampled_from(["job", "job", "start", "finish", "local", "local_end"]))
        if kind == "job":
            _accept(site, data, f"j{step}")
        elif kind == "start" and site.waiting():
            _maybe_start(site, data, data.draw(st.sampled_from(site.waiting()), label="waiting"))
        elif kind == "finish" and site.cards:
            site.finish(data.draw(st.sampled_from(sorted(site.cards)), label="finished"))
        elif kind == "local":
            room = site.with_room(1)
            if room:  # the site's own users take any free card, on any node
                node = data.draw(st.sampled_from(room), label="local node")
                site.local.append(node)
                site.used[node] += 1
        elif kind == "local_end" and site.local:
            node = site.local.pop(data.draw(st.integers(0, len(site.local) - 1)))
            site.used[node] -= 1
