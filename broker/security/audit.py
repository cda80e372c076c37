"""The audit log: one structured line per mutating call, refused ones included, on the
`computenet.audit` logger; credentials never appear in it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import grpc.aio

from broker.security import methods
from broker.security.handlers import Call, Continuation, WrappedHandlers, wrap_handler
from broker.security.principal import current_principal, current_site

AUDIT_LOGGER = "computenet.audit"
REQUEST_ID_METADATA_KEY = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(call: Call) -> str:
    """`x-request-id` metadata, else SubmitJob's idempotency key, else a fresh id; sanitised."""
    for key, value in call.context.invocation_metadata() or ():
        if key == REQUEST_ID_METADATA_KEY and isinstance(value, str) and _SAFE_ID.match(value):
            return value
    request_id = getattr(call.request, "request_id", "")
    if isinstance(request_id, str) and _SAFE_ID.match(request_id):
        return request_id
    return uuid.uuid4().hex[:16]


def _text_field(message: Any, name: str) -> str | None:
    value = getattr(message, name, None)
    return value if isinstance(value, str) and value else None


def _targets(call: Call) -> dict[str, str]:
    """Ids of what the call acts on, read from the request and (when cheap) the response."""
    found: dict[str, str] = {}
    for key in ("job_id", "site_id"):
        value = _text_field(call.request, key)
        if value:
            found[key] = value
    response = call.response
    job = getattr(response, "job", None) if response is not None else None
    if "job_id" not in found and job is not None and _text_field(job, "job_id"):
        found["job_id"] = job.job_id
    run = getattr(response, "run", None) if response is not None else None
    if run is not None and _text_field(run, "run_id"):
        found["run_id"] = run.run_id
    return found


def _code_of(call: Call, error: BaseException | None) -> str:
    code = call.context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if error is None:
        return "OK"
    # CancelledError (the client went away) is a BaseException; anything else is a fault.
    return "UNKNOWN" if isinstance(error, Exception) else "CANCELLED"


class AuditInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Writes one JSON line per audited call once it ends; install it first (outermost), so
    calls refused by the auth or limits layers are recorded too."""

    def __init__(
        self,
        *,
        audited: frozenset[str] = methods.MUTATING_METHODS,
        logger: logging.Logger | None = None,
    ) -> None:
        self.audited = audited
        self.log = logger or logging.getLogger(AUDIT_LOGGER)
        self._wrapped = WrappedHandlers()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or not self.audits(handler_call_details.method):
            return handler
        method = handler_call_details.method
        return self._wrapped.get(method, handler, lambda: wrap_handler(handler, method, self.guard))

    def audits(self, method: str) -> bool:
        """True if calls of `method` are recorded."""
        return method in self.audited

    def record(self, call: Call, started_s: float, error: BaseException | None) -> None:
        """Write the line of a call that began at `started_s` (monotonic) and just ended.

        The record is only built when the audit logger would emit it.
        """
        if self.log.isEnabledFor(logging.INFO):
            record = self._record(call, request_id_of(call), error, started_s)
            self.log.info("%s", json.dumps(record, sort_keys=True))

    @asynccontextmanager
    async def guard(self, call: Call) -> AsyncIterator[None]:
        """Record the call once it ends, however it ends."""
        started = time.monotonic()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.record(call, started, error)

    def _record(
        self, call: Call, request_id: str, error: BaseException | None, started: float
    ) -> dict[str, Any]:
        principal = current_principal()
        record: dict[str, Any] = {
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "event": "rpc",
            "method": methods.short_name(call.method),
            "code": _code_of(call, error),
            "request_id": request_id,
            "principal": principal.name if principal else None,
            "tenant": principal.tenant if principal else None,
            "role": principal.role.value if principal else None,
            "site": current_site(),
            "peer": call.context.peer(),
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }
        record.update(_targets(call))
        return record
