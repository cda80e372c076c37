"""All-pairs route tables: min-RTT paths (Dijkstra) and widest paths (maximum spanning forest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, dijkstra

NO_NODE = -9999  # scipy's marker for "no predecessor"
_CHUNK_ROWS = 256
_A = TypeVar("_A", bound=np.ndarray[Any, Any])


@dataclass(frozen=True, slots=True)
class LinkArrays:
    """Links as parallel arrays of node indices and attributes."""

    n_nodes: int
    a: NDArray[np.int64]
    b: NDArray[np.int64]
    rtt_ms: NDArray[np.float64]
    bandwidth_gbps: NDArray[np.float64]
    cny_per_gb: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RouteRows:
    """Route tables from a set of source nodes (one row per source) to every node (columns).

    `rtt_ms` and `rtt_pred` describe min-RTT paths; `bottleneck_gbps`, `transfer_cny_per_gb` and
    `tree_pred` describe the widest path, which is the path in the maximum spanning forest.
    Unreachable columns hold inf RTT, zero bottleneck, inf cost and NO_NODE predecessors; the
    source's own column holds zero RTT, inf bottleneck and zero cost.
    """

    rtt_ms: NDArray[np.float64]
    rtt_pred: NDArray[np.int32]
    bottleneck_gbps: NDArray[np.float64]
    transfer_cny_per_gb: NDArray[np.float64]
    tree_pred: NDArray[np.int32]


class RoutePlanner:
    """Holds the sparse graphs and computes route rows for any set of source nodes."""

    def __init__(self, links: LinkArrays) -> None:
        n = links.n_nodes
        rows = np.concatenate([links.a, links.b])
        cols = np.concatenate([links.b, links.a])
        self._n = n
        self._rtt_graph = csr_matrix((np.tile(links.rtt_ms, 2), (rows, cols)), shape=(n, n))
        tree = _max_spanning_forest(links)
        self._tree_graph = csr_matrix(
            (
                np.ones(2 * len(tree)),
                (np.r_[links.a[tree], links.b[tree]], np.r_[links.b[tree], links.a[tree]]),
            ),
            shape=(n, n),
        )
        lo = np.minimum(links.a[tree], links.b[tree])
        hi = np.maximum(links.a[tree], links.b[tree])
        keys = lo * n + hi
        order = np.argsort(keys)
        self._tree_keys = keys[order]
        self._tree_bw = links.bandwidth_gbps[tree][order]
        self._tree_cost = links.cny_per_gb[tree][order]

    def rows(self, sources: NDArray[np.int64]) -> RouteRows:
        """Route rows from `sources` to every node."""
        rtt, rtt_pred = dijkstra(
            self._rtt_graph, directed=False, indices=sources, return_predecessors=True
        )
        rtt = np.atleast_2d(rtt)
        bott = np.empty_like(rtt)
        cost = np.empty_like(rtt)
        tree_pred = np.empty(rtt.shape, dtype=np.int32)
        for start in range(0, len(sources), _CHUNK_ROWS):
            chunk = sources[start : start + _CHUNK_ROWS]
            part = slice(start, start + len(chunk))
            for k, src in enumerate(chunk):
                tree_pred[start + k] = breadth_first_order(
                    self._tree_graph, int(src), directed=False, return_predecessors=True
                )[1]
            bott[part], cost[part] = self._fold_tree_paths(tree_pred[part], chunk)
        return RouteRows(
            rtt_ms=_readonly(rtt),
            rtt_pred=_readonly(np.atleast_2d(rtt_pred).astype(np.int32, copy=False)),
            bottleneck_gbps=_readonly(bott),
            transfer_cny_per_gb=_readonly(cost),
            tree_pred=_readonly(tree_pred),
        )

    def _fold_tree_paths(
        self, pred: NDArray[np.int32], sources: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Min bandwidth and summed cost along each tree path, by pointer doubling to the source."""
        n = self._n
        cols = np.arange(n)
        has_pred = pred >= 0
        pointer = np.where(has_pred, pred, cols[None, :]).astype(np.int64)
        keys = np.minimum(pointer, cols) * n + np.maximum(pointer, cols)
        pos = np.minimum(np.searchsorted(self._tree_keys, keys), max(len(self._tree_keys) - 1, 0))
        if len(self._tree_keys):
            bott = np.where(has_pred, self._tree_bw[pos], np.inf)
            cost = np.where(has_pred, self._tree_cost[pos], 0.0)
        else:
            bott = np.full(pred.shape, np.inf)
            cost = np.zeros(pred.shape)
        while True:
            bott = np.minimum(bott, np.take_along_axis(bott, pointer, axis=1))
            cost = cost + np.take_along_axis(cost, pointer, axis=1)
            jumped = np.take_along_axis(pointer, pointer, axis=1)
            if np.array_equal(jumped, pointer):
                break
            pointer = jumped
        reached = has_pred | (cols[None, :] == sources[:, None])
        return np.where(reached, bott, 0.0), np.where(reached, cost, np.inf)


def walk_back(pred_row: NDArray[np.int32], source: int, target: int) -> list[int]:
    """Node indices from `source` to `target` following a predecessor row rooted at `source`."""
    path = [target]
    node = target
    while node != source:
        node = int(pred_row[node])
        if node < 0:
            return []
        path.append(node)
    path.reverse()
    return path


def _max_spanning_forest(links: LinkArrays) -> NDArray[np.int64]:
    """Indices of the links of a maximum-bandwidth spanning forest (Kruskal, ties by link order)."""
    parent = list(range(links.n_nodes))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    chosen: list[int] = []
    for k in np.argsort(-links.bandwidth_gbps, kind="stable").tolist():
        ra, rb = find(int(links.a[k])), find(int(links.b[k]))
        if ra != rb:
            parent[ra] = rb
            chosen.append(k)
    return np.asarray(chosen, dtype=np.int64)


def _readonly(array: _A) -> _A:
    array.flags.writeable = False
    return array
