"""Capacity rules over the ledger: what each pool can take now and how long new work waits.

The ledger's holds are the broker's commitments; a site's report says what is allocatable
and what is busy, and how much of the busy part the agent runs for the federation. Free is
a sum, never a max: allocatable - held by the broker - in use by others. Held cards of a
running attempt also show in the site's `federation_in_use`, so nothing is counted twice.
A pool of known node shape also counts its whole nodes surely free of any work (`node_balance`):
a job that fits on one node needs free cards, one that outgrows a node needs whole free nodes
(broker/placement/shapes.py; docs/placement.md, "Node shapes").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from broker.placement import shapes
from broker.placement.snapshot import SiteCapacity
from broker.store.protocol import Hold
from computenet.types import CapacityReport, PoolCapacity, SiteStatus

MS_PER_HOUR = 3_600_000
MAX_WAIT_H = 72.0
"""Queue-wait estimates are capped here: beyond it the figure says only "very long"."""


@dataclass(slots=True)
class SiteHolds:
    """The ledger lines of one site, summed: cards per pool, cores and memory."""

    cards: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cpu_cores: float = 0.0
    memory_gb: float = 0.0
    lines: list[Hold] = field(default_factory=list)


def holds_by_site(holds: Iterable[Hold]) -> dict[str, SiteHolds]:
    """Sum ledger lines per site and pool."""
    out: dict[str, SiteHolds] = defaultdict(SiteHolds)
    for hold in holds:
        site = out[hold.site]
        site.cards[hold.pool] += hold.count
        site.cpu_cores += hold.cpu_cores
        site.memory_gb += hold.memory_gb
        site.lines.append(hold)
    return out


def pool_views(pools: Iterable[PoolCapacity], held: SiteHolds | None) -> tuple[PoolCapacity, ...]:
    """The site's pools with the ledger's holds filled in (their `free` is then the rule)."""
    if held is None:
        return tuple(p if p.held == 0 else replace(p, held=0) for p in pools)
    cards = held.cards
    return tuple(
        p if p.held == cards.get(p.model, 0) else replace(p, held=cards.get(p.model, 0))
        for p in pools
    )


def node_shaped(pool: PoolCapacity) -> bool:
    """True if the pool's node shape is known: it then counts whole free nodes beside cards."""
    return pool.nodes > 0 and pool.cards_per_node > 0


def nodes_in_service(pool: PoolCapacity) -> int:
    """Nodes of a node-shaped pool in service: capacity sources leave whole nodes (a down or
    drained node) out of `allocatable`, so a node partly out counts as out."""
    return min(pool.nodes, pool.allocatable // pool.cards_per_node)


def node_balance(pool: PoolCapacity, lines: Iterable[Hold]) -> int:
    """Nodes in service less those the pool's ledger lines and the site's own work may touch.

    Each ledger line is one job: a multi-node one takes its whole nodes, a single-node one may
    sit on a node of its own; each card busy with the site's own work may sit on a node of its
    own. Whatever the layout, at least max(0, balance) nodes carry no work at all.
    """
    return shapes.node_balance(
        nodes_in_service(pool),
        (h.count for h in lines),
        pool.cards_per_node,
        pool.in_use_by_others,
    )


def whole_nodes_free(pool: PoolCapacity, lines: Iterable[Hold]) -> int:
    """Nodes of a node-shaped pool surely free of any work: never counted too high."""
    return max(0, node_balance(pool, lines))


def placeable_cards(pool: PoolCapacity, lines: Iterable[Hold]) -> int:
    """Cards new work may take in the pool: allocatable - footprints held - in use by others.

    A multi-node job's footprint is its whole nodes' cards, so the cards it leaves idle on
    them are not offered; elsewhere the footprint is the job's cards and this is `pool.free`.
    """
    if not node_shaped(pool):
        return pool.free
    per_node = pool.cards_per_node
    idle = sum(shapes.footprint(h.count, per_node) - h.count for h in lines)
    return max(0, pool.free - idle)


def host_free(host: CapacityReport, held: SiteHolds | None) -> tuple[float, float]:
    """Free cores and memory: total - held - busy with work of others (as `host` reports)."""
    held_cpu = held.cpu_cores if held is not None else 0.0
    held_mem = held.memory_gb if held is not None else 0.0
    others_cpu = max(0.0, host.cpu_cores - host.cpu_cores_free - host.federation_cpu_cores)
    others_mem = max(0.0, host.memory_gb - host.memory_gb_free - host.federation_memory_gb)
    return (
        max(0.0, host.cpu_cores - held_cpu - others_cpu),
        max(0.0, host.memory_gb - held_mem - others_mem),
    )


def site_capacity(
    site_id: str,
    status: SiteStatus,
    report: CapacityReport,
    held: SiteHolds | None,
    wait_h_by_pool: Mapping[str, float] | None = None,
    *,
    capacity_stale: bool = False,
) -> SiteCapacity:
    """What placement sees of one site: free cards per pool, cores and memory, queue waits.

    A node-shaped pool also gives its node balance (`node_balance`).
    """
    views = pool_views(report.pools, held)
    cpu_free, memory_free = host_free(report, held)
    waits = dict(wait_h_by_pool or {})
    shaped = [p for p in views if node_shaped(p)]
    free = {p.model: p.free for p in views}
    balance: dict[str, int] = {}
    if shaped:
        lines = held.lines if held is not None else []
        for pool in shaped:
            mine = [h for h in lines if h.pool == pool.model]
            free[pool.model] = placeable_cards(pool, mine)
            balance[pool.model] = node_balance(pool, mine)
    return SiteCapacity(
        site_id=site_id,
        status=status,
        free=free,
        cpu_free=cpu_free,
        memory_gb_free=memory_free,
        queue_wait_h=min(waits.values(), default=0.0),
        queue_wait_h_by_pool=waits,
        capacity_stale=capacity_stale,
        cards_per_node={p.model: p.cards_per_node for p in shaped},
        nodes={p.model: p.nodes for p in shaped},
        whole_nodes=balance,
    )


@dataclass(frozen=True, slots=True)
class Backlog:
    """The pending queue's cards by model asked for, with the pools' allocatable cards by model.

    `asked` is cards asked for per model, `anything` cards of any-model jobs; `by_model` is
    allocatable cards per model over all sites and `everything` their sum.
    """

    asked: Mapping[str, float]
    anything: float
    by_model: Mapping[str, int]
    everything: int

    @classmethod
    def of(cls, pending: Iterable[tuple[str, int]], by_model: Mapping[str, int]) -> Backlog:
        """`pending` is (model asked for, "" for any; cards) per pending job."""
        asked: dict[str, float] = defaultdict(float)
        anything = 0.0
        for model, cards in pending:
            if model:
                asked[model] += cards
            else:
                anything += cards
        return cls(dict(asked), anything, by_model, sum(by_model.values()))

    def share(self, model: str, cards: int) -> float:
        """A pool's share of the queue: its model's askers and any-model jobs, pro rata."""
        if cards <= 0:
            return 0.0
        share = self.asked.get(model, 0.0) * cards / self.by_model[model]
        if self.everything:
            share += self.anything * cards / self.everything
        return share


def allocatable_by_model(allocatable: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """Allocatable cards per model, summed over (site, model) keys."""
    by_model: dict[str, int] = defaultdict(int)
    for (_, model), cards in allocatable.items():
        by_model[model] += cards
    return dict(by_model)


def pending_cards_by_pool(
    pending: Iterable[tuple[str, int]], allocatable: Mapping[tuple[str, str], int]
) -> dict[tuple[str, str], float]:
    """Spread the pending queue's cards over the pools that could run them.

    `pending` is (model asked for, "" for any; cards) per pending job; `allocatable` is cards
    per (site, model). A job asking for a model counts toward that model's pools, an any-model
    job toward every pool, each in proportion to the pool's allocatable share.
    """
    backlog = Backlog.of(pending, allocatable_by_model(allocatable))
    return {key: backlog.share(key[1], cards) for key, cards in allocatable.items() if cards > 0}


def queue_wait_h(free: int, backlog_cards: float, lines: Iterable[Hold], now_unix_ms: int) -> float:
    """Hours before a pool's share of the pending queue could start, from its holds' ends.

    Zero when the pool's free cards cover its share of the queue; otherwise the time until
    enough held cards end (in expected-end order) to cover the rest, capped at MAX_WAIT_H.
    Holds without an expected end count as ending at the cap.
    """
    short = backlog_cards - free
    if short <= 0:
        return 0.0
    cap_ms = now_unix_ms + int(MAX_WAIT_H * MS_PER_HOUR)
    ends = sorted(
        (min(h.expected_end_unix_ms, cap_ms) if h.expected_end_unix_ms else cap_ms, h.count)
        for h in lines
    )
    for end_ms, cards in ends:
        short -= cards
        if short <= 0:
            return max(0.0, (end_ms - now_unix_ms) / MS_PER_HOUR)
    return MAX_WAIT_H
