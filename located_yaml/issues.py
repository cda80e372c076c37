"""Problems found in a YAML document, located by file, line and field, and how they read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from located_yaml.document import Loc, YamlDocument, field_path


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem located by its path in the document, before the path is turned into a line."""

    loc: Loc
    message: str


@dataclass(frozen=True, slots=True)
class LocatedIssue:
    """One problem in a document: where it is (file, line, field) and what is wrong."""

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


class LocatedError(ValueError):
    """A document that cannot be used; `issues` lists every problem found, in file order."""

    def __init__(self, issues: Iterable[LocatedIssue]) -> None:
        self.issues: tuple[LocatedIssue, ...] = tuple(issues)
        if not self.issues:
            raise ValueError(f"{type(self).__name__} needs at least one issue")
        super().__init__("\n".join(str(issue) for issue in self.issues))


def locate(file: str | None, doc: YamlDocument, problems: Iterable[Problem]) -> list[LocatedIssue]:
    """Issues for `problems` at the lines `doc` has for them, deduplicated, in file order."""
    return in_file_order(
        LocatedIssue(file, doc.line_of(p.loc), field_path(p.loc), p.message) for p in problems
    )


def in_file_order(issues: Iterable[LocatedIssue]) -> list[LocatedIssue]:
    """`issues` without repeats, sorted by file, line and field (issues without a line first)."""
    unique = dict.fromkeys(issues)
    return sorted(unique, key=lambda i: (i.file or "", i.line or 0, i.field))


def duplicate_key_issues(file: str | None, doc: YamlDocument) -> list[LocatedIssue]:
    """One issue per key that a mapping of `doc` gives more than once."""
    return [
        LocatedIssue(file, d.line, field_path(d.loc), f"given twice (first on line {d.first_line})")
        for d in doc.duplicates
    ]


def validation_problems(exc: ValidationError) -> list[Problem]:
    """The errors of a pydantic validation as located problems with short, plain messages."""
    return [
        Problem(tuple(part for part in err["loc"] if not _is_union_tag(part)), _message(err))
        for err in exc.errors()
        if not is_consequence(err)
    ]


def is_consequence(err: Any) -> bool:
    """True for pydantic's "too short after validation": the list had enough items, some of
    which were invalid and are reported on their own."""
    if err["type"] != "too_short" or not isinstance(err.get("input"), list | tuple):
        return False
    return len(err["input"]) >= (err.get("ctx") or {}).get("min_length", 0)


def _is_union_tag(part: str | int) -> bool:
    # pydantic inserts the member type (e.g. "float", "function-after[...]") into union locations
    return isinstance(part, str) and (
        "[" in part or part in {"float", "int", "str", "list", "none"}
    )


_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}
_TYPES = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "finite_number": "a finite number",
}


MAX_GOT_CHARS = 60
"""A wrong value is quoted up to this length: enough to recognise it, never a whole file."""


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_GOT_CHARS else f"{text[:MAX_GOT_CHARS]}… ({len(text)} chars)"


def _message(err: Any) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    got = f" (got {_short_repr(value)})" if not isinstance(value, dict | list) else ""
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {_BOUNDS[kind]} {limit}{got}"
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}{got}"
    if kind == "string_unicode":
        return "must be valid Unicode (a lone surrogate cannot be encoded)"
    if kind == "missing":
        return "required field missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{got}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}{got}"
    if kind == "too_short" and ctx.get("field_type") in ("List", "Tuple"):
        return f"must have at least {ctx.get('min_length')} item(s)"
    return f"{err['msg'][0].lower()}{err['msg'][1:]}{got}"
