"""Tables for people and for scripts.

In a terminal a table fits its width: rich lays it out, text columns fold, numbers stay whole and
right-aligned. Anywhere else (a pipe, a file, `less`) columns are plain and never truncated, so
nothing is lost to a narrow window. `--format csv|json` gives scripts the cells themselves.
Every cell is shown as text (never rich markup) and a cell with a line break or an escape code is
shown quoted, so a hostile name cannot break a table or drive the terminal.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from collections.abc import Sequence

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

GAP = "  "
FORMATS = ("table", "csv", "json")


def format_option() -> click.Option:
    return click.Option(["--format", "output_format"], type=click.Choice(FORMATS), default="table", show_default=True,
                        help="table: fitted to the terminal; csv or json: for scripts.")


def terminal_width() -> int | None:
    """The terminal's width when stdout is one, else None (plain, untruncated output)."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def cell_text(value: object) -> str:
    """What a cell shows: `-` for nothing, 4 significant digits for a float, non-printable text quoted."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if text.isprintable() else json.dumps(text)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], width: int | None = None) -> str:
    """The table as text: fitted to `width` columns when given, else plain columns as wide as their cells."""
    cells = [[cell_text(value) for value in row] for row in rows]
    numeric = [bool(cells) and all(_is_number(row[column]) for row in cells if row[column] != "-")
               for column in range(len(headers))]
    if width is not None:
        return _fitted(headers, cells, numeric, width)
    widths = [len(header) for header in headers]
    for row in cells:
        for column, text in enumerate(row):
            widths[column] = max(widths[column], len(text))

    def line(values: Sequence[str]) -> str:
        parts = [value.rjust(size) if is_number else value.ljust(size)
                 for value, size, is_number in zip(values, widths, numeric, strict=True)]
        return GAP.join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def _fitted(headers: Sequence[str], cells: list[list[str]], numeric: list[bool], width: int) -> str:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for header, is_number in zip(headers, numeric, strict=True):
        if is_number:
            table.add_column(Text(header), justify="right", no_wrap=True, overflow="ellipsis")
        else:
            table.add_column(Text(header), overflow="fold")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, highlight=False, emoji=False, legacy_windows=False,
            force_terminal=False, soft_wrap=False).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())


def emit(headers: Sequence[str], rows: Sequence[Sequence[object]], output_format: str = "table") -> None:
    """Print a table in the chosen format to stdout."""
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
        click.echo(buffer.getvalue(), nl=False)
    elif output_format == "json":
        click.echo(json.dumps([dict(zip(headers, row, strict=True)) for row in rows], indent=1, default=str))
    else:
        click.echo(format_table(headers, rows, terminal_width()))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
