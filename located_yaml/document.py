"""YAML reading that remembers the line of every mapping key and sequence item."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from located_yaml.limits import LimitExceeded, YamlLimits, check_limits

Loc = tuple[str | int, ...]
"""A path into a document: mapping keys and sequence indexes, outermost first."""

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key given twice in one mapping; YAML keeps the last value, which hides mistakes."""

    loc: Loc
    line: int
    first_line: int


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Plain data from a YAML document plus the 1-based line of each location in it."""

    data: Any
    lines: dict[Loc, int]
    duplicates: tuple[DuplicateKey, ...] = ()
    """Keys given more than once in one mapping, in document order."""

    def line_of(self, loc: Loc) -> int | None:
        """Line of the longest prefix of `loc` that the document has a line for."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


class YamlSyntaxError(ValueError):
    """The text is not valid YAML; `line` is 1-based when known."""

    def __init__(self, message: str, line: int | None) -> None:
        self.line = line
        super().__init__(message)


DEFAULT_LIMITS = YamlLimits()


def read_yaml(text: str, limits: YamlLimits = DEFAULT_LIMITS) -> YamlDocument:
    """Parse one YAML document, keeping key and item lines; raise YamlSyntaxError when malformed
    or past `limits` (checked on the parse events before any value is built)."""
    _parse(text, lambda loader: check_limits(loader, limits))
    node, data = _parse(text, _construct)
    lines: dict[Loc, int] = {}
    duplicates: list[DuplicateKey] = []
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _record(node, (), lines, duplicates, set())
    return YamlDocument(data=data, lines=lines, duplicates=tuple(duplicates))


def _construct(loader: yaml.SafeLoader) -> tuple[yaml.Node | None, Any]:
    node = loader.get_single_node()
    return node, None if node is None else loader.construct_document(node)


def _parse(text: str, step: Any) -> Any:
    """`step(loader)` on a fresh loader over `text`, every failure as a YamlSyntaxError."""
    loader = _Loader(text)
    try:
        return step(loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "invalid YAML"
        raise YamlSyntaxError(f"invalid YAML: {reason}", line) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}", None) from None
    except LimitExceeded as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}", exc.line) from None
    except (ValueError, OverflowError, TypeError) as exc:
        # Scalars the safe constructor cannot build: a 5,000-digit integer, 2001-13-45 as a date.
        raise YamlSyntaxError(f"invalid YAML: a value cannot be read: {exc}", None) from None
    finally:
        loader.dispose()


MAX_KEY_CHARS = 40
"""Longer keys are cut in field paths: a path names a place, it need not repeat a huge key."""


def field_path(loc: Loc) -> str:
    """Render a location as `links[3].rtt_ms`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if len(part) <= MAX_KEY_CHARS else part[:MAX_KEY_CHARS] + "…"
            text += f".{key}" if text else key
    return text


def _record(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    duplicates: list[DuplicateKey],
    seen: set[int],
) -> None:
    if id(node) in seen:  # aliases share nodes; their lines are those of the anchor
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            child = (*loc, key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.value in keys:
                duplicates.append(DuplicateKey(child, line, lines[child]))
            keys.add(key_node.value)
            lines.setdefault(child, line)
            _record(value_node, child, lines, duplicates, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*loc, i)
            lines.setdefault(child, item.start_mark.line + 1)
            _record(item, child, lines, duplicates, seen)
