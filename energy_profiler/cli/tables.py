"""Plain-text tables for the terminal: left-aligned text, right-aligned numbers, no colours."""

from __future__ import annotations

from collections.abc import Sequence

GAP = "  "


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns as wide as their widest cell; `None` shows as `-`."""
    cells = [[_text(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for column, text in enumerate(row):
            widths[column] = max(widths[column], len(text))
    numeric = [all(_is_number(row[column]) for row in cells if row[column] != "-") and bool(cells)
               for column in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [value.rjust(width) if is_number else value.ljust(width)
                 for value, width, is_number in zip(values, widths, numeric, strict=True)]
        return GAP.join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def _text(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
