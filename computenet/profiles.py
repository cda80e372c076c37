"""Client profiles: named contexts (broker addresses, CA, token) in a YAML file, and how flags,
environment variables and the current context combine into the connection the CLI uses."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from computenet.address import AddressError, parse_address
from located_yaml import LocatedError, LocatedIssue, load_mapping, read_source, validate_mapping

ENV_CONFIG = "COMPUTENET_CONFIG"
ENV_CONTEXT = "COMPUTENET_CONTEXT"
ENV_BROKER = "COMPUTENET_BROKER"
ENV_CA = "COMPUTENET_CA"
ENV_TOKEN = "COMPUTENET_TOKEN"

Source = Literal["flag", "environment", "context", "default"]


class ProfileError(ValueError):
    """The client config file or a context in it cannot be used; the message says where."""


def _address(text: str) -> str:
    try:
        parse_address(text)
    except AddressError as exc:
        raise ValueError(str(exc)) from None
    return text


BrokerAddress = Annotated[str, AfterValidator(_address)]


class Context(BaseModel):
    """One federation as a client reaches it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    brokers: list[BrokerAddress] = Field(min_length=1, description="Broker HOST:PORT each.")
    ca: Path | None = Field(None, description="CA certificate (PEM) of the broker's TLS.")
    token_file: Path | None = Field(None, description="File holding the bearer token.")
    token: str | None = Field(None, description="The bearer token itself (prefer token_file).")
    tenant: str | None = Field(None, description="Label only: whose token this is.")

    @field_validator("brokers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # `brokers: a:1,b:2` reads as the list a user meant
        return [part.strip() for part in value.split(",")] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_token(self) -> Context:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        return self


class ClientConfig(BaseModel):
    """The whole client config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    current_context: str | None = None
    contexts: dict[str, Context] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _current_exists(self) -> ClientConfig:
        if self.current_context is not None and self.current_context not in self.contexts:
            raise ValueError(f"current_context {self.current_context!r} names no context")
        return self


def config_path(env: Mapping[str, str]) -> Path:
    """Where the client config lives: COMPUTENET_CONFIG, else under XDG_CONFIG_HOME (default
    ~/.config) as computenet/config.yaml."""
    explicit = env.get(ENV_CONFIG, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME", "").strip() or str(Path("~/.config").expanduser())
    return Path(base) / "computenet" / "config.yaml"


def load_client_config(path: Path) -> ClientConfig:
    """The config at `path` (empty when there is no file); ProfileError lists every problem as
    `file:line: field: message`. Relative CA and token paths are relative to the file."""
    if not path.exists():
        return ClientConfig()
    name = str(path)
    try:
        doc = load_mapping(read_source(path), file=name, allow_empty=True)
        config = validate_mapping(ClientConfig, doc, file=name)
    except LocatedError as exc:
        raise ProfileError(str(exc)) from None
    return _anchored(config, path.parent)


def _anchored(config: ClientConfig, base: Path) -> ClientConfig:
    def anchor(p: Path | None) -> Path | None:
        return None if p is None else (base / p.expanduser())

    contexts = {
        name: ctx.model_copy(update={"ca": anchor(ctx.ca), "token_file": anchor(ctx.token_file)})
        for name, ctx in config.contexts.items()
    }
    return config.model_copy(update={"contexts": contexts})


def save_client_config(path: Path, config: ClientConfig) -> None:
    """Write the config (owner-only: it may name or hold tokens), replacing the file at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = config.model_dump(mode="json", exclude_none=True)
    text = yaml.safe_dump(data, sort_keys=False)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def shown(config: ClientConfig) -> dict[str, Any]:
    """The config as `computenet config view` prints it: token values never appear."""
    data = config.model_dump(mode="json", exclude_none=True)
    for ctx in data.get("contexts", {}).values():
        if "token" in ctx:
            ctx["token"] = "<redacted>"
    return data


@dataclass(frozen=True)
class Connection:
    """What the CLI dials, and where each part came from."""

    broker: str
    ca: str | None
    token: str | None
    context: str | None
    sources: dict[str, Source]


def selected_context(
    config: ClientConfig, flag: str | None, env: Mapping[str, str]
) -> tuple[str, Context] | None:
    """The context in use: `--context`, else COMPUTENET_CONTEXT, else the file's current one."""
    name = flag or env.get(ENV_CONTEXT, "").strip() or config.current_context
    if not name:
        return None
    if name not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise ProfileError(f"no context named {name!r} (known: {known})")
    return name, config.contexts[name]


def resolve(
    *,
    broker_flag: str | None,
    context_flag: str | None,
    env: Mapping[str, str],
    config: ClientConfig,
    default_broker: str,
) -> Connection:
    """Flags over environment variables over the current context over the defaults, per part."""
    chosen = selected_context(config, context_flag, env)
    name, ctx = chosen if chosen is not None else (None, None)
    sources: dict[str, Source] = {}

    broker_env = env.get(ENV_BROKER, "").strip()
    if broker_flag:
        broker, sources["broker"] = broker_flag, "flag"
    elif broker_env:
        broker, sources["broker"] = broker_env, "environment"
    elif ctx is not None:
        broker, sources["broker"] = ",".join(ctx.brokers), "context"
    else:
        broker, sources["broker"] = default_broker, "default"

    ca: str | None = env.get(ENV_CA, "").strip() or None
    if ca is not None:
        sources["ca"] = "environment"
    elif ctx is not None and ctx.ca is not None:
        ca, sources["ca"] = str(ctx.ca), "context"

    token: str | None = env.get(ENV_TOKEN, "").strip() or None
    if token is not None:
        sources["token"] = "environment"
    elif ctx is not None and (ctx.token is not None or ctx.token_file is not None):
        token, sources["token"] = _context_token(name or "", ctx), "context"
    return Connection(broker, ca, token, name, sources)


def _context_token(name: str, ctx: Context) -> str:
    if ctx.token is not None:
        return ctx.token.strip()
    assert ctx.token_file is not None
    try:
        text = read_source(ctx.token_file, max_bytes=64 * 1024).strip()
    except LocatedError as exc:
        issue: LocatedIssue = exc.issues[0]
        raise ProfileError(f"context {name}: token_file {issue}") from None
    if not text:
        raise ProfileError(f"context {name}: token_file {ctx.token_file} is empty")
    return text
