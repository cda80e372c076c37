"""YAML documents that remember where each value was written, so that every problem found in
them can be reported as `file:line: field: message`."""

from located_yaml.document import (
    DuplicateKey,
    Loc,
    YamlDocument,
    YamlSyntaxError,
    field_path,
    read_yaml,
)
from located_yaml.issues import (
    LocatedError,
    LocatedIssue,
    Problem,
    duplicate_key_issues,
    in_file_order,
    locate,
    validation_problems,
)
from located_yaml.loading import Override, load_mapping, read_source, validate_mapping

__all__ = [
    "DuplicateKey",
    "Loc",
    "LocatedError",
    "LocatedIssue",
    "Override",
    "Problem",
    "YamlDocument",
    "YamlSyntaxError",
    "duplicate_key_issues",
    "field_path",
    "in_file_order",
    "load_mapping",
    "locate",
    "read_source",
    "read_yaml",
    "validate_mapping",
    "validation_problems",
]
