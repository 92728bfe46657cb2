"""The HTML around the plots: one self-contained page, tables with CSV/JSON downloads, number formats.

No script and no external resource: the page carries a Content-Security-Policy that forbids
every fetch (`default-src 'none'`), so a report can never reach the network, and it works where
the Airflow UI (or a mail client) refuses inline JavaScript. Downloads are data: URIs.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from factorybench.results.export import to_csv, to_json

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root{--fg:#1d232a;--muted:#5b6670;--line:#d9dee3;--bg:#fff;--panel:#f6f8fa;--good:#1a7f37;--bad:#c62828;
--warn:#9a6700;--goodbg:#e6f4ea;--badbg:#fdecea;--warnbg:#fff4d6}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:var(--bg);margin:0}
main{max-width:1240px;margin:0 auto;padding:0 24px 48px}
header.top{border-bottom:1px solid var(--line);padding:18px 24px 12px;max-width:1240px;margin:0 auto}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;padding-top:8px;border-top:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
.sub{color:var(--muted);margin:0}
nav{margin:10px 0 0;font-size:13px}nav a{margin-right:14px;color:#0b57d0;text-decoration:none}
.banner{margin:14px 0 0;padding:10px 14px;border-radius:6px;border:1px solid var(--line);background:var(--panel)}
.banner.success,.banner.pass,.banner.improvement{background:var(--goodbg);border-color:#b7dfc2}
.banner.failed,.banner.regression{background:var(--badbg);border-color:#f3b8b3}
.banner.invalid,.banner.insufficient_data{background:var(--warnbg);border-color:#f0d58a}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:130px;background:var(--panel)}
.card .k{font-size:12px;color:var(--muted)}.card .v{font-size:19px;font-weight:600}
.card .u{font-size:12px;color:var(--muted);margin-left:3px}
caption{text-align:left;caption-side:top;color:var(--muted);font-size:12px;padding:2px 0}
table{border-collapse:collapse;margin:6px 0;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:var(--panel);font-weight:600;white-space:nowrap}
td.num{text-align:right;white-space:nowrap}
tr:not(.detail)>td:first-child,tr:not(.detail)>td:nth-child(2){white-space:nowrap}
tr.knee td{font-weight:600;background:#fff8e1}
tr.detail td{color:var(--muted);font-size:12px;padding-top:0;padding-left:22px}
tr:has(+ tr.detail) td{border-bottom:none}
.tablewrap{overflow-x:auto}
.downloads{font-size:12px;color:var(--muted);margin:2px 0 12px}
.downloads a{margin-left:6px;color:#0b57d0}
.better{color:var(--good);font-weight:600}.worse{color:var(--bad);font-weight:600}
.better.small,.worse.small{font-weight:400}
.v-regression{color:var(--bad);font-weight:600}.v-improvement{color:var(--good);font-weight:600}
.v-insufficient_data{color:var(--warn)}.v-pass{color:var(--good)}
figure.plot{margin:10px 0 18px;padding:0}
figure.plot svg{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:var(--muted);margin-top:2px}
details{margin:8px 0}summary{cursor:pointer;color:#0b57d0}
pre{background:var(--panel);border:1px solid var(--line);padding:10px;overflow-x:auto;font-size:12px}
.empty{color:var(--muted);font-style:italic}
footer{color:var(--muted);font-size:12px;margin-top:40px;border-top:1px solid var(--line);padding-top:8px}
"""

esc = html.escape


def fmt(value: Any, unit: str = "") -> str:
    """A number as the report shows it: thousands separators for big ones, about four significant
    digits otherwise, ratios as percentages; None as an en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if not isinstance(value, (int, float)):
        return str(value)
    if unit == "ratio":
        return f"{value:.2%}"
    if unit == "count" or isinstance(value, int):
        return f"{value:,.0f}"
    a = abs(value)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_rel(rel: float | None) -> str:
    return "\u2013" if rel is None or not math.isfinite(rel) else f"{rel:+.1%}"


@dataclass
class Column:
    key: str
    title: str
    unit: str = ""
    numeric: bool = False
    render: Callable[[dict[str, Any]], str] | None = None  # HTML of the cell (already escaped)
    css: Callable[[dict[str, Any]], str] | None = None  # extra class of the cell


@dataclass
class Table:
    """A table shown in the page and offered as CSV and JSON: the raw rows go out, not the text."""

    name: str  # file stem of the downloads, and the element id
    columns: Sequence[Column]
    rows: list[dict[str, Any]]
    caption: str = ""
    export_rows: list[dict[str, Any]] | None = None  # what the downloads hold, when not `rows`
    row_css: Callable[[dict[str, Any]], str] | None = None  # class of a row, e.g. "knee"
    detail: Callable[[dict[str, Any]], str] | None = None  # HTML of a full-width line under each row

    def html(self) -> str:
        if not self.rows:
            return f'<p class="empty">{esc(self.caption or self.name)}: nothing to show.</p>'
        head = "".join(f"<th>{esc(c.title)}{f' ({esc(c.unit)})' if c.unit and c.unit not in ('count', 'ratio') else ''}"
                       f"</th>" for c in self.columns)
        body = []
        for row in self.rows:
            cells = []
            for c in self.columns:
                text = c.render(row) if c.render else esc(fmt(row.get(c.key), c.unit))
                cls = " ".join(x for x in ("num" if c.numeric else "", c.css(row) if c.css else "") if x)
                cells.append(f'<td{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>{text}</td>')
            cls = self.row_css(row) if self.row_css else ""
            body.append(f'<tr{f" class={chr(34)}{esc(cls)}{chr(34)}" if cls else ""}>' + "".join(cells) + "</tr>")
            if self.detail and (text := self.detail(row)):
                body.append(f'<tr class="detail"><td colspan="{len(self.columns)}">{text}</td></tr>')
        cap = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        return (f'<div class="tablewrap"><table id="table-{esc(self.name)}" class="data">{cap}'
                f'<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
                f'{downloads(self.name, self.export_rows if self.export_rows is not None else self.rows)}')


def data_uri(text: str, mime: str) -> str:
    return f"data:{mime};charset=utf-8;base64,{base64.b64encode(text.encode()).decode()}"


def downloads(name: str, rows: list[dict[str, Any]]) -> str:
    """CSV and JSON links of a table's rows, as data: URIs (the page stays offline)."""
    return (f'<p class="downloads">download <a class="dl-csv" download="{esc(name)}.csv" '
            f'href="{data_uri(to_csv(rows), "text/csv")}">CSV</a>'
            f'<a class="dl-json" download="{esc(name)}.json" '
            f'href="{data_uri(to_json(rows, indent=1), "application/json")}">JSON</a></p>')


def figure(name: str, svg: str, caption: str) -> str:
    return f'<figure class="plot" id="plot-{esc(name)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def cards(items: Sequence[tuple[str, Any, str]]) -> str:
    out = []
    for title, value, unit in items:
        shown_unit = "" if unit in ("count", "ratio", "") else f'<span class="u">{esc(unit)}</span>'
        out.append(f'<div class="card"><div class="k">{esc(title)}</div>'
                   f'<div class="v">{esc(fmt(value, unit))}{shown_unit}</div></div>')
    return f'<div class="cards">{"".join(out)}</div>'


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{body}</section>'


def document(title: str, header: str, sections: Sequence[tuple[str, str, str]], generator: str) -> str:
    """The page: header, a nav of the sections, the sections, a footer."""
    nav = "".join(f'<a href="#{esc(sid)}">{esc(t)}</a>' for sid, t, _ in sections)
    body = "".join(section(sid, t, b) for sid, t, b in sections)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="{esc(generator)}">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
            f'<body><header class="top">{header}<nav>{nav}</nav></header>\n<main>{body}'
            f"<footer>{esc(generator)}, rendered {now}. Self-contained: no scripts, no network.</footer>"
            f"</main></body></html>\n")
