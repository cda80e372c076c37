"""Client bearer tokens: a YAML file of token hashes mapped to principals, and its upkeep."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from broker.security.principal import Principal, Role

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cnt_"
_TOKEN_BYTES = 32
_HEX_DIGITS = frozenset("0123456789abcdef")


class TokenFileError(ValueError):
    """The token file is malformed."""


class TokenAuthenticator(Protocol):
    """Anything that maps a presented token to its principal."""

    def authenticate(self, token: str) -> Principal | None:
        """The principal of `token`, or None if it is not valid."""
        ...


def new_token() -> str:
    """A fresh token: the prefix and 256 random bits, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256 hex.

    A salted slow hash would add nothing: tokens carry 256 random bits, so the hash cannot be
    brute-forced, and a fast hash keeps every authenticated call cheap.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One issued token: its hash and the principal it stands for."""

    principal: Principal
    """Who presents this token."""
    sha256: str
    """SHA-256 hex of the token; the token itself is never stored."""

    def to_dict(self) -> dict[str, str]:
        """The YAML form."""
        p = self.principal
        return {"name": p.name, "tenant": p.tenant, "role": p.role.value, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TokenEntry:
        """From the YAML form; raises TokenFileError naming `where`."""
        if not isinstance(data, dict):
            raise TokenFileError(f"{where}: expected a mapping")
        missing = {"name", "tenant", "role", "sha256"} - set(data)
        if missing:
            raise TokenFileError(f"{where}: missing {sorted(missing)}")
        digest = str(data["sha256"]).lower()
        if len(digest) != 64 or not set(digest) <= _HEX_DIGITS:
            raise TokenFileError(f"{where}: sha256 must be 64 hex digits")
        try:
            principal = Principal(str(data["tenant"]), Role(data["role"]), str(data["name"]))
        except ValueError as exc:
            raise TokenFileError(f"{where}: {exc}") from None
        return cls(principal, digest)


class TokenStore:
    """The tokens the broker accepts; immutable, so reloading means building a new one."""

    def __init__(self, entries: Iterable[TokenEntry] = ()) -> None:
        self._entries = tuple(entries)
        names = [e.principal.name for e in self._entries]
        if len(names) != len(set(names)):
            raise TokenFileError("token names must be unique")

    @property
    def entries(self) -> Sequence[TokenEntry]:
        """The issued tokens, in file order."""
        return self._entries

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        """Read a token file; a missing file raises FileNotFoundError, a bad one TokenFileError."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TokenFileError(f"{path}: not valid YAML: {exc}") from None
        items = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise TokenFileError(f"{path}: expected a top-level `tokens:` list")
        return cls(
            TokenEntry.from_dict(item, f"{path}: tokens[{i}]") for i, item in enumerate(items)
        )

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a presented token, or None; compares every hash in constant time."""
        return self.authenticate_hash(hash_token(token))

    def authenticate_hash(self, sha256: str) -> Principal | None:
        """The principal whose token hashes to `sha256` (a session remembers the hash, never
        the token), or None once that token is removed."""
        found: Principal | None = None
        for entry in self._entries:
            if hmac.compare_digest(sha256, entry.sha256):
                found = entry.principal
        return found

    def save(self, path: Path) -> None:
        """Write the file atomically, readable by its owner only."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump({"tokens": [e.to_dict() for e in self._entries]}, sort_keys=False)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)


def _load_or_empty(path: Path) -> TokenStore:
    return TokenStore.load(path) if Path(path).exists() else TokenStore()


def add_token(path: Path, name: str, *, tenant: str, role: Role | str) -> str:
    """Issue a token for a new principal and store its hash; returns the token (shown once).

    Raises TokenFileError if the name is taken, ValueError for a bad name, tenant or role.
    """
    principal = Principal(tenant, Role(role), name)
    store = _load_or_empty(path)
    if any(e.principal.name == name for e in store.entries):
        raise TokenFileError(f"a token named {name!r} exists; remove it first")
    token = new_token()
    TokenStore([*store.entries, TokenEntry(principal, hash_token(token))]).save(path)
    return token


def remove_token(path: Path, name: str) -> bool:
    """Revoke the token called `name`; returns False if there was none."""
    store = _load_or_empty(path)
    kept = [e for e in store.entries if e.principal.name != name]
    if len(kept) == len(store.entries):
        return False
    TokenStore(kept).save(path)
    return True


class TokenFile:
    """A token file the broker re-reads when it changes, so `tokens remove` takes effect
    without a restart; a file broken by an edit keeps the last good tokens (and logs why)."""

    def __init__(
        self,
        path: Path,
        *,
        check_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._check_interval_s = check_interval_s
        self._clock = clock
        self._store = TokenStore.load(self.path)
        self._stamp = self._file_stamp()
        self._checked_s = clock()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _maybe_reload(self) -> None:
        now = self._clock()
        if now - self._checked_s < self._check_interval_s:
            return
        self._checked_s = now
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        try:
            self._store = TokenStore.load(self.path)
        except (OSError, TokenFileError) as exc:
            log.error("token file not reloaded path=%s error=%s", self.path, exc)
            return
        self._stamp = stamp
        log.info("token file reloaded path=%s tokens=%d", self.path, len(self._store.entries))

    @property
    def store(self) -> TokenStore:
        """The tokens as last loaded."""
        return self._store

    def authenticate(self, token: str) -> Principal | None:
        """As `TokenStore.authenticate`, after re-reading the file if it changed."""
        self._maybe_reload()
        return self._store.authenticate(token)

    def authenticate_hash(self, sha256: str) -> Principal | None:
        """As `TokenStore.authenticate_hash`, after re-reading the file if it changed."""
        self._maybe_reload()
        return self._store.authenticate_hash(sha256)
