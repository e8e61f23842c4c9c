"""Tables for people and for scripts.

In a terminal a table fits its width: headers break at underscores, text columns fold, numbers
stay whole and right-aligned, and columns a table marks optional are left out (and named) when
even that is too wide. Anywhere else (a pipe, a file, `less`) columns are plain and never truncated, so
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
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

GAP = "  "
FORMATS = ("table", "csv", "json")
F = TypeVar("F", bound=Callable[..., Any])


def format_option(what: str) -> Callable[[F], F]:
    """`--format table|csv|json` (the parameter `output_format`); `what`: what csv and json hold."""
    return click.option("--format", "output_format", type=click.Choice(FORMATS), default="table",
                        show_default=True, help=f"table: fitted to the terminal; csv or json: {what}, for scripts.")


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


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], width: int | None = None,
                 optional: Sequence[str] = ()) -> str:
    """The table as text: plain columns as wide as their cells, or fitted to `width` when given.

    Fitting, in order, until the table fits: headers break at their underscores, text columns
    fold at spaces (never inside a word), and then the `optional` columns are left out, last first,
    with a line that names them. Where even that is too wide, each row becomes a block of
    `header: value` pairs, every column kept. Numbers are never broken. Width left over goes to
    whole words first, then to whole cells.
    """
    cells = [[cell_text(value) for value in row] for row in rows]
    numeric = [bool(cells) and all(_is_number(row[column]) for row in cells if row[column] != "-")
               for column in range(len(headers))]
    natural = [max([len(header), *(len(row[column]) for row in cells)]) for column, header in enumerate(headers)]
    if width is None or _total(natural) <= width:
        return _render([[header] for header in headers], [[[cell] for cell in row] for row in cells],
                       natural, numeric)
    shown = list(range(len(headers)))
    left_out: list[str] = []
    longest_word = [max([1, *(len(word) for row in cells for word in row[column].split())])
                    for column in range(len(headers))]

    def minimum(column: int, text_width: int = TEXT_MIN) -> int:
        """The narrowest a column may be when its text folds to `text_width` (numbers never fold)."""
        header_part = max(len(part) for part in _header_parts(headers[column]))
        if numeric[column]:
            return max(header_part, *(len(row[column]) for row in cells))
        return max(header_part, min(natural[column], text_width))

    def whole_words(column: int) -> int:
        """The narrowest a column shows every word (an identifier, a flag) unbroken."""
        return minimum(column, longest_word[column])

    # Optional columns go before any identifier is broken: a name cut in two is misread, a column
    # left out is named below the table.
    for name in reversed(optional):
        if _total([whole_words(c) for c in shown]) <= width:
            break
        if name in headers:
            shown.remove(headers.index(name))
            left_out.insert(0, name)
    widths = {column: whole_words(column) for column in shown}
    if _total(list(widths.values())) > width:  # nothing left to leave out: long words fold
        widths = {column: minimum(column) for column in shown}
    if _total(list(widths.values())) > width:
        # Columns cannot fit without cutting names into pieces of a few letters: each row becomes
        # a block of `header: value` pairs instead, every column kept.
        return _records(headers, cells, width)
    # The spare columns go first to whole words (a flag or a name unbroken), then to whole cells;
    # each time to the columns that need the least, so that as many as possible are whole.
    spare = width - _total(list(widths.values()))
    for wanted in ([min(w, n) for w, n in zip(longest_word, natural, strict=True)], natural):
        for column in sorted((c for c in shown if not numeric[c]), key=lambda c: wanted[c] - widths[c]):
            grow = max(0, min(spare, wanted[column] - widths[column]))
            widths[column] += grow
            spare -= grow
    header_lines = [_wrap_header(headers[c], widths[c]) for c in shown]
    body = [[[row[c]] if numeric[c] else _fold(row[c], widths[c]) for c in shown] for row in cells]
    text = _render(header_lines, body, [widths[c] for c in shown], [numeric[c] for c in shown])
    if left_out:
        note = f"(not shown at this width: {', '.join(left_out)}; --format csv or a wider terminal has them)"
        text += "\n" + textwrap.fill(note, width)
    return text


def _records(headers: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> str:
    """Each row as a block of `header: value` pairs, as many to a line as fit (a pair wider than the
    terminal folds at its words), blocks apart by a blank line."""
    blocks = []
    for row in cells:
        pairs = [f"{header}: {value}" for header, value in zip(headers, row, strict=True)]
        lines: list[str] = []
        for pair in pairs:
            if lines and len(lines[-1]) + len(GAP) + len(pair) <= width:
                lines[-1] += GAP + pair
            else:
                lines += textwrap.wrap(pair, width, subsequent_indent="  ", break_on_hyphens=False) or [pair]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


UNIT_CHARS = 2
TEXT_MIN = 12
"""The narrowest a text column is folded to: a name or a value stays readable in a few lines."""


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * max(0, len(widths) - 1)


def _header_parts(header: str, units: bool = True) -> list[str]:
    """`above_idle_j` -> `above_`, `idle_j`: the places a header may break (a unit stays with its
    word unless `units` is False, the last resort of a very narrow terminal)."""
    parts = [part + "_" for part in header.split("_")]
    parts[-1] = parts[-1][:-1]
    if units and len(parts) > 1 and len(parts[-1]) <= UNIT_CHARS:
        parts[-2:] = [parts[-2] + parts[-1]]
    return [part for part in parts if part]


def _wrap_header(header: str, width: int) -> list[str]:
    parts = _header_parts(header)
    return _joined(parts if max(len(p) for p in parts) <= width else _header_parts(header, units=False), width)


def _joined(pieces: Sequence[str], width: int) -> list[str]:
    """Pieces run together into lines of at most `width` (a piece wider than that on its own line)."""
    lines = [""]
    for piece in pieces:
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return lines


def _fold(text: str, width: int) -> list[str]:
    """Lines of at most `width` characters, broken at spaces where possible, then after underscores
    (`duration_` / `s`, not `duratio` / `n_s`), else anywhere."""
    lines: list[str] = []
    for line in textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False) or [""]:
        if len(line) <= width:
            lines.append(line)
            continue
        lines += _joined([chunk for part in _header_parts(line, units=False) for chunk in textwrap.wrap(part, width)],
                         width)
    return lines


def fitted(line: str, width: int | None, indent: str = "  ") -> str:
    """A long sentence folded to the terminal at word boundaries, continued indented; whole elsewhere
    (a pipe or a file keeps one line per sentence for grep)."""
    if width is None:
        return line
    return textwrap.fill(line, width, subsequent_indent=indent, break_on_hyphens=False)


def _render(headers: Sequence[Sequence[str]], rows: Sequence[Sequence[Sequence[str]]], widths: Sequence[int],
            numeric: Sequence[bool]) -> str:
    """Rows of multi-line cells: text left-aligned, numbers right-aligned, trailing spaces cut."""
    out = []
    for cells in [headers, *rows]:
        height = max(len(cell) for cell in cells)
        for line in range(height):
            parts = []
            for cell, size, is_number in zip(cells, widths, numeric, strict=True):
                piece = cell[line] if line < len(cell) else ""
                parts.append(piece.rjust(size) if is_number else piece.ljust(size))
            out.append(GAP.join(parts).rstrip())
    return "\n".join(out)


def emit(headers: Sequence[str], rows: Sequence[Sequence[object]], output_format: str = "table",
         optional: Sequence[str] = ()) -> None:
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
        click.echo(format_table(headers, rows, terminal_width(), optional))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
