"""The console's forms: login, logout, drain and resume, rebalance plan and apply, cancel."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broker.security.tokens import hash_token
from broker.web.context import Console, Viewer
from broker.web.pages import rebalance_page
from broker.web.params import BadInput, drain_flag, id_param, move_budget, reject_unknown
from broker.web.sessions import fresh_session
from computenet.errors import UnavailableError
from computenet.types import JobId

log = logging.getLogger(__name__)

MAX_FORM_FIELDS = 10
MAX_TOKEN_CHARS = 512
MAX_REASON_CHARS = 500


async def read_form(request: Request, known: frozenset[str]) -> dict[str, str]:
    """The posted form's fields, bounded; files and unknown fields are refused (BadInput)."""
    try:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    except Exception as exc:  # a malformed body or too many fields (multipart's errors)
        raise BadInput("form", f"cannot read the form: {exc}") from None
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise BadInput(key[:40], "files are not accepted")
        fields[key] = value
    reject_unknown(fields, known | {"csrf"})
    return fields


def safe_next(target: str) -> str:
    """A local path to return to after login (anything else: the map)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def login_form(console: Console, request: Request) -> Response:
    """`GET /login`: the token form, with a CSRF secret in a pre-login session."""
    params: Mapping[str, str] = request.query_params
    reject_unknown(params, frozenset({"next", "why"}))
    session = console.session(request) or fresh_session()
    response = console.render(
        "login.html",
        None,
        page="login",
        csrf=session.csrf,
        next=safe_next(params.get("next", "/")),
        why=params.get("why", "")[:200],
    )
    console.set_cookie(response, session)
    return response


async def login(console: Console, request: Request) -> Response:
    """`POST /login`: accept a token, start a signed session, return where the viewer was."""
    form = await read_form(request, frozenset({"token", "next"}))
    session = console.session(request)
    target = safe_next(str(form.get("next", "/")))
    console.check_csrf(session, form)
    token = str(form.get("token", "")).strip()
    if not token:
        raise BadInput("token", "paste your token (from `computenet-broker tokens add`)")
    if len(token) > MAX_TOKEN_CHARS:
        raise BadInput("token", f"at most {MAX_TOKEN_CHARS} characters")
    sha = hash_token(token)
    principal = console.services.tokens.authenticate_hash(sha)
    if principal is None:
        log.warning("console login refused")
        return console.render(
            "login.html",
            None,
            status_code=401,
            page="login",
            csrf=session.csrf if session else "",
            next=target,
            why="that token is not accepted by this broker",
        )
    log.info("console login name=%s tenant=%s", principal.name, principal.tenant)
    response = RedirectResponse(target, status_code=303)
    console.set_cookie(response, fresh_session(sha))  # a new CSRF secret: no fixation
    return response


async def logout(console: Console, request: Request) -> Response:
    """`POST /logout`: replace the session with a signed-out one."""
    form = await read_form(request, frozenset())
    console.check_csrf(console.session(request), form)
    response = RedirectResponse("/login", status_code=303)
    console.set_cookie(response, fresh_session())
    return response


async def drain(console: Console, request: Request, viewer: Viewer, site_id: str) -> Response:
    """`POST /sites/ID/drain` (operators): drain or resume through the federation service."""
    form = await read_form(request, frozenset({"action"}))
    console.check_csrf(viewer.session, form)
    draining = drain_flag(form)
    viewer.require_operator("draining or resuming a site")
    federation = console.services.federation()
    site = await federation.drain(id_param({"site": site_id}, "site"), draining)
    log.info("console drain site=%s drain=%s by=%s", site.site_id, draining, viewer.principal.name)
    return RedirectResponse(f"/sites#site-{quote(site.site_id)}", status_code=303)


async def rebalance(console: Console, request: Request, viewer: Viewer, apply: bool) -> Response:
    """`POST /rebalance/plan|apply` (operators): a dry run shown at once, or a run applied."""
    form = await read_form(request, frozenset({"move_budget"}))
    console.check_csrf(viewer.session, form)
    budget = move_budget(form)
    viewer.require_operator("applying a rebalancing run" if apply else "planning a rebalance")
    service = console.services.rebalance()
    if not apply:
        run = await service.plan(budget)
        return await rebalance_page(console, request, viewer, planned=run)
    applied = await service.apply(budget)
    if applied is None:
        raise UnavailableError(
            "another broker replica holds the rebalancing lease; apply there or retry later"
        )
    return RedirectResponse("/rebalance", status_code=303)


async def cancel(console: Console, request: Request, viewer: Viewer, job_id: str) -> Response:
    """`POST /jobs/ID/cancel`: cancel one of the viewer's jobs (any job for an operator)."""
    form = await read_form(request, frozenset({"reason"}))
    console.check_csrf(viewer.session, form)
    reason = str(form.get("reason", "")).strip()
    reason = reason or f"cancelled in the console by {viewer.principal.name}"
    if len(reason) > MAX_REASON_CHARS:
        raise BadInput("reason", f"at most {MAX_REASON_CHARS} characters")
    job = await console.services.jobs.cancel(
        JobId(id_param({"job_id": job_id}, "job_id")), reason, viewer.scope
    )
    return RedirectResponse(f"/jobs/{quote(job.job_id)}", status_code=303)
