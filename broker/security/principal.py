"""Who is calling: the authenticated principal or site of the current RPC, held in contextvars."""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

from computenet.errors import UnauthenticatedError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$")


class Role(StrEnum):
    """What a client may do: users work with their tenant's jobs, operators run the federation."""

    USER = "user"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated client, from its bearer token; the tenant never comes from a request."""

    tenant: str
    """The tenant whose jobs the client sees and owns."""
    role: Role
    """User or operator."""
    name: str
    """Name of the token, for the audit log."""

    def __post_init__(self) -> None:
        for label, value in (("tenant", self.tenant), ("name", self.name)):
            if not _NAME.match(value):
                raise ValueError(f"invalid {label} {value!r}: use 1-63 of [A-Za-z0-9._@-]")
        object.__setattr__(self, "role", Role(self.role))

    @property
    def is_operator(self) -> bool:
        """True if the principal may call operator-only methods."""
        return self.role is Role.OPERATOR


# Each grpc.aio RPC runs in its own task, so values set for one call never leak into another;
# they stay set until the call's task ends, so outer layers (the audit log) still see them.
_principal: ContextVar[Principal | None] = ContextVar("computenet_principal", default=None)
_site: ContextVar[str | None] = ContextVar("computenet_site", default=None)


def current_principal() -> Principal | None:
    """The client principal of the RPC being handled, or None (agent call, or no auth layer)."""
    return _principal.get()


def require_principal() -> Principal:
    """The client principal of the RPC being handled; raises UnauthenticatedError without one."""
    principal = _principal.get()
    if principal is None:
        raise UnauthenticatedError("this call needs a client token")
    return principal


def current_site() -> str | None:
    """The site id proven by the caller's certificate, or None."""
    return _site.get()


def bind_principal(principal: Principal | None) -> None:
    """Set the principal for the rest of the current RPC (called by the auth layer)."""
    _principal.set(principal)


def bind_site(site_id: str | None) -> None:
    """Set the verified site id for the rest of the current RPC (called by the auth layer)."""
    _site.set(site_id)
