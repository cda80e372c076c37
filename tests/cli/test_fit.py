"""The pure layout core: whatever the cells and the width, ids stay whole and, where the
always-shown columns fit, no line is wider than the terminal."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from computenet.cli.tables import Column, Grid, OutputFormat, fit, needed_width, print_grid

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=40)
words = st.text(alphabet="abcdefghij", min_size=1, max_size=12)
prose = st.lists(words, max_size=30).map(" ".join)


def _grid(rows: list[tuple[str, str, int, str]]) -> Grid:
    grid = Grid(
        [
            Column("id"),
            Column("name", drop=1),
            Column("count", "right", drop=2),
            Column("tenant", wide=True),
            Column("reason", prose=True),
        ]
    )
    for row_id, name, count, reason in rows:
        grid.add(row_id, name, count, "lab-a", reason)
    return grid


def _printed(grid: Grid, width: int, fmt: OutputFormat | None = None) -> list[str]:
    out = Console(width=width, file=io.StringIO(), record=True, highlight=False)
    print_grid(grid, fmt, out)
    return out.export_text().splitlines()


rows = st.lists(st.tuples(ids, words, st.integers(0, 10**6), prose), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(rows=rows, width=st.integers(20, 160))
def test_ids_whole_and_lines_fit_when_the_id_column_does(rows, width) -> None:
    grid = _grid(rows)
    lines = _printed(grid, width)
    for row_id, *_ in rows:
        assert any(row_id in line.split() for line in lines), (row_id, lines)
    if max(len(r[0]) for r in rows) + 2 <= width:
        assert all(len(line) <= width for line in lines), lines
    for _, _, _, reason in rows:
        # the reason is whole: in the table or below it, wrapped at word boundaries
        assert set(reason.split()) <= {w.rstrip(":") for line in lines for w in line.split()}


@given(rows=rows)
def test_wide_keeps_every_column(rows) -> None:
    fitted = fit(_grid(rows), 20, wide=True)
    assert [str(c.header) for c in fitted.table.columns] == [
        "id", "name", "count", "tenant", "reason"
    ]  # fmt: skip
    assert fitted.hidden == [] and fitted.notes == []


@given(rows=rows, width=st.integers(20, 160))
def test_columns_go_in_drop_order(rows, width) -> None:
    fitted = fit(_grid(rows), width)
    shown = [str(c.header) for c in fitted.table.columns]
    assert "tenant" not in shown and "id" in shown
    # name (drop 1) is only hidden once count (drop 2) is
    assert not ("count" in shown and "name" not in shown)
    assert fitted.notes == [] or "reason" not in shown
    if "reason" in shown:  # the reasons stay inline only in a table that fits
        assert needed_width(fitted.table) <= width
