"""Bounds on a YAML document's nesting and alias-expanded size, checked on its parse events
before any value is built, so no document can exhaust the stack or memory of what reads it."""

from __future__ import annotations

from dataclasses import dataclass

import yaml


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """What a document may hold; every reader of the package applies one."""

    max_depth: int = 100
    """Mappings and lists nested in each other."""
    max_values: int = 5_000_000
    """Scalars, mappings and lists counted with every alias expanded to what it names: a few
    aliases of aliases can stand for billions of values (the "billion laughs")."""


class LimitExceeded(ValueError):
    """The document goes past a bound; `line` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        self.line = line
        super().__init__(message)


@dataclass(slots=True)
class _Open:
    """A mapping or list whose end has not been seen yet."""

    anchor: str | None
    values: int = 1


def check_limits(loader: yaml.SafeLoader, limits: YamlLimits) -> None:
    """Read every event from `loader`; raise LimitExceeded where the first bound is passed.

    Parse errors surface as the loader raises them (yaml.YAMLError).
    """
    sizes: dict[str, int] = {}  # anchor -> values it expands to
    open_: list[_Open] = []
    total = 0
    while loader.check_event():
        event = loader.get_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= limits.max_depth:
                raise LimitExceeded(f"nested deeper than {limits.max_depth} levels", line)
            open_.append(_Open(event.anchor))
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            done = open_.pop()
            added = done.values
            if done.anchor is not None:
                sizes[done.anchor] = added
        elif isinstance(event, yaml.ScalarEvent):
            added = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            added = sizes.get(event.anchor or "", 1)
        else:
            continue
        if open_:
            open_[-1].values += added
        else:
            total += added
        if total + sum(o.values for o in open_) > limits.max_values:
            raise LimitExceeded(
                f"more than {limits.max_values} values once aliases are expanded", line
            )
