"""Reading a YAML mapping from a file and validating it against a pydantic model, every
problem reported as a LocatedIssue."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from located_yaml.document import YamlDocument, YamlSyntaxError, read_yaml
from located_yaml.issues import (
    LocatedError,
    LocatedIssue,
    duplicate_key_issues,
    in_file_order,
    locate,
    validation_problems,
)

M = TypeVar("M", bound=BaseModel)


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
        return YamlDocument(data={}, lines={(): 1})
    if not isinstance(doc.data, dict):
        raise LocatedError([LocatedIssue(file, doc.line_of(()), "", "top level must be a mapping")])
    return doc


def validate_mapping(
    model: type[M],
    doc: YamlDocument,
    *,
    file: str,
    strict: bool | None = None,
    context: dict[str, Any] | None = None,
) -> M:
    """`doc.data` validated as `model`; LocatedError lists repeated keys and every invalid field."""
    duplicates = duplicate_key_issues(file, doc)
    try:
        result = model.model_validate(doc.data, strict=strict, context=context)
    except ValidationError as exc:
        issues = duplicates + locate(file, doc, validation_problems(exc))
        raise LocatedError(in_file_order(issues)) from None
    if duplicates:
        raise LocatedError(duplicates)
    return result
