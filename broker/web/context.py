"""What every console request needs: the domain services, the viewer behind the cookie, and
rendering with the errors a page can end in."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from broker.jobs_api.accounting import AccountingQueries, Caller
from broker.jobs_api.hub import EventHub
from broker.jobs_api.manager import JobManager
from broker.rebalance.service import RebalanceService
from broker.security.principal import Principal
from broker.security.tokens import TokenFile, TokenStore
from broker.sites.federation import Federation
from broker.web.sessions import COOKIE_NAME, Session, SessionCodec, csrf_ok, fresh_session
from computenet.types import TenantId
from topology import Topology

log = logging.getLogger(__name__)


@dataclass
class ConsoleServices:
    """The domain services the console reads and acts through (the same as gRPC's)."""

    jobs: JobManager
    """Jobs: list, get, history, explain, cancel, watch."""
    federation: Callable[[], Federation]
    """The leader's site views and drains; raises NotLeaderError on a follower."""
    rebalance: Callable[[], RebalanceService]
    """The leader's rebalancing; raises NotLeaderError on a follower."""
    topology: Topology
    """The served topology."""
    hub: EventHub
    """The newest committed event sequence (live updates start after it)."""
    accounting: AccountingQueries
    """Usage, the queue in admission order and the tenants (AccountingService's domain
    service); the queue and tenants raise NotLeaderError on a follower."""
    tokens: TokenStore | TokenFile = field(default_factory=TokenStore)
    """Client tokens to log in with."""
    anonymous: Principal | None = None
    """Who everyone is when the broker asks for no token (insecure, no token file)."""
    secure_cookies: bool = False
    """Mark the session cookie Secure (the console serves over TLS)."""


class LoginRequired(Exception):
    """The request has no valid login; the page sends the browser to the login form."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class Forbidden(PermissionError):
    """The viewer may not do this; answered 403 with the reason on the page."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking, and the session their forms are checked against."""

    principal: Principal
    session: Session

    @property
    def scope(self) -> TenantId | None:
        """Whose jobs the viewer sees: their tenant's, or everyone's for an operator."""
        return None if self.principal.is_operator else TenantId(self.principal.tenant)

    @property
    def caller(self) -> Caller:
        """The viewer as the accounting queries scope them (as AccountingService does)."""
        return Caller(self.principal.tenant, self.principal.is_operator)

    def require_operator(self, action: str) -> None:
        """Forbidden unless the viewer is an operator, naming the action and who they are."""
        if not self.principal.is_operator:
            p = self.principal
            raise Forbidden(
                f"{action} needs an operator token; you are signed in as {p.name} "
                f"(tenant {p.tenant}, role {p.role.value})"
            )


class Console:
    """The console's state shared by every handler."""

    def __init__(self, services: ConsoleServices, *, secret: bytes | None = None) -> None:
        self.services = services
        self.codec = SessionCodec(secret or secrets.token_bytes(32))
        self.stopping = asyncio.Event()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("broker.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["figure"] = figure

    # -- who is looking -------------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        """The signed session of the request's cookie, if any and valid."""
        return self.codec.loads(request.cookies.get(COOKIE_NAME))

    def viewer(self, request: Request) -> Viewer:
        """The viewer of a request; LoginRequired when there is none.

        The token behind a session is checked on every request, so a removed token ends its
        console sessions as soon as the broker re-reads its token file.
        """
        session = self.session(request)
        anonymous = self.services.anonymous
        if anonymous is not None:
            return Viewer(anonymous, session or fresh_session())
        if session is None or not session.logged_in:
            raise LoginRequired()
        principal = self.services.tokens.authenticate_hash(session.token_sha256)
        if principal is None:
            raise LoginRequired("your token is no longer valid; sign in again")
        return Viewer(principal, session)

    def still_valid(self, viewer: Viewer) -> bool:
        """True while the viewer's token is still accepted (checked by open live streams)."""
        if self.services.anonymous is not None:
            return True
        return self.services.tokens.authenticate_hash(viewer.session.token_sha256) is not None

    def check_csrf(self, viewer_session: Session | None, form: Mapping[str, str]) -> None:
        """Forbidden unless the form carries the session's CSRF secret."""
        if not csrf_ok(viewer_session, form.get("csrf")):
            raise Forbidden(
                "the form's security check failed (stale or forged form); reload the page"
            )

    def set_cookie(self, response: Response, session: Session) -> None:
        """Keep `session` in the HttpOnly, SameSite=Strict cookie (Secure over TLS)."""
        response.set_cookie(
            COOKIE_NAME,
            self.codec.dumps(session),
            max_age=self.codec.max_age_s,
            httponly=True,
            secure=self.services.secure_cookies,
            samesite="strict",
            path="/",
        )

    # -- answers --------------------------------------------------------------------------

    def render(
        self,
        template: str,
        viewer: Viewer | None,
        *,
        status_code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        """A page; the viewer's session cookie is (re)set so every form has its CSRF secret."""
        values.setdefault("page", "")
        values.setdefault("csrf", viewer.session.csrf if viewer else "")
        page = self.templates.get_template(template).render(
            viewer=viewer,
            anonymous=self.services.anonymous is not None,
            **values,
        )
        response = HTMLResponse(page, status_code=status_code)
        if viewer is not None:
            self.set_cookie(response, viewer.session)
        return response

    def error(
        self, request: Request, status_code: int, message: str, viewer: Viewer | None = None
    ) -> HTMLResponse:
        """An error page saying why, with its status code."""
        return self.render(
            "error.html",
            viewer,
            status_code=status_code,
            status=status_code,
            message=message,
            path=request.url.path,
        )

    def to_login(self, request: Request, message: str = "") -> Response:
        """Send the browser to the login form, coming back here afterwards."""
        if request.method != "GET" or request.url.path == "/events":
            return self.error(request, 401, message or "sign in first")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": target, **({"why": message} if message else {})})
        return RedirectResponse(f"/login?{query}", status_code=303)


def figure(value: float) -> str:
    """A usage figure: two decimals, or three significant digits below 1 so that a short
    run's small amounts do not all read 0.00."""
    if value == 0 or abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def internal_error_message(exc: BaseException) -> str:
    """A sanitised message for an unexpected error, with an id to find it in the log."""
    ref = uuid.uuid4().hex[:12]
    log.error("console request failed ref=%s", ref, exc_info=exc)
    return f"internal error (reference {ref}; the broker's log has the details)"
