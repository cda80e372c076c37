"""The size bounds of a job spec, and the checks that refuse text no site could run or store.

Every bound lives here, so the SDK (before sending), the broker (on arrival) and the reference
in docs/jobs.md agree. The checks are pydantic validators used by `computenet.spec`; a spec the
federation has already accepted (read back from the broker's storage, or a job the broker
returns to a client) is validated with `ACCEPTED` as context and skips them, so a job accepted
before a bound existed stays readable and listable.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo

from computenet.printable import has_unsafe

MAX_SPEC_BYTES = 64 * 1024
"""The whole spec, as canonical JSON encoded in UTF-8."""
MAX_NAME_CHARS = 128
MAX_ID_CHARS = 64
"""Accelerator models, topology node, region, site and province ids."""
MAX_CONSTRAINT_ENTRIES = 256
"""Entries of each constraints list."""
MAX_ACCEPTED_MODELS = 32
"""Accelerator models one job may accept (`resources.accelerators`)."""
MAX_USER_REGIONS = 256
MAX_COMMAND_ARGS = 256
MAX_ARG_CHARS = 4096
MAX_LABELS = 64
MAX_LABEL_NAME_CHARS = 63
MAX_LABEL_PREFIX_CHARS = 253
MAX_LABEL_VALUE_CHARS = 256

MAX_SPEC_FILE_BYTES = 1024 * 1024
"""A spec file: far above any valid spec (comments included), far below harm."""
MAX_SPEC_FILE_DEPTH = 32
"""Nesting of mappings and lists in a spec file (a valid spec nests 4 deep)."""
MAX_SPEC_FILE_VALUES = 100_000
"""Values in a spec file once aliases are expanded (a billion laughs stops here)."""

ACCEPTED = {"computenet.spec.accepted": True}
"""Validation context of a spec accepted earlier: the bounds and checks below are not applied."""

# Kubernetes-style label keys: an optional DNS-subdomain prefix and a slash, then a name of
# letters and digits (any script) with `-`, `_` and `.` inside.
_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME = re.compile(r"[^\W_]([\w.-]*[^\W_])?")


def enforced(info: ValidationInfo) -> bool:
    """True unless the spec being validated was accepted earlier (context `ACCEPTED`)."""
    return not (isinstance(info.context, dict) and info.context.get(next(iter(ACCEPTED))))


def _storable(value: str) -> None:
    """No string of a spec may hold NUL or a lone surrogate: no site can run, store or send it."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"must be valid Unicode (a lone surrogate cannot be encoded): "
            f"U+{ord(value[exc.start]):04X} at character {exc.start}"
        ) from None


def _text(value: str, info: ValidationInfo) -> str:
    """A name or id: storable, and with no control or bidirectional-override character."""
    if enforced(info):
        _storable(value)
        if has_unsafe(value):
            raise ValueError("must not contain control, bidirectional or line-separator characters")
    return value


def _argument(value: str, info: ValidationInfo) -> str:
    """A command argument: storable; tabs and newlines are legitimate (`sh -c` scripts)."""
    if enforced(info):
        _storable(value)
    return value


def _label_key(value: str, info: ValidationInfo) -> str:
    if not enforced(info):
        return value
    _storable(value)
    prefix, slash, name = value.rpartition("/")
    if len(name) > MAX_LABEL_NAME_CHARS:
        raise ValueError(f"label name must be at most {MAX_LABEL_NAME_CHARS} characters")
    if slash and not (len(prefix) <= MAX_LABEL_PREFIX_CHARS and _PREFIX.fullmatch(prefix)):
        raise ValueError(
            f"label prefix must be a DNS subdomain (lower-case letters, digits, '-' and '.'; "
            f"at most {MAX_LABEL_PREFIX_CHARS} characters)"
        )
    if not _NAME.fullmatch(name):
        raise ValueError(
            "label name must be letters and digits with '-', '_' or '.' inside "
            "(an optional 'prefix/' before it)"
        )
    return value


def _label_value(value: str, info: ValidationInfo) -> str:
    if enforced(info):
        if len(value) > MAX_LABEL_VALUE_CHARS:
            raise ValueError(f"label value must be at most {MAX_LABEL_VALUE_CHARS} characters")
        _text(value, info)
    return value


def _bounded(limit: int, what: str) -> Any:
    def check(value: Any, info: ValidationInfo) -> Any:
        if enforced(info) and len(value) > limit:
            raise ValueError(f"at most {limit} {what}")
        return value

    return AfterValidator(check)


Text = Annotated[str, AfterValidator(_text)]
"""A name or identifier of a spec."""
Argument = Annotated[str, AfterValidator(_argument)]
"""One command argument."""
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
ConstraintEntries = Annotated[
    tuple[Annotated[Text, _bounded(MAX_ID_CHARS, "characters")], ...],
    _bounded(MAX_CONSTRAINT_ENTRIES, "entries"),
]
ModelIds = Annotated[
    tuple[Annotated[Text, _bounded(MAX_ID_CHARS, "characters")], ...],
    _bounded(MAX_ACCEPTED_MODELS, "models"),
]


def spec_size_violation(encoded_bytes: int) -> str | None:
    """Why a spec of `encoded_bytes` (compact JSON, UTF-8) is too big, or None."""
    if encoded_bytes > MAX_SPEC_BYTES:
        return f"the spec is {encoded_bytes} bytes as JSON; at most {MAX_SPEC_BYTES} are accepted"
    return None
