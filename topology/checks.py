"""Cross-record consistency rules: unique ids, known link endpoints, reachable regions."""

from __future__ import annotations

from collections.abc import Sequence

from located_yaml import Loc, Problem, field_path
from topology.model import Link, Site, UserRegion


class _DisjointSets:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def consistency_problems(
    sites: Sequence[Site], regions: Sequence[UserRegion], links: Sequence[Link]
) -> list[Problem]:
    """Every cross-record problem, in document order (sites, user_regions, links, reachability)."""
    problems: list[Problem] = []
    index: dict[str, int] = {}
    first_loc: dict[str, Loc] = {}
    nodes: list[tuple[Loc, str]] = [(("sites", i, "id"), s.id) for i, s in enumerate(sites)]
    nodes += [(("user_regions", i, "id"), r.id) for i, r in enumerate(regions)]
    for loc, node_id in nodes:
        if node_id in index:
            where = _loc_text(first_loc[node_id])
            problems.append(Problem(loc, f"duplicate id {node_id!r} (already used by {where})"))
            continue
        index[node_id] = len(index)
        first_loc[node_id] = loc
    sets = _DisjointSets(len(index))
    seen_pairs: dict[frozenset[str], int] = {}
    for i, link in enumerate(links):
        ends_ok = True
        for end in ("a", "b"):
            node_id = getattr(link, end)
            if node_id not in index:
                problems.append(Problem(("links", i, end), f"unknown node {node_id!r}"))
                ends_ok = False
        if not ends_ok:
            continue
        if link.a == link.b:
            problems.append(Problem(("links", i, "b"), f"link from {link.a!r} to itself"))
            continue
        pair = frozenset((link.a, link.b))
        if pair in seen_pairs:
            problems.append(
                Problem(
                    ("links", i),
                    f"duplicate link {link.a}--{link.b} (see links[{seen_pairs[pair]}])",
                )
            )
            continue
        seen_pairs[pair] = i
        sets.union(index[link.a], index[link.b])
    site_roots = {sets.find(index[s.id]) for s in sites if s.id in index}
    for i, region in enumerate(regions):
        if index.get(region.id) is None or first_loc[region.id] != ("user_regions", i, "id"):
            continue
        if sets.find(index[region.id]) not in site_roots:
            problems.append(
                Problem(("user_regions", i, "id"), f"region {region.id!r} cannot reach any site")
            )
    return problems


def _loc_text(loc: Loc) -> str:
    return field_path(loc[:-1]) if loc and loc[-1] == "id" else field_path(loc)
