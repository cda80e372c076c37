"""Parsing and checking `HOST:PORT` listen and dial addresses."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


class AddressError(ValueError):
    """An address is not of the form HOST:PORT."""


@dataclass(frozen=True, slots=True)
class Address:
    """A host and a TCP port; port 0 asks the OS for a free port when listening."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """True for localhost, 127.0.0.0/8 and ::1."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str) -> Address:
    """Parse `host:port`, `[v6]:port`; raises AddressError with a one-line reason."""
    raw = text.strip()
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise AddressError(f"invalid address {text!r}: expected [IPv6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep or not host:
            raise AddressError(f"invalid address {text!r}: expected HOST:PORT")
        if ":" in host:
            raise AddressError(f"invalid address {text!r}: put IPv6 hosts in brackets, [::1]:PORT")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise AddressError(f"invalid address {text!r}: port must be a number from 0 to 65535")
    return Address(host=host, port=int(port_text))
