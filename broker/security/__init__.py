"""Broker security: certificates, site identity, client tokens, auth, limits and the audit log."""

from __future__ import annotations

from broker.security.audit import AUDIT_LOGGER, AuditInterceptor
from broker.security.certs import CaExistsError, CaLayout, CaMissingError, init_ca, issue_site
from broker.security.identity import (
    Revocations,
    SiteCertificate,
    check_hello_site,
    server_credentials,
    site_id_from_context,
)
from broker.security.interceptors import AuthInterceptor, AuthSettings, SecurityCounters
from broker.security.limits import (
    LimitSettings,
    LimitsInterceptor,
    ServerLimits,
    TokenBucket,
    server_options,
)
from broker.security.principal import (
    Principal,
    Role,
    current_principal,
    current_site,
    require_principal,
)
from broker.security.tokens import TokenStore, add_token, hash_token
from broker.security.transport import (
    AdditionalPort,
    InsecureNotAllowedError,
    check_insecure_allowed,
)

__all__ = [
    "AUDIT_LOGGER",
    "AdditionalPort",
    "AuditInterceptor",
    "AuthInterceptor",
    "AuthSettings",
    "CaExistsError",
    "CaLayout",
    "CaMissingError",
    "InsecureNotAllowedError",
    "LimitSettings",
    "LimitsInterceptor",
    "Principal",
    "Revocations",
    "Role",
    "SecurityCounters",
    "ServerLimits",
    "SiteCertificate",
    "TokenBucket",
    "TokenStore",
    "add_token",
    "check_hello_site",
    "check_insecure_allowed",
    "current_principal",
    "current_site",
    "hash_token",
    "init_ca",
    "issue_site",
    "require_principal",
    "server_credentials",
    "server_options",
    "site_id_from_context",
]
