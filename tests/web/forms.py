"""Helpers for talking to the console over plain HTTP: the login dance and CSRF fields."""

from __future__ import annotations

import re

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ERROR = re.compile(r'id="error-message">([^<]*)<')


def csrf_of(html: str) -> str:
    """The CSRF field of the first form on a page."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF field"
    return match.group(1)


def error_of(html: str) -> str:
    """The message of an error page."""
    match = _ERROR.search(html)
    assert match, f"not an error page: {html[:300]}"
    return match.group(1)


def login(http: httpx.Client, token: str) -> httpx.Response:
    """Sign `http` in with `token`; returns the answer to the posted form."""
    form = http.get("/login")
    assert form.status_code == 200
    return http.post("/login", data={"csrf": csrf_of(form.text), "token": token, "next": "/jobs"})
