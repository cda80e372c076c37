"""Console sessions: a signed cookie holding the login's token hash and its CSRF secret."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "computenet_console"
SESSION_MAX_AGE_S = 12 * 3600
"""A login lasts at most this long; the token is still checked on every request."""
_CSRF_BYTES = 24


@dataclass(frozen=True, slots=True)
class Session:
    """What the cookie carries: never the token itself, only its hash."""

    csrf: str
    """Per-session secret every form posts back in a hidden field."""
    token_sha256: str = ""
    """SHA-256 of the token logged in with; empty before login."""

    @property
    def logged_in(self) -> bool:
        """True once a token was accepted."""
        return bool(self.token_sha256)


def fresh_session(token_sha256: str = "") -> Session:
    """A session with a new CSRF secret (a login gets a new one: no fixation)."""
    return Session(csrf=secrets.token_urlsafe(_CSRF_BYTES), token_sha256=token_sha256)


def csrf_ok(session: Session | None, presented: object) -> bool:
    """True if a form's CSRF field matches the session's secret (constant time)."""
    if session is None or not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(session.csrf.encode(), presented.encode())


class SessionCodec:
    """Signs sessions into cookie values and reads them back; forged, altered or expired
    cookies read as no session."""

    def __init__(self, secret: bytes, *, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="computenet-console-session")
        self.max_age_s = max_age_s

    def dumps(self, session: Session) -> str:
        """The cookie value of a session."""
        return str(self._serializer.dumps([session.csrf, session.token_sha256]))

    def loads(self, value: str | None) -> Session | None:
        """The session in a cookie value, or None if absent, forged, malformed or expired."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        if (
            not isinstance(data, list)
            or len(data) != 2
            or not all(isinstance(item, str) for item in data)
            or not data[0]
        ):
            return None
        return Session(csrf=data[0], token_sha256=data[1])
