"""`computenet-broker tokens`: issue, list and revoke client bearer tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.security.principal import Role
from broker.security.tokens import TokenFileError, TokenStore, add_token, remove_token
from computenet.cli.runner import EXIT_USAGE, fail

PROG = "computenet-broker tokens"

tokens_app = typer.Typer(
    help="Issue, list and revoke client tokens (only their hashes are stored).",
    no_args_is_help=True,
)

FileOption = Annotated[Path, typer.Option("--file", help="The broker's token file (YAML).")]


@tokens_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Unique name of the token, e.g. the user.")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the token acts for.")],
    file: FileOption,
    role: Annotated[Role, typer.Option("--role", help="user or operator.")] = Role.USER,
) -> None:
    """Issue a token and print it once; the file keeps only its SHA-256."""
    try:
        token = add_token(file, name, tenant=tenant, role=role)
    except TokenFileError as exc:
        fail(PROG, str(exc))
    except ValueError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    typer.echo(token)
    typer.echo(
        f"token {name!r} (tenant={tenant} role={role.value}) added to {file}; "
        "it is shown only now: give it to its user as COMPUTENET_TOKEN",
        err=True,
    )


@tokens_app.command("list")
def list_tokens(file: FileOption) -> None:
    """List token names, tenants and roles (never tokens)."""
    try:
        store = TokenStore.load(file)
    except (OSError, TokenFileError) as exc:
        fail(PROG, str(exc))
    for entry in store.entries:
        p = entry.principal
        typer.echo(f"{p.name}\t{p.tenant}\t{p.role.value}")


@tokens_app.command("revoke")
@tokens_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Name of the token to revoke.")],
    file: FileOption,
) -> None:
    """Revoke a token (`revoke` and `remove` are the same); a broker reading the file refuses
    it within seconds, and ends the token's open watch streams (UNAUTHENTICATED)."""
    try:
        removed = remove_token(file, name)
    except (OSError, TokenFileError) as exc:
        fail(PROG, str(exc))
    if not removed:
        fail(PROG, f"no token named {name!r} in {file}")
    typer.echo(f"removed {name}", err=True)
