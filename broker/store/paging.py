"""Opaque page tokens of job listings and the filtered, ordered query they resume."""

from __future__ import annotations

import base64
import binascii
import re

from sqlalchemy import Select, select

from broker.store import tables
from broker.store.protocol import JobFilter

_TOKEN_PREFIX = "jobs.v1:"
_TOKEN_BODY = re.compile(r"(0|[1-9][0-9]{0,18})")
_MAX_KEY = 2**63 - 1  # a larger number overflows the database's 64-bit integer


def encode_page_token(created_seq: int) -> str:
    """The token resuming a listing after the job with this submission order key."""
    raw = f"{_TOKEN_PREFIX}{created_seq}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page_token(token: str) -> int:
    """The submission order key a token resumes after (0 for ""); ValueError if malformed."""
    if token == "":
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise ValueError("malformed page token") from None
    body = raw.removeprefix(_TOKEN_PREFIX)
    if body == raw or not _TOKEN_BODY.fullmatch(body) or int(body) > _MAX_KEY:
        raise ValueError("malformed page token")
    return int(body)


def filtered_jobs(flt: JobFilter, after_created_seq: int = 0) -> Select[tuple[object, ...]]:
    """Jobs matching `flt` with an order key above `after_created_seq`, in submission order."""
    jobs = tables.jobs
    query = select(jobs).where(jobs.c.created_seq > after_created_seq)
    if flt.states is not None:
        query = query.where(jobs.c.state.in_(sorted(s.value for s in flt.states)))
    if flt.kind is not None:
        query = query.where(jobs.c.kind == flt.kind.value)
    if flt.site is not None:
        query = query.where(jobs.c.site == flt.site)
    if flt.tenant is not None:
        query = query.where(jobs.c.tenant == flt.tenant)
    return query.order_by(jobs.c.created_seq)
