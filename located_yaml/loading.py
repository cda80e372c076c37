"""Reading a YAML mapping from a file and validating it against a pydantic model, with values
from elsewhere (command-line flags) laid over it; every problem becomes a LocatedIssue."""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from located_yaml.document import DEFAULT_LIMITS, Loc, YamlDocument, YamlSyntaxError, read_yaml
from located_yaml.issues import (
    LocatedError,
    LocatedIssue,
    Problem,
    duplicate_key_issues,
    in_file_order,
    locate,
    validation_problems,
)
from located_yaml.limits import YamlLimits

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Override:
    """A value given outside the document that replaces the one at `loc` (or fills it in).

    Problems with it are reported under `source` (e.g. `--listen`), not at a line of the file.
    """

    loc: Loc
    value: Any
    source: str


DEFAULT_MAX_SOURCE_BYTES = 64 * 1024 * 1024


def read_source(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_SOURCE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes`.

    LocatedError names the file (and the line of a byte that is not UTF-8) when it is missing,
    unreadable, not a regular file (a directory, a FIFO that would block), too big or not text.
    """
    name = os.fspath(path)
    try:
        data = read_regular_file(name, max_bytes)
    except FileNotFoundError:
        raise LocatedError([LocatedIssue(name, None, "", "no such file")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LocatedError([LocatedIssue(name, None, "", f"cannot read file: {reason}")]) from None
    except (SourceError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise LocatedError([LocatedIssue(name, None, "", str(exc))]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        issue = LocatedIssue(name, line, "", f"not UTF-8 text (byte 0x{data[exc.start]:02x})")
        raise LocatedError([issue]) from None


class SourceError(ValueError):
    """A path that names no readable text file of an acceptable size."""


def read_regular_file(name: str, max_bytes: int) -> bytes:
    """The bytes of a regular file; SourceError for anything else or anything bigger.

    Opened without blocking, so a FIFO with no writer is refused instead of waiting forever.
    """
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SourceError("is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise SourceError("not a regular file (a pipe, socket or device)")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes and (chunk := os.read(fd, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise SourceError(f"larger than {max_bytes} bytes")
    return data


def load_mapping(
    text: str, *, file: str, allow_empty: bool = False, limits: YamlLimits = DEFAULT_LIMITS
) -> YamlDocument:
    """Parse YAML whose top level is a mapping (an empty document reads as {} if allowed)."""
    try:
        doc = read_yaml(text, limits)
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
