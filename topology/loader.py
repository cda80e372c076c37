"""Loading topology YAML into Topology snapshots, with errors naming file, line and field."""

from __future__ import annotations

import functools
import os
from importlib import resources

from located_yaml import LocatedError, load_mapping, locate, read_source, validate_mapping
from topology.checks import consistency_problems
from topology.errors import TopologyError
from topology.graph import Topology
from topology.schema import TopologyFile, build_records

DEFAULT_TOPOLOGY_FILE = "china.yaml"


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Load and build a topology file; TopologyError lists every problem (also unreadable files)."""
    try:
        text = read_source(path)
    except LocatedError as exc:
        raise TopologyError(exc.issues) from None
    return parse_topology(text, file=os.fspath(path))


def parse_topology(text: str, file: str = "<string>") -> Topology:
    """Build a topology from YAML text; `file` is used in error messages."""
    try:
        doc = load_mapping(text, file=file)
        schema = validate_mapping(TopologyFile, doc, file=file)
    except LocatedError as exc:
        raise TopologyError(exc.issues) from None
    sites, regions, links, catalogue, problems = build_records(schema)
    problems += consistency_problems(sites, regions, links) if not problems else []
    if problems:
        raise TopologyError(locate(file, doc, problems))
    return Topology(sites, regions, links, accelerators=catalogue)


@functools.cache
def default_topology() -> Topology:
    """The built-in China topology (topology/data/china.yaml), built once per process."""
    source = resources.files("topology") / "data" / DEFAULT_TOPOLOGY_FILE
    return parse_topology(
        source.read_text(encoding="utf-8"), file=f"topology/data/{DEFAULT_TOPOLOGY_FILE}"
    )
