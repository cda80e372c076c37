"""Query and form parameters of the console, checked: bad input is a BadInput with a message."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlencode

from computenet.types import JobKind, JobState
from computenet.usage import UsageGrouping

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_TOKEN_CHARS = 256
MAX_MOVE_BUDGET = 10_000
E = TypeVar("E", bound=StrEnum)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_POSITION = re.compile(r"^[0-9]{1,9}$")


class BadInput(ValueError):
    """A parameter the console cannot use; answered 400 with the message."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


@dataclass(frozen=True, slots=True)
class JobQuery:
    """The jobs page's filters and page: empty strings and None mean any."""

    state: JobState | None = None
    kind: JobKind | None = None
    site: str = ""
    tenant: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str = ""

    def link(self, **changes: object) -> str:
        """The query string of this query with some fields changed (empty ones left out)."""
        values = {
            "state": self.state.value if self.state else "",
            "kind": self.kind.value if self.kind else "",
            "site": self.site,
            "tenant": self.tenant,
            "page_size": "" if self.page_size == DEFAULT_PAGE_SIZE else str(self.page_size),
            "page_token": self.page_token,
        }
        values.update({k: str(v) for k, v in changes.items()})
        return urlencode({k: v for k, v in values.items() if v})


KNOWN_JOB_PARAMS = frozenset({"state", "kind", "site", "tenant", "page_size", "page_token"})


def _one(params: Mapping[str, str], name: str) -> str:
    return params.get(name, "").strip()


def enum_param(params: Mapping[str, str], name: str, enum: type[E]) -> E | None:
    """An enum value by its name; empty means any."""
    raw = _one(params, name)
    if not raw:
        return None
    try:
        return enum(raw.lower())
    except ValueError:
        choices = ", ".join(e.value for e in enum)
        raise BadInput(name, f"unknown value {raw[:40]!r}; one of {choices}") from None


def id_param(params: Mapping[str, str], name: str) -> str:
    """An id (site, tenant, job): empty or 1-128 of [A-Za-z0-9._@:-]."""
    raw = _one(params, name)
    if raw and not _ID.match(raw):
        raise BadInput(name, "not an id: use 1-128 of letters, digits and ._@:-")
    return raw


def int_param(params: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    """A whole number within [low, high]; empty means the default."""
    raw = _one(params, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(name, f"not a whole number: {raw[:40]!r}") from None
    if not low <= value <= high:
        raise BadInput(name, f"must be between {low} and {high}, got {value}")
    return value


def token_param(params: Mapping[str, str], name: str = "page_token") -> str:
    """An opaque page token: printable ASCII, bounded (the store checks its content)."""
    raw = _one(params, name)
    if len(raw) > MAX_TOKEN_CHARS or not all(33 <= ord(c) < 127 for c in raw):
        raise BadInput(name, "malformed page token")
    return raw


def reject_unknown(params: Mapping[str, str], known: frozenset[str]) -> None:
    """Refuse parameters the page does not take, so a typo is not silently ignored."""
    unknown = sorted(set(params) - known)
    if unknown:
        raise BadInput(unknown[0][:40], f"unknown parameter; this page takes {sorted(known)}")


def job_query(params: Mapping[str, str]) -> JobQuery:
    """The jobs page's query from its parameters; BadInput names the first bad one."""
    reject_unknown(params, KNOWN_JOB_PARAMS)
    return JobQuery(
        state=enum_param(params, "state", JobState),
        kind=enum_param(params, "kind", JobKind),
        site=id_param(params, "site"),
        tenant=id_param(params, "tenant"),
        page_size=int_param(
            params, "page_size", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE
        ),
        page_token=token_param(params),
    )


def drain_flag(form: Mapping[str, str]) -> bool:
    """The drain form's action: `drain` or `resume`."""
    action = _one(form, "action")
    if action not in ("drain", "resume"):
        raise BadInput("action", "must be drain or resume")
    return action == "drain"


def move_budget(form: Mapping[str, str]) -> int:
    """The rebalance form's move budget; 0 or empty: the configured budget."""
    return int_param(form, "move_budget", default=0, low=0, high=MAX_MOVE_BUDGET)


def position_token(params: Mapping[str, str], name: str = "page_token") -> int:
    """The queue page's token: how many jobs of the admission order earlier pages showed."""
    raw = token_param(params, name)
    if not raw:
        return 0
    if not _POSITION.match(raw):
        raise BadInput(name, "malformed page token")
    return int(raw)


def day_param(params: Mapping[str, str], name: str) -> str:
    """A calendar day YYYY-MM-DD (CST, as usage is recorded); empty means an open end."""
    raw = _one(params, name)
    if not raw:
        return ""
    try:
        if not _DAY.match(raw):
            raise ValueError(raw)
        return datetime.strptime(raw, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise BadInput(name, f"not a day YYYY-MM-DD: {raw[:40]!r}") from None


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """The usage page's grouping, day range (both ends included) and tenant ("": any)."""

    by: UsageGrouping = UsageGrouping.TENANT
    since: str = ""
    until: str = ""
    tenant: str = ""

    def link(self, **changes: object) -> str:
        """The query string of this query with some fields changed (empty ones left out)."""
        values = {
            "by": "" if self.by == UsageGrouping.TENANT else self.by.value,
            "since": self.since,
            "until": self.until,
            "tenant": self.tenant,
        }
        values.update({k: str(v) for k, v in changes.items()})
        return urlencode({k: v for k, v in values.items() if v})


KNOWN_USAGE_PARAMS = frozenset({"by", "since", "until", "tenant"})


def usage_query(params: Mapping[str, str]) -> UsageQuery:
    """The usage page's query from its parameters; BadInput names the first bad one."""
    reject_unknown(params, KNOWN_USAGE_PARAMS)
    query = UsageQuery(
        by=enum_param(params, "by", UsageGrouping) or UsageGrouping.TENANT,
        since=day_param(params, "since"),
        until=day_param(params, "until"),
        tenant=id_param(params, "tenant"),
    )
    if query.since and query.until and query.since > query.until:
        raise BadInput("until", f"{query.until} is before since {query.since}")
    return query
