"""report.md and report.html: the same sections, tables and plots.

report.html is one self-contained file: the plots are inline PNGs (data: URIs), the style is in
the page, and nothing is fetched from a network, so it opens anywhere, mailed or copied. Every
cell comes from a table the user's campaign wrote, so every cell is escaped (markdown `|` and line
breaks; HTML through html.escape).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Section:
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    intro: str = ""


@dataclass(frozen=True)
class Page:
    title: str
    paragraphs: Sequence[str]
    sections: Sequence[Section]
    notes: Sequence[str]
    plots: Sequence[Path]


def _md_cell(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown(page: Page, folder: Path) -> str:
    lines = [f"# {page.title}", ""]
    for paragraph in page.paragraphs:
        lines += [_md_cell(paragraph), ""]
    for section in page.sections:
        lines += [f"## {section.title}", ""]
        if section.intro:
            lines += [section.intro, ""]
        lines.append("| " + " | ".join(_md_cell(h) for h in section.headers) + " |")
        lines.append("|" + "---|" * len(section.headers))
        lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in section.rows]
        lines.append("")
    if page.notes:
        lines += ["## Notes", ""] + [f"- {_md_cell(note)}" for note in page.notes] + [""]
    if page.plots:
        lines += ["## Plots", ""] + [f"![{path.stem}]({path.relative_to(folder)})" for path in page.plots]
    return "\n".join(lines) + "\n"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.5em; }
figure img { width: 640px; max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.8em; color: #555; }
"""


def _is_number(value: object) -> bool:
    try:
        float(str(value).split(" ")[0])
    except ValueError:
        return False
    return True


def _html_table(section: Section) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in section.headers)
    body = []
    for row in section.rows:
        cells = "".join(f'<td class="number">{html.escape(str(c))}</td>' if _is_number(c) else
                        f"<td>{html.escape(str(c))}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_page(page: Page) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(page.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(page.title)}</h1>"]
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
        for path in page.plots:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(path.name)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
