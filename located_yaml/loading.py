"""Reading a YAML mapping from a file and validating it against a pydantic model, with values
from elsewhere (command-line flags) laid over it; every problem becomes a LocatedIssue."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from located_yaml.document import Loc, YamlDocument, YamlSyntaxError, read_yaml
from located_yaml.issues import (
    LocatedError,
    LocatedIssue,
    Problem,
    duplicate_key_issues,
    in_file_order,
    locate,
    validation_problems,
)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Override:
    """A value given outside the document that replaces the one at `loc` (or fills it in).

    Problems with it are reported under `source` (e.g. `--listen`), not at a line of the file.
    """

    loc: Loc
    value: Any
    source: str


def read_source(path: str | os.PathLike[str]) -> str:
    """The text of a file; LocatedError names the file when it is missing or unreadable."""
    name = os.fspath(path)
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocatedError([LocatedIssue(name, None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LocatedError([LocatedIssue(name, None, "", f"cannot read file: {reason}")]) from None


def load_mapping(text: str, *, file: str, allow_empty: bool = False) -> YamlDocument:
    """Parse YAML whose top level is a mapping (an empty document reads as {} if allowed)."""
    try:
        doc = read_yaml(text)
    except YamlSyntaxError as exc:
        raise LocatedError([LocatedIssue(file, exc.line, "", str(exc))]) from None
    if doc.data is None and allow_empty:
        return YamlDocument(data={}, lines={})
    if not isinstance(doc.data, dict):
        raise LocatedError([LocatedIssue(file, doc.line_of(()), "", "top level must be a mapping")])
    return doc


def validate_mapping(
    model: type[M],
    doc: YamlDocument,
    *,
    file: str | None,
    overrides: Sequence[Override] = (),
    context: dict[str, Any] | None = None,
) -> M:
    """`doc.data` with `overrides` laid over it, validated as `model`.

    LocatedError lists repeated keys and every invalid field: at its line in `file`, or under the
    override's source when the value came from an override.
    """
    duplicates = duplicate_key_issues(file, doc)
    try:
        result = model.model_validate(_overlaid(doc.data, overrides), context=context)
    except ValidationError as exc:
        issues = duplicates + _attribute(file, doc, validation_problems(exc), overrides)
        raise LocatedError(in_file_order(issues)) from None
    if duplicates:
        raise LocatedError(duplicates)
    return result


def _overlaid(data: Any, overrides: Sequence[Override]) -> Any:
    if not overrides:
        return data
    merged = copy.deepcopy(data)
    for override in overrides:
        node = merged
        for key in override.loc[:-1]:
            if not isinstance(node, dict):
                break
            node = node.setdefault(key, {})
        # a section the file got wrong (not a mapping) keeps its own error instead
        if isinstance(node, dict):
            node[override.loc[-1]] = override.value
    return merged


def _attribute(
    file: str | None, doc: YamlDocument, problems: list[Problem], overrides: Sequence[Override]
) -> list[LocatedIssue]:
    issues: list[LocatedIssue] = []
    for problem in problems:
        source = next((o.source for o in overrides if problem.loc[: len(o.loc)] == o.loc), None)
        if source is not None:
            issues.append(LocatedIssue(None, None, source, problem.message))
        else:
            issues += locate(file, doc, [problem])
    return issues
