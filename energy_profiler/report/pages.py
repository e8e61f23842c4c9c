"""report.md and report.html: the same header, sections, tables and plots.

report.html is one self-contained file: the plots are inline PNGs (data: URIs), the style and the
few lines that sort a table are in the page, and nothing is fetched from a network, so it opens
anywhere, mailed or copied. It reads on a phone as on a desktop: the page never grows wider than
the screen; a wide table scrolls sideways inside its own box and a plot shrinks to the width.
Every cell comes from a table the user's campaign wrote, so every cell is escaped (markdown `|`
and line breaks; HTML through html.escape); links are relative, so they keep working when the
results folder is copied elsewhere.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class Link:
    """A cell that links to a file or folder, `href` relative to the report's folder."""

    text: str
    href: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Section:
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    intro: str = ""
    sortable: bool = False
    """A click on a column's header sorts the rows by it (report.html)."""


@dataclass(frozen=True)
class Plotted:
    path: Path
    caption: str


@dataclass(frozen=True)
class Page:
    title: str
    header: Sequence[tuple[str, str]]
    """(what, value) lines under the title: when, by which version, of what."""
    paragraphs: Sequence[str]
    sections: Sequence[Section]
    notes: Sequence[str]
    plots: Sequence[Plotted]


def _md_text(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_cell(value: object) -> str:
    if isinstance(value, Link):
        text = _md_text(value.text).replace("[", "\\[").replace("]", "\\]")
        return f"[{text}](<{value.href.replace('>', '%3E')}>)"
    return _md_text(value)


def markdown(page: Page, folder: Path) -> str:
    lines = [f"# {page.title}", ""]
    lines += [f"- {_md_text(what)}: {_md_text(value)}" for what, value in page.header] + [""]
    for paragraph in page.paragraphs:
        lines += [_md_text(paragraph), ""]
    for section in page.sections:
        lines += [f"## {section.title}", ""]
        if section.intro:
            lines += [_md_text(section.intro), ""]
        lines.append("| " + " | ".join(_md_text(h) for h in section.headers) + " |")
        lines.append("|" + "---|" * len(section.headers))
        lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in section.rows]
        lines.append("")
    if page.notes:
        lines += ["## Notes", ""] + [f"- {_md_text(note)}" for note in page.notes] + [""]
    if page.plots:
        lines += ["## Plots", ""]
        for plot in page.plots:
            lines += [f"![{plot.path.stem}]({plot.path.relative_to(folder)})", "", f"*{_md_text(plot.caption)}*", ""]
    return "\n".join(lines) + "\n"


STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1100px; padding: 0 0.75em; color: #222;
       line-height: 1.4; overflow-wrap: anywhere; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
dl.header { display: grid; grid-template-columns: max-content 1fr; gap: 0.1em 0.8em; font-size: 0.9em; }
dl.header dt { color: #555; } dl.header dd { margin: 0; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.5em 0 1.5em; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: 0.85em; width: max-content; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top;
         overflow-wrap: normal; }
td { max-width: 28em; }
th { background: #f0f0f0; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { display: inline-block; margin: 0.5em 0.5em 1em 0; max-width: 100%; vertical-align: top; }
figure img { display: block; width: 640px; max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #444; max-width: 640px; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var text = row.cells[column].textContent, number = parseFloat(text);
        if (text === "") return [2, ""];
        return isNaN(number) ? [1, text] : [0, number];
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
        return up ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""
"""Sorts a table by the clicked column, numbers as numbers, empty cells last: no library, no network."""


def _is_number(value: object) -> bool:
    try:
        float(str(value).split(" ")[0])
    except ValueError:
        return False
    return True


def _html_cell(value: object) -> str:
    if isinstance(value, Link):
        return f'<td><a href="{html.escape(quote(value.href, safe="/#:"))}">{html.escape(value.text)}</a></td>'
    if _is_number(value):
        return f'<td class="number">{html.escape(str(value))}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _html_table(section: Section) -> str:
    head = "".join(f'<th scope="col">{html.escape(str(h))}</th>' for h in section.headers)
    body = "".join(f"<tr>{''.join(_html_cell(cell) for cell in row)}</tr>" for row in section.rows)
    kind = ' class="sortable"' if section.sortable else ""
    return f'<div class="scroll"><table{kind}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def html_page(page: Page) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(page.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(page.title)}</h1>"]
    if page.header:
        parts.append('<dl class="header">' + "".join(f"<dt>{html.escape(what)}</dt><dd>{html.escape(value)}</dd>"
                                                     for what, value in page.header) + "</dl>")
    parts += [f"<p>{html.escape(paragraph)}</p>" for paragraph in page.paragraphs]
    for section in page.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.intro:
            parts.append(f"<p>{html.escape(section.intro)}</p>")
        parts.append(_html_table(section))
    if page.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in page.notes) + "</ul>")
    if page.plots:
        parts.append("<h2>Plots</h2>")
        for plot in page.plots:
            data = base64.b64encode(plot.path.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(plot.caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(plot.caption)}</figcaption></figure>")
    if any(section.sortable for section in page.sections):
        parts.append(f"<script>{SORT_SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
