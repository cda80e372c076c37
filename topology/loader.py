"""Loading topology YAML into Topology snapshots, with errors naming file, line and field."""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from topology.checks import Loc, Problem, consistency_problems, field_path
from topology.errors import TopologyError, TopologyIssue
from topology.graph import Topology
from topology.schema import TopologyFile, build_records
from topology.yamlsource import YamlDocument, YamlSyntaxError, read_yaml

DEFAULT_TOPOLOGY_FILE = "china.yaml"


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Load and build a topology file; TopologyError lists every problem (also unreadable files)."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError([TopologyIssue(name, None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TopologyError(
            [TopologyIssue(name, None, "", f"cannot read file: {reason}")]
        ) from None
    return parse_topology(text, file=name)


def parse_topology(text: str, file: str = "<string>") -> Topology:
    """Build a topology from YAML text; `file` is used in error messages."""
    try:
        doc = read_yaml(text)
    except YamlSyntaxError as exc:
        raise TopologyError([TopologyIssue(file, exc.line, "", str(exc))]) from None
    if not isinstance(doc.data, dict):
        raise TopologyError(
            [TopologyIssue(file, doc.line_of(()), "", "top level must be a mapping")]
        )
    try:
        schema = TopologyFile.model_validate(doc.data)
    except ValidationError as exc:
        raise _error(file, doc, [_problem(err) for err in exc.errors()]) from None
    sites, regions, links, problems = build_records(schema)
    problems += consistency_problems(sites, regions, links) if not problems else []
    if problems:
        raise _error(file, doc, problems)
    return Topology(sites, regions, links)


@functools.cache
def default_topology() -> Topology:
    """The built-in China topology (topology/data/china.yaml), built once per process."""
    source = resources.files("topology") / "data" / DEFAULT_TOPOLOGY_FILE
    return parse_topology(
        source.read_text(encoding="utf-8"), file=f"topology/data/{DEFAULT_TOPOLOGY_FILE}"
    )


def _error(file: str, doc: YamlDocument, problems: list[Problem]) -> TopologyError:
    issues = {
        TopologyIssue(file, doc.line_of(p.loc), field_path(p.loc), p.message): None
        for p in problems
    }
    return TopologyError(sorted(issues, key=lambda issue: (issue.line or 0, issue.field)))


def _problem(err: Any) -> Problem:
    loc: Loc = tuple(part for part in err["loc"] if not _is_union_tag(part))
    return Problem(loc, _message(err))


def _is_union_tag(part: str | int) -> bool:
    # pydantic inserts the member type (e.g. "float", "function-after[...]") into union locations
    return isinstance(part, str) and (
        "[" in part or part in {"float", "int", "str", "list", "none"}
    )


def _message(err: Any) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    got = f" (got {value!r})" if not isinstance(value, dict | list) else ""
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {bounds[kind]} {limit}{got}"
    if kind == "missing":
        return "required field missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{got}"
    if kind in {"float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"}:
        return f"must be a {'number' if kind.startswith('float') else 'whole number'}{got}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}{got}"
    if kind == "too_short" and ctx.get("field_type") == "List":
        return f"must have at least {ctx.get('min_length')} item(s)"
    return f"{err['msg'][0].lower()}{err['msg'][1:]}{got}"
