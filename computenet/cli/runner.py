"""Runs a typer app so that usage and domain errors end as one line on stderr, not a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

try:  # typer >= 0.20 vendors click; older releases use it directly
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exc  # type: ignore[no-redef]

from computenet.cli.safe_text import error_line, tolerate_unencodable_output
from computenet.errors import ComputeNetError

EXIT_USAGE = 2
EXIT_FAILURE = 1


def fail(prog: str, message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print `prog: error: message` (its first line, escaped) on stderr and exit."""
    print(error_line(prog, message), file=sys.stderr)
    raise SystemExit(code)


def run_app(app: typer.Typer, prog: str, argv: list[str] | None = None) -> NoReturn:
    """Run `app` as the console script `prog` and exit with its code."""
    if argv is None:  # the real console script, not a test calling in
        tolerate_unencodable_output()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click_exc.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            print(exc.ctx.get_help())
            raise SystemExit(EXIT_USAGE) from None
        fail(prog, exc.format_message(), EXIT_USAGE)
    except typer.Abort:
        fail(prog, "aborted", 130)
    except ComputeNetError as exc:
        fail(prog, str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        fail(prog, "interrupted", 130)
    raise SystemExit(result if isinstance(result, int) else 0)
