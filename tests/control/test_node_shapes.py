"""Ledger rules on pools of known node shape: only nodes surely free of any work are offered.

The property test lays every job and every card of the site's own work out on explicit nodes,
as adversarially as the site's scheduler may (within the contract that a job of C cards sits
on at most ceil(C / cards per node) nodes), and checks that whatever the ledger accepts can
be laid out on whole free nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.control.capacity import holds_by_site, site_capacity, whole_nodes_free
from broker.placement.shapes import nodes_needed
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


def test_site_capacity_offers_whole_nodes_and_keeps_the_shape() -> None:
    pools = (_pool(4, 4, local=2), PoolCapacity("910b", 8, 8, in_use=3))
    held = holds_by_site([_hold("j", 3), _hold("k", 2, pool="910b")])["s"]
    cap = site_capacity("s", SiteStatus.ACTIVE, CapacityReport(pools), held)
    # a800: 4 nodes - 1 for the job - 2 that local cards may spoil = 1 node of 4 cards;
    # 910b has no known shape: 8 - 2 held - 3 local cards
    assert cap.free == {MODEL: 4, "910b": 3}
    assert cap.cards_per_node == {MODEL: 4} and cap.nodes == {MODEL: 4}


def test_a_half_known_shape_is_no_shape() -> None:
    pool = PoolCapacity(MODEL, 8, 8, in_use=1, nodes=2)
    cap = site_capacity("s", SiteStatus.ACTIVE, CapacityReport((pool,)), None)
    assert cap.free == {MODEL: 7} and not cap.cards_per_node


@dataclass
class _Site:
    """Explicit nodes: the cards each job and each local user holds on each of them."""

    nodes: int
    per_node: int
    down: frozenset[int]
    used: list[int] = field(default_factory=list)
    jobs: dict[str, tuple[int, dict[int, int]]] = field(default_factory=dict)
    local: list[int] = field(default_factory=list)  # node of each local card

    def __post_init__(self) -> None:
        self.used = [0] * self.nodes

    def whole_free(self) -> list[int]:
        return [n for n in range(self.nodes) if n not in self.down and self.used[n] == 0]

    def with_room(self, cards: int) -> list[int]:
        return [
            n
            for n in range(self.nodes)
            if n not in self.down and self.per_node - self.used[n] >= cards
        ]

    def report(self) -> CapacityReport:
        federation = sum(cards for cards, _ in self.jobs.values())
        pool = PoolCapacity(
            MODEL,
            self.nodes * self.per_node,
            (self.nodes - len(self.down)) * self.per_node,
            in_use=federation + len(self.local),
            federation_in_use=federation,
            nodes=self.nodes,
            cards_per_node=self.per_node,
        )
        return CapacityReport((pool,))

    def offered(self) -> int:
        lines = [_hold(job, cards) for job, (cards, _) in self.jobs.items()]
        held = holds_by_site(lines).get("s")
        return site_capacity("s", SiteStatus.ACTIVE, self.report(), held).free[MODEL]

    def lay_out(self, job: str, cards: int, nodes: list[int], spread: bool) -> None:
        layout: dict[int, int] = {}
        left = cards
        share = -(-cards // len(nodes))
        for n in nodes:
            take = min(left, share if spread else self.per_node - self.used[n])
            layout[n] = take
            self.used[n] += take
            left -= take
        assert left == 0, "the chosen nodes hold the job"
        self.jobs[job] = (cards, layout)

    def finish(self, job: str) -> None:
        _, layout = self.jobs.pop(job)
        for n, cards in layout.items():
            self.used[n] -= cards


@st.composite
def sites(draw: st.DrawFn) -> _Site:
    nodes = draw(st.integers(1, 6))
    per_node = draw(st.integers(1, 8))
    down = draw(st.frozensets(st.integers(0, nodes - 1), max_size=nodes - 1))
    return _Site(nodes, per_node, down)


@settings(max_examples=300, deadline=None)
@given(sites(), st.data())
def test_every_job_the_ledger_accepts_fits_on_whole_free_nodes(
    site: _Site, data: st.DataObject
) -> None:
    for step in range(data.draw(st.integers(1, 30), label="steps")):
        offered = site.offered()
        assert offered % site.per_node == 0
        # the rule never offers a node that is not wholly free on the explicit model
        assert offered // site.per_node <= len(site.whole_free())
        kind = data.draw(st.sampled_from(["job", "job", "finish", "local", "local_end"]))
        if kind == "job":
            cards = data.draw(st.integers(1, 3 * site.per_node), label="cards")
            if cards > offered:  # the gang filter and the batch ledger refuse it
                continue
            needed = nodes_needed(cards, site.per_node)
            free = site.whole_free()
            assert len(free) >= needed, "accepted, so whole free nodes must hold it"
            roomy = site.with_room(cards) if needed == 1 else []
            if roomy and data.draw(st.booleans(), label="packed with other work"):
                # a job within one node may be packed next to other work, on any node with room
                chosen = [data.draw(st.sampled_from(roomy), label="node")]
            else:
                chosen = data.draw(st.permutations(free), label="nodes")[:needed]
            site.lay_out(f"j{step}", cards, chosen, data.draw(st.booleans(), label="spread"))
        elif kind == "finish" and site.jobs:
            site.finish(data.draw(st.sampled_from(sorted(site.jobs)), label="finished"))
        elif kind == "local":
            room = site.with_room(1)
            if room:  # the site's own users take any free card, on any node
                node = data.draw(st.sampled_from(room), label="local node")
                site.local.append(node)
                site.used[node] += 1
        elif kind == "local_end" and site.local:
            node = site.local.pop(data.draw(st.integers(0, len(site.local) - 1)))
            site.used[node] -= 1
