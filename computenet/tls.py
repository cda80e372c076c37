"""Client-side credentials for the SDK, CLI and agent: TLS from PEM files, bearer tokens."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import grpc

from computenet.address import Address
from computenet.errors import InvalidArgumentError

ENV_TOKEN = "COMPUTENET_TOKEN"
"""Bearer token of a client (the CLI and SDK)."""
ENV_CA = "COMPUTENET_CA"
"""PEM file of the federation CA that signed the broker's certificate."""
ENV_CERT = "COMPUTENET_CERT"
"""PEM client certificate (site agents)."""
ENV_KEY = "COMPUTENET_KEY"
"""PEM private key of that certificate (site agents)."""
ENV_SERVER_NAME = "COMPUTENET_SERVER_NAME"
"""Name to check the broker certificate against when dialling it by another name or IP."""

AUTHORIZATION_METADATA_KEY = "authorization"
TARGET_NAME_OVERRIDE_OPTION = "grpc.ssl_target_name_override"


class CredentialsError(InvalidArgumentError):
    """Credentials are missing, unreadable or would be sent unprotected."""


def read_pem(path: Path | str) -> bytes:
    """The bytes of a PEM file; raises CredentialsError naming the file."""
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise CredentialsError(f"{path} is not a PEM file")
    return data


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Per-call metadata carrying `token`, for channels that cannot take call credentials."""
    return ((AUTHORIZATION_METADATA_KEY, f"Bearer {token}"),)


def token_call_credentials(token: str) -> grpc.CallCredentials:
    """Call credentials adding `authorization: Bearer <token>`; gRPC sends them only over TLS
    or local (loopback) channel credentials, never in plaintext."""
    if not token.strip():
        raise CredentialsError("empty token")
    return grpc.access_token_call_credentials(token.strip())


def tls_channel_credentials(
    ca: Path | str | bytes,
    *,
    cert: Path | str | bytes | None = None,
    key: Path | str | bytes | None = None,
    token: str | None = None,
) -> grpc.ChannelCredentials:
    """TLS trusting `ca`; with `cert` and `key` also mTLS (agents), with `token` also bearer."""
    if (cert is None) != (key is None):
        raise CredentialsError("a client certificate needs both cert and key")
    as_bytes = [v if isinstance(v, bytes) or v is None else read_pem(v) for v in (ca, key, cert)]
    credentials = grpc.ssl_channel_credentials(*as_bytes)
    if token:
        return grpc.composite_channel_credentials(credentials, token_call_credentials(token))
    return credentials


def loopback_channel_credentials(token: str | None = None) -> grpc.ChannelCredentials:
    """Credentials for an insecure broker on loopback: no encryption, but gRPC still carries
    the token, and only to loopback addresses."""
    local = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    if token:
        return grpc.composite_channel_credentials(local, token_call_credentials(token))
    return local


def site_channel_credentials(
    ca: Path | str | bytes, cert: Path | str | bytes, key: Path | str | bytes
) -> grpc.ChannelCredentials:
    """mTLS credentials of a site agent: its certificate names the site."""
    return tls_channel_credentials(ca, cert=cert, key=key)


def channel_options(server_name: str | None) -> list[tuple[str, str]]:
    """Channel options checking the broker certificate against `server_name`, if given."""
    return [(TARGET_NAME_OVERRIDE_OPTION, server_name)] if server_name else []


def credentials_from_env(
    target: Address, environ: Mapping[str, str] | None = None
) -> grpc.ChannelCredentials | None:
    """Channel credentials from `COMPUTENET_*` variables; None means a plaintext channel.

    With `COMPUTENET_CA`: TLS (plus mTLS with `COMPUTENET_CERT`/`COMPUTENET_KEY`, plus the
    token). Without it, a token is only sent to a loopback broker; elsewhere CredentialsError.
    """
    env = os.environ if environ is None else environ
    token = env.get(ENV_TOKEN, "").strip() or None
    ca = env.get(ENV_CA, "").strip() or None
    cert = env.get(ENV_CERT, "").strip() or None
    key = env.get(ENV_KEY, "").strip() or None
    if ca:
        return tls_channel_credentials(ca, cert=cert, key=key, token=token)
    if cert or key:
        raise CredentialsError(f"{ENV_CERT}/{ENV_KEY} need {ENV_CA} as well")
    if token is None:
        return None
    if not target.is_loopback:
        raise CredentialsError(
            f"refusing to send {ENV_TOKEN} to {target} without TLS; set {ENV_CA}"
        )
    return loopback_channel_credentials(token)
