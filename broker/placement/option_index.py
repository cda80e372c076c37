"""The (job class, option) pairs a batch LP may use, in flat arrays, and which rows could bind.

Each class contributes its cheapest `window[k]` options (all of them by default). Options past
the window cost at least the class's `next_cost`, and capacity prices only add to an option's
cost, so bounds computed over the window stay valid when they also offer that price.
"""

from __future__ import annotations

import numpy as np

from broker.placement.capacity import JobClass, Ledger
from broker.placement.cuts import size_levels
from broker.placement.tables import FloatArray, IntArray


class OptionIndex:
    """Every (class, option) pair of a batch in flat arrays, each class's pairs together.

    Per class k, its pairs are `start[k]:start[k + 1]` in the class's cost order, so a flat
    index is `start[k] + position in cls.opts`.
    """

    def __init__(
        self,
        classes: list[JobClass],
        ledger: Ledger,
        counts: FloatArray,
        window: IntArray | None = None,
    ) -> None:
        full = np.asarray([c.opts.size for c in classes], dtype=np.int64)
        sizes = full if window is None else np.minimum(full, window)
        self.start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.cls = np.repeat(np.arange(len(classes), dtype=np.int64), sizes)
        self.opt = np.concatenate([c.opts[:n] for c, n in zip(classes, sizes, strict=True)])
        self.cost = np.concatenate([c.cost[:n] for c, n in zip(classes, sizes, strict=True)])
        self.next_cost = np.asarray(
            [c.cost[n] if n < c.opts.size else np.inf for c, n in zip(classes, sizes, strict=True)],
            dtype=np.float64,
        )
        self.site = ledger.opt_site[self.opt]
        self.counts = np.asarray(counts, dtype=np.float64)
        self.cards = np.asarray([c.demand.cards for c in classes], dtype=np.int64)
        self.need = ledger.needs(self.cards[self.cls], self.opt)
        """Per pair, the cards its option's pool gives one job (whole nodes if multi-node)."""
        self.nodes = ledger.nodes_wanted(self.cards[self.cls], self.opt)
        """Per pair, the whole free nodes one job needs there (0: its cards alone)."""
        self.cpu = np.asarray([c.demand.cpu_cores for c in classes], dtype=np.float64)
        self.memory_gb = np.asarray([c.demand.memory_gb for c in classes], dtype=np.float64)
        self.penalty = np.asarray([c.penalty for c in classes], dtype=np.float64)
        # sizes by pair only where node shapes make a class's need differ between its pools
        by_pair = ledger.shaped
        self.levels = size_levels(self.need if by_pair else self.cards)
        self.sizes, size_of = np.unique(self.need if by_pair else self.cards, return_inverse=True)
        size_of = size_of.reshape(-1).astype(np.int64)
        self.size_of = size_of if by_pair else size_of[self.cls]
        """Per pair, the position of its `need` in `sizes`."""
        self._find_binding_rows(ledger)

    @property
    def n_pairs(self) -> int:
        """Number of (class, option) pairs."""
        return int(self.opt.size)

    def caps(self, flat: IntArray, counts: FloatArray, ledger: Ledger) -> FloatArray:
        """How many jobs each pair could still take on its own (at most its class's count)."""
        k, opt, site = self.cls[flat], self.opt[flat], self.site[flat]
        caps = counts[k].astype(np.float64)
        for need, free in (
            (self.need[flat], ledger.cards[opt]),
            (self.cpu[k], ledger.cpu[site]),
            (self.memory_gb[k], ledger.memory_gb[site]),
        ):
            used = need > 0
            caps[used] = np.minimum(caps[used], np.floor(free[used] / need[used] + 1e-9))
        wanted = self.nodes[flat]
        multi = wanted > 0  # the LP's rows count cards; a bound per pair keeps nodes in view
        caps[multi] = np.minimum(
            caps[multi], np.maximum(ledger.nodes[opt[multi]], 0) // wanted[multi]
        )
        return np.maximum(caps, 0.0)

    def _find_binding_rows(self, ledger: Ledger) -> None:
        """Which rows could bind: those whose jobs, all placed there, would exceed the limit.

        A row that all the batch's jobs cannot fill stays slack for any subset of them in the
        capacity they leave, so it is never added.
        """
        n_opts, n_sizes = ledger.cards.size, self.sizes.size
        jobs = self.counts[self.cls]
        by_size = np.bincount(
            self.opt * n_sizes + self.size_of, weights=jobs, minlength=n_opts * n_sizes
        ).reshape(n_opts, n_sizes)
        self.binding_cards = (by_size @ self.sizes > ledger.cards) & ~ledger.host
        slots = self.sizes[:, None] // self.levels[None, :]
        most = by_size @ slots
        fits = ledger.cards[:, None] >= self.levels[None, :]
        self.binding_cut = (most > ledger.cards[:, None] // self.levels[None, :]) & fits
        self.binding_cut &= self.binding_cards[:, None]
        n_sites = ledger.cpu.size
        k = self.cls
        site_need = [
            np.bincount(self.site, weights=need[k] * jobs, minlength=n_sites)
            for need in (self.cpu, self.memory_gb)
        ]
        self.binding_cpu = site_need[0] > ledger.cpu + 1e-9
        self.binding_memory = site_need[1] > ledger.memory_gb + 1e-9
