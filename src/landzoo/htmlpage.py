"""Self-contained HTML pages for the benchmark and transfer reports: tables, heat-map cells, figures, sections.

One file per report, plots inlined as base64, no JavaScript: it opens from a cluster's scratch folder, an e-mail
attachment or a laptop alike. The layout fits a laptop screen (the wide tables scroll inside their box, the
full tables sit behind a ``<details>`` click), and every figure has a caption in words.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["NA", "details", "esc", "figure", "heat_cell", "key_values", "page", "table"]

#: What a cell shows where a value is undefined (e.g. F1 of a class without test examples).
NA = "n/a"

_CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:1.6em} p.lead{font-size:1.05em;max-width:60em}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:.4em 0}
td,th{border:1px solid #d4d4d4;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f1f1f1;font-weight:600} td.text,th.text{text-align:left}
tr.failed td{color:#a00} tr.baseline td{font-style:italic;background:#fafafa}
td.na{color:#888;background:#f4f4f4}
details{margin:.6em 0} summary{cursor:pointer;font-weight:600}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top;max-width:100%}
figure img{max-width:100%;height:auto} figcaption{font-size:13px;max-width:36em;color:#333}
code{background:#f5f5f5;padding:0 3px}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    text_columns: int = 1,
    row_classes: Sequence[str] | None = None,
    raw: bool = False,
) -> str:
    """An HTML table in a horizontally scrolling box; the first ``text_columns`` columns left-aligned.

    Cells are escaped unless ``raw`` (then they are ready-made ``<td>`` elements, e.g. :func:`heat_cell`).
    """

    def cls(i: int) -> str:
        return ' class="text"' if i < text_columns else ""

    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(header))
    body = []
    for k, row in enumerate(rows):
        row_cls = f' class="{row_classes[k]}"' if row_classes and row_classes[k] else ""
        cells = "".join(row) if raw else "".join(f"<td{cls(i)}>{esc(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr{row_cls}>{cells}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def heat_cell(value: float | None, *, digits: int = 2) -> str:
    """A ``<td>`` coloured by a value in [0, 1] (white -> blue), or a grey ``n/a`` where it is undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f'<td class="na">{NA}</td>'
    v = min(max(float(value), 0.0), 1.0)
    r, g, b = (int(255 - v * (255 - c)) for c in (33, 102, 172))
    color = "#fff" if v > 0.6 else "#111"
    return f'<td style="background:rgb({r},{g},{b});color:{color}">{value:.{digits}f}</td>'


def key_values(items: Mapping[str, Any]) -> str:
    """A two-column table of settings (nested mappings flattened to dotted keys)."""

    def flat(d: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
        for k, v in d.items():
            if isinstance(v, Mapping) and v:
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    return table(["setting", "value"], ([k, _plain(v)] for k, v in flat(items)), text_columns=2)


def _plain(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v))
    return "" if v is None else str(v)


def figure(path: str | Path, caption: str) -> str:
    """A PNG inlined as base64 with its caption (the caption says in words what the plot shows)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def details(summary: str, content: str, *, open_: bool = False) -> str:
    """Content one click away."""
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{content}</details>"


def page(title: str, sections: Sequence[tuple[str | None, str]], *, lead: str = "") -> str:
    """The whole document: a title, an optional lead paragraph, then (heading, HTML) sections."""
    body = [f"<h1>{esc(title)}</h1>"]
    if lead:
        body.append(f'<p class="lead">{esc(lead)}</p>')
    for heading, content in sections:
        if heading:
            body.append(f"<h2>{esc(heading)}</h2>")
        body.append(content)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
