"""Clients of the broker: `Client` (blocking) and `AsyncClient` (asyncio), with their results."""

from computenet.client._common import (
    DEFAULT_BROKER,
    DEFAULT_TIMEOUT_S,
    JobPage,
    RetryPolicy,
    SubmitResult,
)
from computenet.client.aio import AsyncClient
from computenet.client.sync import Client

__all__ = [
    "DEFAULT_BROKER",
    "DEFAULT_TIMEOUT_S",
    "AsyncClient",
    "Client",
    "JobPage",
    "RetryPolicy",
    "SubmitResult",
]
