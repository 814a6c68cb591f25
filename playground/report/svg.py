"""Charts as inline SVG strings, made here (no plotting library, no script, nothing fetched).

Every label is passed through html.escape; numbers are formatted by this module. Colours are
the Okabe-Ito palette (colour-blind safe), and each series is also named in a legend.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
TITLE_LINE = 14  # px between the lines of a wrapped chart title
LEGEND_ROW = 16  # px between the rows of a line chart's legend
TITLE_CHAR_W = 6.6  # px a bold 11px character takes, on average (a safe overestimate for wrapping)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" class="chart">'
            f"<title>{_e(title)}</title>")


def _title(title: str, width: int) -> tuple[str, int]:
    """The title as bold SVG text wrapped to the chart's width (SVG text never wraps by itself, so a
    long title was clipped at the edge), and the height its lines take."""
    per_line = max(20, int(width / TITLE_CHAR_W))
    lines: list[str] = []
    for word in title.split():
        if lines and len(lines[-1]) + 1 + len(word) <= per_line:
            lines[-1] += " " + word
        else:
            lines.append(word if len(word) <= per_line else word[:per_line - 1] + "…")
    lines = lines or [""]
    spans = "".join(f'<tspan x="0" dy="{0 if i == 0 else TITLE_LINE}">{_e(line)}</tspan>'
                    for i, line in enumerate(lines))
    return f'<text x="0" y="14" {FONT} font-weight="bold">{spans}</text>', TITLE_LINE * len(lines) + 6


def _nice_max(value: float) -> float:
    """A round axis end at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], unit: str,
              width: int = 560) -> str:
    """Horizontal bars, one per label, each with its value written at its end."""
    row, left, right, top = 22, 170, 70, 24
    height = top + row * max(len(labels), 1) + 26
    top_value = _nice_max(max(values, default=0.0))
    span = width - left - right
    parts = [_open(width, height, title),
             f'<text x="0" y="14" {FONT} font-weight="bold">{_e(title)}</text>']
    for i, (name, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row
        w = max(0.0, value) / top_value * span
        colour = PALETTE[i % len(PALETTE)]
        short = name if len(name) <= 26 else name[:25] + "…"
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" {FONT}>{_e(short)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{colour}"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 14}" {FONT}>{_e(f"{value:.3g} {unit}")}</text>')
    axis_y = top + row * max(len(labels), 1) + 4
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + span}" y2="{axis_y}" stroke="#888"/>')
    for frac in (0, 0.5, 1):
        x = left + frac * span
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" {FONT} fill="#555">'
                     f"{_e(f'{frac * top_value:g}')}</text>")
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, series: Sequence[tuple[str, Sequence[float]]], y_label: str,
               x_label: str = "output token", width: int = 720, height: int = 260) -> str:
    """One polyline per series over its index (values may be negative, e.g. log-probabilities). The
    title wraps and the legend runs onto more rows as needed: the chart grows rather than clip them."""
    left, right, top, bottom = 52, 16, 26, 56
    span_x, span_y = width - left - right, height - top - bottom
    head, title_h = _title(title, width)
    top = max(top, title_h + 6)
    legend, legend_x, row = [], left, 0
    for name, _ in series:
        short = name if len(name) <= 24 else name[:23] + "…"
        step = 24 + 7 * len(short)
        if legend_x > left and legend_x + step > width:
            legend_x, row = left, row + 1
        legend.append((legend_x, row, short))
        legend_x += step
    bottom += LEGEND_ROW * row
    height = top + span_y + bottom
    values = [v for _, vs in series for v in vs if math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    n_max = max((len(vs) for _, vs in series), default=1)

    def x_of(i: int) -> float:
        return left + (i / (n_max - 1) * span_x if n_max > 1 else span_x / 2)

    def y_of(v: float) -> float:
        v = min(max(v, lo), hi) if math.isfinite(v) else lo
        return top + (hi - v) / (hi - lo) * span_y

    parts = [_open(width, height, title), head,
             f'<rect x="{left}" y="{top}" width="{span_x}" height="{span_y}" fill="none" stroke="#ccc"/>']
    for v in (lo, (lo + hi) / 2, hi):
        y = y_of(v)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + span_x}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT} fill="#555">'
                     f"{_e(f'{v:.2f}')}</text>")
    parts.append(f'<text x="{left + span_x / 2:.1f}" y="{top + span_y + 26}" text-anchor="middle" {FONT} '
                 f'fill="#555">{_e(x_label)} (1..{n_max})</text>')
    parts.append(f'<text x="12" y="{top + span_y / 2:.1f}" text-anchor="middle" {FONT} fill="#555" '
                 f'transform="rotate(-90 12 {top + span_y / 2:.1f})">{_e(y_label)}</text>')
    for i, (_name, vs) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        dash = "" if i < len(PALETTE) else ' stroke-dasharray="4 2"'
        if len(vs) == 1:
            parts.append(f'<circle cx="{x_of(0):.1f}" cy="{y_of(vs[0]):.1f}" r="3" fill="{colour}"/>')
        elif vs:
            points = " ".join(f"{x_of(j):.1f},{y_of(v):.1f}" for j, v in enumerate(vs))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                         f'stroke-width="1.5"{dash}/>')
        x, line, short = legend[i]
        y = top + span_y + 40 + LEGEND_ROW * line
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{y + 9}" {FONT}>{_e(short)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap(title: str, matrix: Sequence[Sequence[float]], labels: Sequence[str], size: int = 420) -> str:
    """Square matrix of weights in [0, 1] (query rows, key columns), darker = more attention."""
    n = len(matrix)
    if n == 0:
        return ""
    margin = 20
    head, top = _title(title, size)
    top = max(top, margin)  # the grid starts under the title's last line
    cell = (size - margin) / n
    parts = [_open(size, top + size - margin + 4, title), head]
    peak = max((v for row in matrix for v in row), default=1.0) or 1.0
    for q, row in enumerate(matrix):
        for k, v in enumerate(row):
            if k > q or v <= 0:
                continue
            shade = min(1.0, v / peak)
            tip = f"{labels[q] if q < len(labels) else q} → {labels[k] if k < len(labels) else k}: {v:.3f}"
            parts.append(f'<rect x="{margin + k * cell:.2f}" y="{top + q * cell:.2f}" width="{cell:.2f}" '
                         f'height="{cell:.2f}" fill="#0072B2" fill-opacity="{shade:.3f}">'
                         f"<title>{_e(tip)}</title></rect>")
    parts.append(f'<rect x="{margin}" y="{top}" width="{size - margin}" height="{size - margin}" '
                 'fill="none" stroke="#ccc"/></svg>')
    return "".join(parts)
