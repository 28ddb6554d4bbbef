"""Report formats: one self-contained HTML file (plots embedded as base64 PNG, no external
resource), markdown (plots written as PNG files beside it) and JSON (the result's data).

Example:
    >>> from torchslim.report.content import Doc, Table
    >>> from torchslim.report.writers import to_html, to_markdown
    >>> doc = Doc("t", ["one line"], [Table("cap", ["a", "b"], [["1", "<2>"]])])
    >>> "&lt;2&gt;" in to_html(doc), "| 1 | <2> |" in to_markdown(doc)
    (True, True)
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from torchslim.core.io import atomic_write
from torchslim.report.content import Doc, Table, doc_of

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.86em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
img { max-width: 100%; border: 1px solid #eee; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.note { color: #8a5a00; }
"""


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    return f"<table><caption>{html.escape(t.caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(doc: Doc) -> str:
    """The document as one HTML page; every figure is an ``<img src="data:image/png;base64,...">``."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(doc.title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(doc.title)}</h1>"]
    parts += [f"<p>{html.escape(line)}</p>" for line in doc.summary]
    if doc.tables:
        parts.append("<h2>Results</h2>" + _html_table(doc.tables[0]))
    for fig in doc.figures:
        data = base64.b64encode(fig.png).decode("ascii")
        parts.append(f"<h2>{html.escape(fig.caption)}</h2><img alt='{html.escape(fig.caption)}' src='data:image/png;base64,{data}'>")
    for t in doc.tables[1:]:
        parts.append(_html_table(t))
    if doc.notes:
        parts.append("<h2>Notes</h2>" + "".join(f"<p class='note'>{html.escape(n)}</p>" for n in doc.notes))
    if doc.appendix:
        parts.append(f"<h2>Recipe</h2><pre>{html.escape(doc.appendix)}</pre>")
    parts.append("<p><small>Written by torchslim. Latencies are medians on this machine; sub-millisecond times move "
                 "from run to run, compare ratios within one report.</small></p></body></html>")
    return "\n".join(parts)


def _md_cell(c: str) -> str:
    return c.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    lines = [f"**{t.caption}**", "", "| " + " | ".join(_md_cell(h) for h in t.headers) + " |",
             "|" + "|".join("---" for _ in t.headers) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def to_markdown(doc: Doc, figure_dir: str = "figures") -> str:
    """The document as markdown; figures are referenced as ``figure_dir/<name>.png``."""
    parts = [f"# {doc.title}", "", *[f"- {line}" for line in doc.summary], ""]
    for i, t in enumerate(doc.tables):
        parts += [_md_table(t), ""]
        if i == 0:
            parts += [f"![{f.caption}]({figure_dir}/{f.filename})" for f in doc.figures] + [""]
    if doc.notes:
        parts += ["**Notes**", "", *[f"- {n}" for n in doc.notes], ""]
    if doc.appendix:
        parts += ["**Recipe**", "", "```yaml", doc.appendix.rstrip(), "```", ""]
    return "\n".join(parts)


def write_html(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write the HTML report of ``result`` (a run or a search) at ``path``, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(to_html(doc_of(result)), encoding="utf-8")
    return Path(path)


def write_markdown(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write the markdown report at ``path`` and its figures in ``figures/`` beside it."""
    doc = doc_of(result)
    folder = Path(path).parent / "figures"
    for fig in doc.figures:
        with atomic_write(folder / fig.filename) as tmp:
            tmp.write_bytes(fig.png)
    with atomic_write(path) as tmp:
        tmp.write_text(to_markdown(doc), encoding="utf-8")
    return Path(path)


def write_json(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write the result's data as JSON at ``path``."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return Path(path)
