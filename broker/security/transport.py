"""Where the broker listens and how: the insecure-mode rule and the agents' separate mTLS port."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
import grpc.aio

from computenet.address import Address

log = logging.getLogger(__name__)


class InsecureNotAllowedError(ValueError):
    """Insecure mode was asked for on an address other machines can reach."""


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    return Address(host.strip("[]").lower(), 0).is_loopback


def check_insecure_allowed(listen_host: str, insecure: bool) -> None:
    """Allow plaintext only on loopback; raises InsecureNotAllowedError otherwise.

    An allowed insecure listener is logged as a warning on every start, so nobody mistakes a
    demo broker for a protected one.
    """
    if not insecure:
        return
    if not is_loopback(listen_host):
        raise InsecureNotAllowedError(
            f"insecure mode is only allowed on loopback, not on {listen_host!r}; "
            "configure TLS certificates and tokens (see docs/security.md)"
        )
    log.warning(
        "INSECURE MODE host=%s: no TLS, agents are trusted by their hello and clients need no "
        "token; for local demos and tests only",
        listen_host,
    )


@dataclass
class AdditionalPort:
    """A second listening port of the same server, e.g. the agents' port with required mTLS.

    Pass it in `start_server(..., extra=[port])`; after start, `bound` holds the address.
    """

    listen: Address
    """Where to listen (port 0: any)."""
    credentials: grpc.ServerCredentials | None
    """TLS credentials; None for plaintext (loopback only, see `check_insecure_allowed`)."""
    bound: Address | None = None
    """The address bound, set when the server is built."""

    def __call__(self, server: grpc.aio.Server) -> None:
        target = str(self.listen)
        if self.credentials is None:
            port = server.add_insecure_port(target)
        else:
            port = server.add_secure_port(target, self.credentials)
        if port == 0:
            raise OSError(f"cannot listen on {self.listen}")
        self.bound = Address(self.listen.host, port)
