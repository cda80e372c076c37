"""The `computenet-broker` command: serve the federation, and offline tools for operators."""

from __future__ import annotations

import typer

from broker.commands.certs import certs_app
from broker.commands.config import config_app
from broker.commands.plan import plan_command
from broker.commands.serve import serve_command
from broker.commands.simulate import simulate_command
from broker.commands.tokens import tokens_app
from computenet.cli.runner import run_app

PROG = "computenet-broker"

app = typer.Typer(
    name=PROG,
    help="The ComputeNet broker: places jobs across the federation and tracks them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


app.command("serve")(serve_command)
app.command("plan")(plan_command)
app.command("simulate")(simulate_command)
app.add_typer(certs_app, name="certs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(config_app, name="config")


@app.callback()
def _root() -> None:
    """ComputeNet broker."""


def main() -> None:
    """Entry point of the `computenet-broker` console script."""
    run_app(app, PROG)
