"""Errors of the topology package: load and consistency issues, unknown nodes, no route."""

from __future__ import annotations

from located_yaml import LocatedError, LocatedIssue

TopologyIssue = LocatedIssue
"""One problem in a topology: where it is (file, line, field) and what is wrong."""


class TopologyError(LocatedError):
    """A topology that cannot be built; `issues` lists every problem found, in file order."""


class UnknownNodeError(KeyError):
    """A query named a node id that is not in the topology."""

    def __init__(self, node_id: str, expected: str = "node") -> None:
        self.node_id = node_id
        super().__init__(f"unknown {expected} {node_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class NoRouteError(LookupError):
    """Two nodes are in different components of the graph."""

    def __init__(self, a: str, b: str) -> None:
        self.a, self.b = a, b
        super().__init__(f"no route from {a!r} to {b!r}")
