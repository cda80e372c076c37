"""Storage faults the caller can do nothing about but retry: the database is read-only, full,
locked past its busy timeout, or unreachable. They become `StorageUnavailableError`."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc

from computenet.errors import UnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_AFTER_S = 2.0
"""Retry hint given with a storage fault: long enough for a lock or a failover to clear."""

_UNAVAILABLE_ERRORS = (sa_exc.OperationalError, sa_exc.DisconnectionError, sa_exc.InterfaceError)
"""SQLAlchemy's classes of faults of the database's operation (not of the query): for SQLite
a read-only file, a full disk, an I/O error, a lock held past the busy timeout; for
PostgreSQL a refused or dropped connection, a server shutting down."""

_UNAVAILABLE_NAMES = ("OperationalError", "DisconnectionError", "InterfaceError")
"""The same classes as the submission process reports them: `Name: message`."""


_DRIVER_PREFIX = re.compile(r"^\([A-Za-z0-9_.]+\)\s*")  # "(sqlite3.OperationalError) "


class StorageUnavailableError(UnavailableError):
    """The job store cannot be read or written now; nothing was half-written, retry later."""


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no detail"
    return line[:300]


def _describe(exc: BaseException) -> str:
    original = getattr(exc, "orig", None)  # the driver's own error, without SQL and params
    return _first_line(str(original if original is not None else exc))


def storage_unavailable(exc: BaseException) -> StorageUnavailableError | None:
    """The typed error for a storage fault, or None if `exc` is not one."""
    if isinstance(exc, StorageUnavailableError):
        return exc
    if isinstance(exc, _UNAVAILABLE_ERRORS) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    ):
        return _unavailable(_describe(exc))
    return None


def storage_unavailable_from_text(text: str) -> StorageUnavailableError | None:
    """The typed error for a fault reported as `Name: message` text (the submission process)."""
    name, _, message = text.partition(":")
    if name.strip() in _UNAVAILABLE_NAMES:
        return _unavailable(_first_line(_DRIVER_PREFIX.sub("", message.strip())))
    return None


def _unavailable(detail: str) -> StorageUnavailableError:
    return StorageUnavailableError(
        f"the job store is unavailable ({detail}); nothing was changed, retry later",
        retry_after_s=RETRY_AFTER_S,
    )


def translating(fn: Callable[[], T]) -> Callable[[], T]:
    """`fn`, raising StorageUnavailableError for a storage fault (run it on a store thread)."""

    @functools.wraps(fn)
    def call() -> T:
        try:
            return fn()
        except Exception as exc:
            error = storage_unavailable(exc)
            if error is None:
                raise
            log.warning("storage unavailable error=%s", error.message)
            raise error from exc

    return call
