"""A small HTML reader for the report tests (the standard library's html.parser; no extra packages)."""

from __future__ import annotations

import base64
from collections import Counter
from html.parser import HTMLParser
from urllib.parse import unquote


class Page(HTMLParser):
    """What the tests look at: plots (figure.plot and the svg elements inside), tables by id with
    their cell texts, download links, ids, and every src/href attribute."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.plots: dict[str, int] = {}  # figure id -> svg elements inside it
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[dict[str, str]] = []
        self.ids: Counter[str] = Counter()
        self.tags: Counter[str] = Counter()
        self.meta: list[dict[str, str]] = []
        self.svg_text: dict[str, list[str]] = {}
        self.text: list[str] = []
        self._figure: str | None = None
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_svg_text = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags[tag] += 1
        if "id" in a:
            self.ids[a["id"]] += 1
        if tag == "meta":
            self.meta.append(a)
        if tag == "figure" and "plot" in a.get("class", ""):
            self._figure = a.get("id", "")
            self.plots[self._figure] = 0
            self.svg_text[self._figure] = []
        elif tag == "svg" and self._figure is not None:
            self.plots[self._figure] += 1
        elif tag == "text" and self._figure is not None:
            self._in_svg_text = True
        elif tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "a":
            self.links.append(a)

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None
        elif tag == "text":
            self._in_svg_text = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_svg_text and self._figure is not None:
            self.svg_text[self._figure].append(data)

    def rows(self, table: str) -> list[dict[str, str]]:
        """A table's body rows as dicts by header text (detail rows, one cell wide, left out)."""
        head, *body = self.tables[table]
        return [dict(zip(head, r)) for r in body if len(r) == len(head)]

    def download(self, name: str, kind: str = "csv") -> str:
        """The decoded content of a table's CSV or JSON download link."""
        link = next(a for a in self.links if a.get("download") == f"{name}.{kind}")
        head, data = link["href"].split(",", 1)
        return base64.b64decode(data).decode() if head.endswith(";base64") else unquote(data)
