"""`computenet-broker certs`: create the federation CA, issue and revoke site certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.security.certs import (
    DEFAULT_DAYS,
    CaExistsError,
    CaLayout,
    CaMissingError,
    init_ca,
    issue_site,
    serial_hex,
)
from broker.security.revocation import revoke
from computenet.cli.runner import EXIT_USAGE, fail

PROG = "computenet-broker certs"

certs_app = typer.Typer(
    help="Create the federation CA and the broker certificate; issue site certificates.",
    no_args_is_help=True,
)

DirOption = Annotated[
    Path, typer.Option("--dir", help="Certificate directory (holds ca.pem, ca-key.pem, ...).")
]
DaysOption = Annotated[int, typer.Option("--days", min=1, help="Validity in days.")]


@certs_app.command("init")
def init(
    directory: DirOption,
    days: DaysOption = DEFAULT_DAYS,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Extra DNS name or IP of the broker; repeat for more."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing CA.")] = False,
) -> None:
    """Create a CA and the broker's server certificate (localhost, 127.0.0.1, ::1, --host)."""
    try:
        written = init_ca(directory, days=days, hosts=host or (), force=force)
    except CaExistsError as exc:
        fail(PROG, str(exc))
    for path in written:
        typer.echo(str(path))


@certs_app.command("issue-site")
def issue_site_command(
    sites: Annotated[list[str], typer.Argument(help="Site ids, as in the topology.")],
    directory: DirOption,
    days: DaysOption = DEFAULT_DAYS,
) -> None:
    """Issue a client certificate for each SITE (URI SAN spiffe://computenet/site/SITE)."""
    for site in sites:
        try:
            cert, key = issue_site(directory, site, days=days)
        except CaMissingError as exc:
            fail(PROG, str(exc))
        except ValueError as exc:
            fail(PROG, str(exc), EXIT_USAGE)
        typer.echo(str(cert))
        typer.echo(str(key))
        typer.echo(f"serial: {serial_hex(cert.read_bytes())}", err=True)
    typer.echo(f"CA for the agents: {CaLayout(directory).ca_cert}", err=True)


def _serial_of(target: str) -> int:
    """The serial of a certificate file, or of a serial written in hex (colons allowed)."""
    path = Path(target)
    if path.is_file():
        return int(serial_hex(path.read_bytes()).replace(":", ""), 16)
    try:
        return int(target.replace(":", "").strip().removeprefix("0x"), 16)
    except ValueError:
        raise ValueError(f"{target!r} is neither a certificate file nor a hex serial") from None


@certs_app.command("revoke")
def revoke_command(
    target: Annotated[
        str,
        typer.Argument(
            help="Certificate serial (hex), a certificate file, or with --site a site id."
        ),
    ],
    revocations: Annotated[
        Path,
        typer.Option(
            "--revocations",
            help="The broker's revocation file (config: security.revocations); made if missing.",
        ),
    ],
    site: Annotated[
        bool, typer.Option("--site", help="Revoke every certificate of the site TARGET.")
    ] = False,
) -> None:
    """Revoke a site certificate (or a whole site). A broker serving with this revocation file
    refuses it within seconds and ends its open agent streams; no restart is needed."""
    try:
        if site:
            added = revoke(revocations, site_id=target)
        else:
            added = revoke(revocations, serial=_serial_of(target))
    except ValueError as exc:
        fail(PROG, str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(PROG, str(exc))
    what = f"site {target}" if site else f"certificate {target}"
    typer.echo(f"{what} {'revoked' if added else 'was revoked already'} in {revocations}", err=True)
