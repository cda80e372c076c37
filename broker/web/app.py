"""The console's ASGI application: routes, security headers, and errors as pages with reasons."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.web import accounting_pages, actions, live, pages
from broker.web.context import (
    Console,
    ConsoleServices,
    Forbidden,
    LoginRequired,
    Viewer,
    internal_error_message,
)
from broker.web.params import BadInput
from computenet.errors import (
    ComputeNetError,
    InvalidArgumentError,
    JobNotCancellableError,
    NotLeaderError,
    PermissionDeniedError,
    UnavailableError,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""Forms are small; a larger body is refused before it is read."""

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]

Handler = Callable[[Console, Request, Viewer], Awaitable[Response]]


def _status_of(exc: ComputeNetError) -> int:
    if isinstance(exc, InvalidArgumentError):
        return 400
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, JobNotCancellableError):
        return 409
    if isinstance(exc, UnavailableError):
        return 503
    return 500


def _message_of(exc: ComputeNetError) -> str:
    if isinstance(exc, InvalidArgumentError) and exc.violations:
        return "; ".join(str(v) for v in exc.violations)
    if isinstance(exc, NotLeaderError):
        return f"{exc.message} (the console of the leading replica shows this page)"
    return exc.message


def _viewed(console: Console, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route that needs a viewer; every failure becomes a page saying why."""

    async def endpoint(request: Request) -> Response:
        viewer = None
        try:
            viewer = console.viewer(request)
            return await handler(console, request, viewer)
        except LoginRequired as exc:
            return console.to_login(request, exc.message)
        except BadInput as exc:
            return console.error(request, 400, str(exc), viewer)
        except Forbidden as exc:
            return console.error(request, 403, str(exc), viewer)
        except ComputeNetError as exc:
            status = _status_of(exc)
            if status == 500:
                return console.error(request, 500, internal_error_message(exc), viewer)
            return console.error(request, status, _message_of(exc), viewer)
        except Exception as exc:
            return console.error(request, 500, internal_error_message(exc), viewer)

    return endpoint


def _public(
    console: Console, handler: Callable[[Console, Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(console, request)
        except BadInput as exc:
            return console.error(request, 400, str(exc))
        except Forbidden as exc:
            return console.error(request, 403, str(exc))
        except Exception as exc:
            return console.error(request, 500, internal_error_message(exc))

    return endpoint


def _with_path(handler: Callable[..., Awaitable[Response]], name: str) -> Handler:
    async def bound(console: Console, request: Request, viewer: Viewer) -> Response:
        return await handler(console, request, viewer, request.path_params[name])

    return bound


def _apply(apply: bool) -> Handler:
    async def bound(console: Console, request: Request, viewer: Viewer) -> Response:
        return await actions.rebalance(console, request, viewer, apply)

    return bound


class _Guard:
    """Security headers on every answer; bodies over the limit refused with 413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            response = Response("request body too large or malformed length", status_code=413)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def build_app(console: Console) -> Starlette:
    """The console's ASGI app over `console`'s services."""
    static = resources.files("broker.web") / "static"

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return console.error(request, status, str(detail))

    routes = [
        Route("/", _viewed(console, pages.map_page)),
        Route("/sites", _viewed(console, pages.sites_page)),
        Route(
            "/sites/{site_id}/drain",
            _viewed(console, _with_path(actions.drain, "site_id")),
            methods=["POST"],
        ),
        Route("/jobs", _viewed(console, pages.jobs_page)),
        Route("/jobs/{job_id}", _viewed(console, _with_path(pages.job_page, "job_id"))),
        Route(
            "/jobs/{job_id}/cancel",
            _viewed(console, _with_path(actions.cancel, "job_id")),
            methods=["POST"],
        ),
        Route("/queue", _viewed(console, accounting_pages.queue_page)),
        Route("/queue/tenants", _viewed(console, accounting_pages.tenants_fragment)),
        Route("/usage", _viewed(console, accounting_pages.usage_page)),
        Route("/usage.csv", _viewed(console, accounting_pages.usage_download)),
        Route("/rebalance", _viewed(console, pages.rebalance_page)),
        Route("/rebalance/plan", _viewed(console, _apply(False)), methods=["POST"]),
        Route("/rebalance/apply", _viewed(console, _apply(True)), methods=["POST"]),
        Route("/events", _viewed(console, live.events_stream)),
        Route("/login", _public(console, actions.login_form)),
        Route("/login", _public(console, actions.login), methods=["POST"]),
        Route("/logout", _public(console, actions.logout), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_Guard)],
        exception_handlers={HTTPException: not_found},
    )


def console_app(
    services: ConsoleServices, *, secret: bytes | None = None
) -> tuple[Starlette, Console]:
    """The app and its state for `services` (a fresh session secret unless given)."""
    console = Console(services, secret=secret)
    return build_app(console), console
