"""Errors of the topology package: load and consistency issues, unknown nodes, no route."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopologyIssue:
    """One problem in a topology: where it is (file, line, field) and what is wrong."""

    file: str | None
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = [
            part for part in (self.file, None if self.line is None else str(self.line)) if part
        ]
        head = ":".join(where)
        body = f"{self.field}: {self.message}" if self.field else self.message
        return f"{head}: {body}" if head else body


class TopologyError(ValueError):
    """A topology that cannot be built; `issues` lists every problem found, in file order."""

    def __init__(self, issues: list[TopologyIssue]) -> None:
        if not issues:
            raise ValueError("TopologyError needs at least one issue")
        self.issues: tuple[TopologyIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


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
