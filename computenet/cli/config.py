"""`computenet config`: named contexts of the client config file, and the connection in use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import yaml

try:  # typer >= 0.20 vendors click; older releases use it directly
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import get_current_context  # type: ignore[no-redef]

from computenet.cli.safe_text import echo, emit_json, error_line
from computenet.client import DEFAULT_BROKER
from computenet.profiles import (
    ClientConfig,
    Connection,
    Context,
    ProfileError,
    config_path,
    load_client_config,
    resolve,
    save_client_config,
    shown,
)

PROG = "computenet"
EXIT_USAGE = 2

app = typer.Typer(
    help="Named contexts (broker addresses, CA, token) kept in the client config file.",
    no_args_is_help=True,
)


def _fail(message: str) -> NoReturn:
    echo(error_line(PROG, message), err=True)
    raise typer.Exit(EXIT_USAGE)


def _load() -> tuple[Path, ClientConfig]:
    path = config_path(os.environ)
    try:
        return path, load_client_config(path)
    except ProfileError as exc:
        # one issue per line, each naming the file, the line and the field
        for line in str(exc).splitlines():
            echo(error_line(PROG, line), err=True)
        raise typer.Exit(EXIT_USAGE) from None


def connection(broker: str) -> Connection:
    """The connection of the running command: `broker` counts as a flag only if it was typed.

    The `--broker` option's value alone cannot tell a typed address from the default, so the
    command line's record of where each parameter came from decides.
    """
    ctx = get_current_context(silent=True)
    broker_flag: str | None = broker
    context_flag: str | None = None
    if ctx is not None:
        source = ctx.get_parameter_source("broker")
        if source is not None and source.name != "COMMANDLINE":
            broker_flag = None  # from the environment (resolve reads it) or the default
        context_flag = ctx.find_root().params.get("context")
    path, config = _load()
    try:
        return resolve(
            broker_flag=broker_flag,
            context_flag=context_flag,
            env=os.environ,
            config=config,
            default_broker=DEFAULT_BROKER,
        )
    except ProfileError as exc:
        _fail(f"{path}: {exc}")


@app.command("view")
def view(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Print the config file's contexts (token values are never printed)."""
    path, config = _load()
    data = shown(config)
    if as_json:
        emit_json({"path": str(path), **data})
        return
    echo(f"# {path}{'' if path.exists() else ' (no file yet)'}")
    for line in yaml.safe_dump(data, sort_keys=False).splitlines():
        echo(line)


@app.command("current-context")
def current_context() -> None:
    """Print the name of the current context."""
    path, config = _load()
    if config.current_context is None:
        _fail(f"{path}: no current context; set one with `computenet config use-context NAME`")
    echo(config.current_context)


@app.command("use-context")
def use_context(name: Annotated[str, typer.Argument(help="A context of the file.")]) -> None:
    """Make NAME the current context."""
    path, config = _load()
    if name not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        _fail(f"{path}: no context named {name!r} (known: {known})")
    save_client_config(path, config.model_copy(update={"current_context": name}))
    echo(f"current context: {name}")


@app.command("set-context")
def set_context(
    name: Annotated[str, typer.Argument(help="The context to create or change.")],
    broker: Annotated[
        str | None, typer.Option(help="Broker HOST:PORT; several replicas comma-separated.")
    ] = None,
    ca: Annotated[Path | None, typer.Option(help="CA certificate (PEM) of the broker.")] = None,
    token_file: Annotated[Path | None, typer.Option(help="File holding the bearer token.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Label: whose token this is.")] = None,
    use: Annotated[bool, typer.Option("--use", help="Also make it the current context.")] = False,
) -> None:
    """Create a context or change the parts given; a new context needs --broker."""
    path, config = _load()
    old = config.contexts.get(name)
    fields = old.model_dump() if old is not None else {}
    given = {
        "brokers": broker,
        "ca": ca.absolute() if ca else None,
        "token_file": token_file.absolute() if token_file else None,
        "tenant": tenant,
    }
    fields.update({key: value for key, value in given.items() if value is not None})
    if token_file is not None:
        fields.pop("token", None)  # a token file replaces a token written in the file
    if "brokers" not in fields:
        _fail(f"context {name!r} is new: give --broker HOST:PORT")
    try:
        context = Context.model_validate(fields)
    except ValueError as exc:
        _fail(f"context {name}: {_first_error(exc)}")
    current = config.current_context if config.current_context and not use else name
    updated = config.model_copy(
        update={"contexts": {**config.contexts, name: context}, "current_context": current}
    )
    save_client_config(path, updated)
    echo(f"context {name} {'changed' if old is not None else 'created'} in {path}")


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        return f"{where}: {message}" if where else message
    return str(exc)
