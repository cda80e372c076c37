"""How the CLI prints text it did not write (job names, labels, reasons, messages from sites,
file names, errors): control characters escaped and no rich markup, on every output path.

A job named "\\x1b[2J\\x07evil" prints as `\\x1b[2J\\x07evil`, one named "[red]x" as `[red]x`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.text import Text

from computenet.printable import escaped, escaped_json


def clean(value: object) -> str:
    """`value` as text with every control, bidirectional and separator character escaped."""
    return escaped(str(value))


def cell(value: object, style: str = "") -> Text:
    """A table cell or title: escaped, and a `Text` so rich reads no markup or emoji codes in it."""
    return Text(clean(value), style=style)


def echo(line: str, *, err: bool = False) -> None:
    """Print one line (escaped) on stdout, or stderr with `err`."""
    typer.echo(clean(line), err=err)


def emit_json(value: Any) -> None:
    """Print one JSON document (or one JSON Lines record) with unsafe characters `\\u` escaped."""
    typer.echo(escaped_json(json.dumps(value, ensure_ascii=False)))


def error_line(prog: str, message: str) -> str:
    """`prog: error: message`, from the message's first line, escaped (always a single line)."""
    text = message.strip()
    first = text.split("\n", 1)[0] if text else "failed"
    return f"{prog}: error: {clean(first)}"


def tolerate_unencodable_output() -> None:
    """Let stdout and stderr write what their encoding cannot (as escapes) instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
