"""The operation report as a terminal table, JSON, CSV or one self-contained HTML page.

:func:`render` takes the dict of :func:`.report.aggregate`. The HTML page has inline CSS and
inline SVG charts drawn here (seizures per day, per category, per country): it references no
URL at all, so it opens in a browser without network access.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .export import csv_text, neutralise

__all__ = ["CHART_COLOURS", "FORMATS", "render", "render_csv", "render_html", "render_table"]

CHART_COLOURS = {"day": "#1f6fb4", "category": "#e8731a", "country": "#2b9a3a"}
"""Bar colours of the HTML charts (seizures per day, per category, per country)."""
_SECTIONS = ("by_category", "by_country", "by_transport_mode", "by_day")
_TITLES = {
    "by_category": "By goods category",
    "by_country": "By reporting administration",
    "by_transport_mode": "By transport mode",
    "by_day": "By day",
}


def _number(value: Any) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _grid(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> list[str]:
    cells = [list(header)] + [[_number(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]


def render_table(report: Mapping[str, Any]) -> str:
    """The report for a terminal: the totals, then one table per breakdown."""
    totals = report["totals"]
    lines = ["Totals", *_grid([[k.replace("_", " "), v] for k, v in totals.items()], ["", ""])[1:]]
    for section in _SECTIONS:
        rows = report[section]
        if not rows:
            continue
        metrics = list(next(iter(rows.values())))
        lines += ["", _TITLES[section]]
        lines += _grid([[key, *m.values()] for key, m in rows.items()], ["", *metrics])
    return "\n".join(lines) + "\n"


def render_csv(report: Mapping[str, Any]) -> str:
    """The report as CSV rows ``section,key,metric,value`` (``totals`` has an empty key);
    keys come from other organisations' records, so text cells are neutralised for
    spreadsheets (:func:`.export.neutralise`) and numbers stay numbers."""
    rows: list[list[Any]] = [["section", "key", "metric", "value"]]
    for metric, value in report["totals"].items():
        rows.append(["totals", "", neutralise(metric), _csv_value(value)])
    for section in _SECTIONS:
        for key, metrics in report[section].items():
            for metric, value in metrics.items():
                rows.append([section, neutralise(key), neutralise(metric), _csv_value(value)])
    return csv_text(rows)


def _csv_value(value: Any) -> Any:
    return neutralise(value) if isinstance(value, str) else value


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


# -- HTML ---------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1b1b1b; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.totals { display: flex; flex-wrap: wrap; gap: 12px; }
.tile { border: 1px solid #ccd; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.tile b { display: block; font-size: 20px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #dde; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
svg text { font-size: 11px; fill: #333; }
"""


def _bars_horizontal(data: Mapping[str, int], colour: str) -> str:
    """A horizontal bar chart: one labelled bar per key."""
    top = max(data.values(), default=0) or 1
    bar, gap, label, width = 18, 6, 140, 520
    parts = []
    for n, (key, value) in enumerate(data.items()):
        y = n * (bar + gap)
        length = max(round(width * value / top), 1 if value else 0)
        parts.append(
            f'<text x="{label - 6}" y="{y + 13}" text-anchor="end">{html.escape(key)}</text>'
            f'<rect x="{label}" y="{y}" width="{length}" height="{bar}" fill="{colour}"/>'
            f'<text x="{label + length + 4}" y="{y + 13}">{value:,}</text>'
        )
    height = max(len(data) * (bar + gap), bar)
    return _svg(label + width + 80, height, "".join(parts))


def _bars_vertical(data: Mapping[str, int], colour: str) -> str:
    """A vertical bar chart (days along the x axis)."""
    top = max(data.values(), default=0) or 1
    bar, gap, height, base = 24, 10, 220, 240
    parts = []
    for n, (key, value) in enumerate(data.items()):
        x = 40 + n * (bar + gap)
        length = max(round(height * value / top), 1 if value else 0)
        parts.append(
            f'<rect x="{x}" y="{base - length}" width="{bar}" height="{length}" fill="{colour}"/>'
            f'<text x="{x + bar / 2}" y="{base - length - 4}" text-anchor="middle">{value}</text>'
            f'<text x="{x + bar / 2}" y="{base + 14}" text-anchor="middle">'
            f"{html.escape(key[5:])}</text>"
        )
    return _svg(60 + len(data) * (bar + gap), base + 24, "".join(parts))


def _svg(width: int, height: int, body: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'shape-rendering="crispEdges" role="img">{body}</svg>'
    )


def _html_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>None.</p>"
    metrics = list(next(iter(rows.values())))
    head = "".join(f"<th>{html.escape(m.replace('_', ' '))}</th>" for m in metrics)
    body = "".join(
        f"<tr><td>{html.escape(key)}</td>"
        + "".join(f"<td>{_number(v)}</td>" for v in values.values())
        + "</tr>"
        for key, values in rows.items()
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _seizures(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    return {key: int(values["seizures"]) for key, values in rows.items()}


def render_html(report: Mapping[str, Any], title: str | None = None) -> str:
    """One self-contained HTML page: totals, three SVG charts and the tables."""
    title = title or f"Seizure report of operation {report.get('operation_id', '')}".strip()
    tiles = "".join(
        f'<div class="tile">{html.escape(k.replace("_", " "))}<b>{_number(v)}</b></div>'
        for k, v in report["totals"].items()
    )
    countries = dict(sorted(_seizures(report["by_country"]).items(), key=lambda kv: -kv[1]))
    charts = [
        ("Seizures per day", _bars_vertical(_seizures(report["by_day"]), CHART_COLOURS["day"])),
        (
            "Seizures per goods category",
            _bars_horizontal(_seizures(report["by_category"]), CHART_COLOURS["category"]),
        ),
        (
            "Seizures per reporting administration",
            _bars_horizontal(countries, CHART_COLOURS["country"]),
        ),
    ]
    sections = "".join(f"<h2>{t}</h2>{chart}" for t, chart in charts)
    tables = "".join(f"<h2>{_TITLES[s]}</h2>{_html_table(report[s])}" for s in _SECTIONS)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Computed on the client from verified records "
        f"({html.escape(str(report.get('schema', '')))}).</p>"
        f'<div class="totals">{tiles}</div>{sections}{tables}</body></html>\n'
    )


FORMATS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "table": render_table,
    "json": render_json,
    "csv": render_csv,
    "html": render_html,
}


def render(report: Mapping[str, Any], fmt: str) -> str:
    """The report in ``fmt``, one of :data:`FORMATS`."""
    return FORMATS[fmt](report)
