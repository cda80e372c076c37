"""Process logging for the broker and the agent: operator lines at INFO, library internals below."""

from __future__ import annotations

import logging
import re

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

LIBRARY_LOGGERS = (
    "alembic",
    "apscheduler",
    "asyncio",
    "grpc",
    "httpcore",
    "httpx",
    "matplotlib",
    "PIL",
    "sqlalchemy",
    "urllib3",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
)
"""Loggers of libraries whose INFO lines describe their own workings (alembic's migration
context, APScheduler's "Added job", uvicorn's start banner), not what an operator acts on."""


def library_level(level: int) -> int:
    """The level library loggers get when the process logs at `level`: their warnings and errors
    always show; their INFO and DEBUG lines only when the process itself logs at DEBUG."""
    return logging.NOTSET if level <= logging.DEBUG else max(level, logging.WARNING)


def configure_logging(level: str | int) -> None:
    """Log to stderr at `level`; library internals are quiet unless `level` is DEBUG.

    Library loggers are set explicitly (not left to inherit) because uvicorn and alembic set up
    their own levels when they start.
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    logging.basicConfig(level=numeric, format=LOG_FORMAT)
    logging.getLogger().setLevel(numeric)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level(numeric))


_URL_PASSWORD = re.compile(r"(://[^/:@]*:)[^@/]*@")


def redact_url(url: str) -> str:
    """A database URL fit for a log line: its password replaced by `***`."""
    return _URL_PASSWORD.sub(r"\1***@", url)
