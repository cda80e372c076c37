"""Tables that fit the terminal: columns chosen for the width, ids never cut, and `-o FORMAT`.

A table is a list of `Column`s and rows of cells. `fit` keeps every column that fits, dropping
optional ones (highest `drop` first) when the terminal is narrow, and lets the one prose column
(reasons, messages) wrap at word boundaries; when even that does not fit, the prose goes below
the table as `key: text` lines. Key columns (ids) are never wrapped or shortened: each is as wide
as its longest cell. `-o wide` shows every column, whatever the width, as `kubectl` does.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from computenet.cli.safe_text import cell, emit_json
from computenet.printable import escaped

PROSE_MIN_WIDTH = 24
"""Narrowest a prose column may get before its text moves below the table."""


class OutputFormat(enum.StrEnum):
    """What `-o` asks for: every column, or a document instead of a table."""

    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"


OutputOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--output",
        "-o",
        help="wide: every column, whatever the terminal's width; json or yaml: a document.",
        case_sensitive=False,
    ),
]


def output_format(output: OutputFormat | None, as_json: bool) -> OutputFormat | None:
    """The format asked for by `-o` and `--json` together (`--json` is `-o json`)."""
    if as_json and output not in (None, OutputFormat.JSON):
        raise typer.BadParameter(f"--json and -o {output} disagree; give one of them")
    return OutputFormat.JSON if as_json else output


def is_document(fmt: OutputFormat | None) -> bool:
    """True if the format is a document (JSON or YAML) rather than a table."""
    return fmt in (OutputFormat.JSON, OutputFormat.YAML)


def emit_document(value: Any, fmt: OutputFormat | None) -> None:
    """Print `value` as YAML for `-o yaml`, else as JSON; unsafe characters escaped in either."""
    if fmt is OutputFormat.YAML:
        # allow_unicode=False: YAML escapes control and non-ASCII characters itself
        text = yaml.safe_dump(value, sort_keys=False, allow_unicode=False, width=10_000)
        typer.echo(escaped_yaml(text), nl=False)
    else:
        emit_json(value)


def escaped_yaml(text: str) -> str:
    """YAML text with anything the dumper left unescaped made visible, line by line."""
    return "\n".join(escaped(line) for line in text.split("\n"))


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table."""

    header: str
    justify: str = "left"
    """`left` or `right` (numbers)."""
    drop: int = 0
    """0: always shown; otherwise dropped when the width is short, the highest first (a prose
    column moves below the table instead)."""
    wide: bool = False
    """Shown only with `-o wide`."""
    prose: bool = False
    """Free text (reasons, messages): wraps at word boundaries; below the table when narrow.
    At most one column of a table is prose."""


@dataclass(slots=True)
class Grid:
    """A table's columns and rows before it is fitted to a width."""

    columns: Sequence[Column]
    rows: list[list[Text]] = field(default_factory=list)
    row_styles: list[str | None] = field(default_factory=list)
    title: str = ""
    caption: str = ""
    key: int = 0
    """Index of the column that names a row: the `key` of `key: text` lines below the table."""

    def add(self, *cells: object, style: str | None = None) -> None:
        """Add a row; plain values become escaped cells, `Text` is kept as it is."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([c if isinstance(c, Text) else cell(c) for c in cells])
        self.row_styles.append(style)


@dataclass(frozen=True, slots=True)
class Fitted:
    """What `fit` chose: the table, the prose lines below it and the columns left out."""

    table: Table
    notes: list[Text]
    hidden: list[str]

    def renderables(self) -> list[RenderableType]:
        """The table, then the notes, then a hint naming the hidden columns."""
        out: list[RenderableType] = [self.table, *self.notes]
        if self.hidden:
            shown = ", ".join(self.hidden)
            out.append(Text(f"(-o wide adds: {shown})", "dim"))
        return out


def _build(grid: Grid, keep: Sequence[int], prose_inline: bool) -> Table:
    table = Table(
        title=cell(grid.title) if grid.title else None,
        title_justify="left",
        caption=cell(grid.caption) if grid.caption else None,
        caption_justify="left",
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    for i in keep:
        col = grid.columns[i]
        if col.prose:
            if prose_inline:
                table.add_column(cell(col.header), overflow="fold", min_width=PROSE_MIN_WIDTH)
            continue
        longest = max([len(col.header), *(r[i].cell_len for r in grid.rows)])
        table.add_column(
            cell(col.header),
            justify="right" if col.justify == "right" else "left",
            no_wrap=True,
            min_width=longest,
        )
    for row, style in zip(grid.rows, grid.row_styles, strict=True):
        cells = [row[i] for i in keep if prose_inline or not grid.columns[i].prose]
        table.add_row(*cells, style=style)
    return table


def needed_width(table: Table) -> int:
    """The narrowest the table can be without cutting a cell of a non-prose column."""
    probe = Console(width=100_000, record=False)
    return Measurement.get(probe, probe.options, table).minimum


def _notes(grid: Grid) -> list[Text]:
    prose = [i for i, c in enumerate(grid.columns) if c.prose]
    if not prose:
        return []
    return [
        Text.assemble(row[grid.key], ": ", row[prose[0]])
        for row in grid.rows
        if row[prose[0]].plain
    ]


def fit(grid: Grid, width: int, *, wide: bool = False) -> Fitted:
    """The widest arrangement of the grid that fits `width` columns of text.

    Optional columns go first, the highest `drop` first (the rightmost among equals); a prose
    column with a `drop` moves below the table at its turn, one without moves last. With
    `wide`, every column stays, whatever the width.
    """
    keep = [i for i, c in enumerate(grid.columns) if wide or not c.wide]
    if wide:
        return Fitted(_build(grid, keep, True), [], [])
    droppable = sorted(
        (i for i in keep if grid.columns[i].drop > 0),
        key=lambda i: (grid.columns[i].drop, i),
    )
    hidden: list[str] = [c.header for c in grid.columns if c.wide]
    inline = True
    while True:
        table = _build(grid, keep, inline)
        if needed_width(table) <= width:
            return Fitted(table, [] if inline else _notes(grid), hidden)
        if not droppable:
            break
        gone = droppable.pop()
        if grid.columns[gone].prose:
            inline = False
        else:
            keep.remove(gone)
            hidden.append(grid.columns[gone].header)
    return Fitted(_build(grid, keep, False), _notes(grid), hidden)


def print_grid(grid: Grid, fmt: OutputFormat | None, out: Console | None = None) -> None:
    """Fit the grid to the console's width (every column with `-o wide`) and print it.

    A table that cannot fit even with its optional columns gone (ids wider than the terminal,
    or `-o wide`) is printed as wide as it needs: longer lines rather than cut ids.
    """
    out = out or Console(highlight=False, soft_wrap=False)
    fitted = fit(grid, out.width, wide=fmt is OutputFormat.WIDE)
    terminal_width = out.width
    out.width = max(terminal_width, needed_width(fitted.table))
    try:
        for renderable in fitted.renderables():
            out.print(renderable)
    finally:
        out.width = terminal_width
