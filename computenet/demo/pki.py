"""The demo federation's own PKI: a CA, the broker and site certificates, and one operator token."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc

from computenet.client import Client
from computenet.tls import tls_channel_credentials

TOKEN_NAME = "demo"
TENANT = "demo"


class PkiError(RuntimeError):
    """The certificates or the token could not be made."""


@dataclass(frozen=True, slots=True)
class DemoPki:
    """Where the demo's certificates are, and its operator token."""

    root: Path
    tokens_path: Path
    token: str

    @property
    def token_file(self) -> Path:
        """The operator token, readable by this user only, for exploring with the CLI."""
        return self.root / "demo.token"

    @property
    def ca(self) -> Path:
        """The CA certificate agents and clients trust."""
        return self.root / "ca.pem"

    def broker_args(self) -> list[str]:
        """`computenet-broker serve` options turning TLS and tokens on."""
        return ["--tls-dir", str(self.root), "--tokens", str(self.tokens_path)]

    def site_tls(self, site_id: str) -> dict[str, str]:
        """The `tls` section of the agent config of `site_id`."""
        return {
            "ca": str(self.ca),
            "cert": str(self.root / "sites" / f"{site_id}.pem"),
            "key": str(self.root / "sites" / f"{site_id}-key.pem"),
        }

    def credentials(self) -> grpc.ChannelCredentials:
        """TLS credentials of a client of the demo broker."""
        return tls_channel_credentials(self.ca)

    def client(self, address: str) -> Client:
        """An SDK client over TLS with the demo's operator token."""
        return Client(address=address, credentials=self.credentials(), token=self.token)


def _run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "broker", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise PkiError(f"`computenet-broker {' '.join(args[:2])}` failed: {result.stderr.strip()}")
    return result.stdout


def make_demo_pki(workdir: Path, site_ids: list[str]) -> DemoPki:
    """Create the CA, the broker certificate, a certificate per site and an operator token."""
    root = workdir / "pki"
    _run(["certs", "init", "--dir", str(root)], workdir)
    _run(["certs", "issue-site", *site_ids, "--dir", str(root)], workdir)
    tokens = root / "tokens.yaml"
    out = _run(
        [
            "tokens",
            "add",
            TOKEN_NAME,
            "--tenant",
            TENANT,
            "--role",
            "operator",
            "--file",
            str(tokens),
        ],
        workdir,
    )
    token = out.strip().splitlines()[0] if out.strip() else ""
    if not token:
        raise PkiError("`computenet-broker tokens add` printed no token")
    pki = DemoPki(root=root, tokens_path=tokens, token=token)
    pki.token_file.touch(mode=0o600)
    pki.token_file.write_text(token + "\n")
    return pki
