"""What the page shows of a prediction frame: table columns with readable headers, formatted
cells, and the chart (an SVG drawn here, on the server).

Any column a model returns is shown: known ones (:data:`KNOWN_COLUMNS`) get a readable header and
format, others appear under their own name. Columns of several targets (``prediction_0``,
``std_0``, ...) get the target's index in the header.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from html import escape
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "KNOWN_COLUMNS",
    "Cell",
    "Chart",
    "Column",
    "Row",
    "chart_svgs",
    "columns_of",
    "nice_ticks",
    "rows_of",
]

#: column -> (header, format): "value" (4 significant digits), "prob" (0.00 to 1.00), "bool"
#: (the in-domain flag), "list" ("a; b; c" shown as a list), "text"
KNOWN_COLUMNS: dict[str, tuple[str, str]] = {
    "prediction": ("Prediction", "value"),
    "std": ("± std", "value"),
    "std_aleatoric": ("± aleatoric", "value"),
    "std_epistemic": ("± epistemic", "value"),
    "probability": ("P(class 1)", "prob"),
    "p_metal": ("P(metal)", "prob"),
    "p_zero": ("P(zero)", "prob"),
    "label": ("Label", "text"),
    "in_domain": ("In domain", "bool"),
    "domain_reason": ("Domain", "text"),
    "nearest": ("Nearest training compositions", "list"),
}
CHART_ROWS = 60  # up to this many predictions: one line each; more: a histogram
LABEL_CHARS = 28  # formula labels in the chart are cut to this length
_SUFFIX = re.compile(r"^(.*?)(_\d+)$")


@dataclass(frozen=True)
class Column:
    name: str
    header: str
    fmt: str


@dataclass(frozen=True)
class Cell:
    """One table cell: its text (or list items for ``fmt == "list"``), the key the table sorts
    it by, and a CSS class."""

    text: str
    sort: str
    css: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    index: int
    formula: str
    error: str | None
    cells: tuple[Cell, ...]


def _base(name: str) -> tuple[str, str]:
    """``("std", "_1")`` for ``std_1`` when ``std`` is a known column, else ``(name, "")``."""
    m = _SUFFIX.match(name)
    if m and m.group(1) in KNOWN_COLUMNS:
        return m.group(1), m.group(2)
    return name, ""


#: columns in the target's unit (regression)
UNIT_COLUMNS = ("prediction", "std", "std_aleatoric", "std_epistemic")


def columns_of(frame: pd.DataFrame, unit: str = "", task_type: str | None = None) -> list[Column]:
    """The frame's value columns (all but ``formula`` and ``error``) with header and format;
    ``domain_reason`` follows ``in_domain`` in one cell when both are present; a regression's
    values get ``unit`` in their header."""
    names = [c for c in frame.columns if c not in ("formula", "error")]
    out = []
    for name in names:
        if name == "domain_reason" and "in_domain" in names:
            continue
        base, suffix = _base(str(name))
        header, fmt = KNOWN_COLUMNS.get(base, (str(name), "text"))
        if suffix:
            header = f"{header} [{suffix[1:]}]"
        if unit and task_type == "regression" and base in UNIT_COLUMNS:
            header = f"{header} ({unit})"
        out.append(Column(str(name), header, fmt))
    return out


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any) -> float | None:
    if _missing(value) or isinstance(value, str):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _cell(column: Column, value: Any, reason: Any) -> Cell:
    if column.fmt in ("value", "prob"):
        x = _number(value)
        if x is None:
            return Cell("—", "", "num missing")
        text = f"{x:.2f}" if column.fmt == "prob" else f"{x:.4g}"
        return Cell(text, repr(x), "num")
    if column.fmt == "bool":
        why = "" if _missing(reason) else str(reason)
        if _missing(value):
            return Cell("—", "", "flag missing", (why,) if why else ())
        yes = bool(value)
        return Cell("yes" if yes else "no", "1" if yes else "0",
                    "flag in" if yes else "flag out", (why,) if why else ())  # fmt: skip
    if _missing(value):
        return Cell("", "")
    text = str(value)
    if column.fmt == "list":
        items = tuple(part.strip() for part in text.split(";") if part.strip())
        return Cell(text, text, "list", items)
    x = _number(value)
    return Cell(text, repr(x) if x is not None else text.lower(), "num" if x is not None else "")


def rows_of(frame: pd.DataFrame, columns: Sequence[Column]) -> list[Row]:
    """One :class:`Row` per frame row, in order; a bad row keeps its error and no cells."""
    rows = []
    reasons = frame["domain_reason"] if "domain_reason" in frame.columns else None
    for i in range(len(frame)):
        error = frame["error"].iloc[i]
        formula = str(frame["formula"].iloc[i])
        if not _missing(error) and str(error):
            rows.append(Row(i, formula, str(error), ()))
            continue
        reason = reasons.iloc[i] if reasons is not None else None
        cells = tuple(_cell(c, frame[c.name].iloc[i], reason) for c in columns)
        rows.append(Row(i, formula, None, cells))
    return rows


# ---------------------------------------------------------------------------------- the chart


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _fmt_tick(x: float) -> str:
    return f"{x:.6g}"


def _short(formula: str) -> str:
    return formula if len(formula) <= LABEL_CHARS else formula[: LABEL_CHARS - 1] + "…"


@dataclass(frozen=True)
class _Series:
    """What the chart draws: per row the value, its ± bar (NaN: none) and the in-domain flag."""

    label: str
    formulas: list[str]
    value: np.ndarray
    spread: np.ndarray
    in_domain: np.ndarray | None
    bounded: bool  # a probability: the axis is [0, 1]


def _series(frame: pd.DataFrame, task_type: str | None) -> _Series | None:
    cols = set(frame.columns)
    suffix = "" if "prediction" in cols else "_0"
    if task_type == "classification" and f"probability{suffix}" in cols:
        value_col, spread_col, label, bounded = (
            f"probability{suffix}", f"std_epistemic{suffix}", "probability of class 1", True)  # fmt: skip
    elif f"prediction{suffix}" in cols:
        value_col, spread_col, label, bounded = (
            f"prediction{suffix}", f"std{suffix}", "prediction ± std", False)  # fmt: skip
    else:
        return None
    value = pd.to_numeric(frame[value_col], errors="coerce").to_numpy(dtype=float)
    good = np.isfinite(value)
    if not good.any():
        return None
    spread = (
        pd.to_numeric(frame[spread_col], errors="coerce").to_numpy(dtype=float)
        if spread_col in cols
        else np.full(len(frame), np.nan)
    )
    flag = None
    if "in_domain" in cols:
        flag = frame["in_domain"].map(lambda v: bool(v) if not _missing(v) else True).to_numpy()
        flag = flag[good].astype(bool)
    if suffix:
        label += " (target 0)"
    formulas = [str(f) for f, g in zip(frame["formula"], good, strict=True) if g]
    return _Series(label, formulas, value[good], spread[good], flag, bounded)


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]


def _dot_plot(s: _Series, order: np.ndarray, title: str) -> str:
    """One line per formula: a dot at the value, a bar over value ± spread."""
    width, left, right, top, line = 760, 210, 30, 34, 22
    height = top + line * len(order) + 16
    lo_vals = s.value - np.nan_to_num(s.spread, nan=0.0)
    hi_vals = s.value + np.nan_to_num(s.spread, nan=0.0)
    lo, hi = (0.0, 1.0) if s.bounded else (float(lo_vals.min()), float(hi_vals.max()))
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    span = hi - lo or 1.0

    def x(v: float) -> float:
        return left + (width - left - right) * (min(max(v, lo), hi) - lo) / span

    out = _svg_open(width, height, title)
    bottom = height - 16
    for t in ticks:
        out.append(f'<line class="grid" x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" '
                   f'y2="{bottom}"/>')  # fmt: skip
        out.append(f'<text class="tick" x="{x(t):.1f}" y="{top - 12}" text-anchor="middle">'
                   f"{_fmt_tick(t)}</text>")  # fmt: skip
    for k, i in enumerate(order):
        y = top + line * k + line / 2
        v, sd = float(s.value[i]), float(s.spread[i])
        cls = "dot" if s.in_domain is None or s.in_domain[i] else "dot out"
        tip = f"{s.formulas[i]}: {v:.4g}" + (f" ± {sd:.3g}" if math.isfinite(sd) else "")
        if s.in_domain is not None and not s.in_domain[i]:
            tip += " (outside the training domain)"
        out.append(f"<g><title>{escape(tip)}</title>")
        out.append(f'<text class="label" x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{escape(_short(s.formulas[i]))}</text>")  # fmt: skip
        if math.isfinite(sd) and sd > 0:
            x0, x1 = x(v - sd), x(v + sd)
            out.append(f'<line class="bar" x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}"/>')
            for xe in (x0, x1):
                out.append(f'<line class="bar" x1="{xe:.1f}" y1="{y - 5:.1f}" x2="{xe:.1f}" '
                           f'y2="{y + 5:.1f}"/>')  # fmt: skip
        out.append(f'<circle class="{cls}" cx="{x(v):.1f}" cy="{y:.1f}" r="5"/></g>')
    out.append("</svg>")
    return "".join(out)


def _histogram(s: _Series, title: str, bins: int = 24) -> str:
    """Counts of the predictions in ``bins`` equal bins (out-of-domain ones stacked on top)."""
    width, left, right, top, bottom_pad, height = 760, 60, 30, 20, 40, 300
    lo, hi = (0.0, 1.0) if s.bounded else (float(s.value.min()), float(s.value.max()))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    inside = s.in_domain if s.in_domain is not None else np.ones(len(s.value), dtype=bool)
    n_in = np.histogram(s.value[inside], edges)[0]
    n_out = np.histogram(s.value[~inside], edges)[0]
    peak = max(int((n_in + n_out).max()), 1)
    plot_w, plot_h = width - left - right, height - top - bottom_pad
    bottom = top + plot_h
    out = _svg_open(width, height, title)
    for t in nice_ticks(0, peak, 4):
        if t > peak:
            continue
        y = bottom - plot_h * t / peak
        out.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
        )
        out.append(f'<text class="tick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{_fmt_tick(t)}</text>")  # fmt: skip
    bw = plot_w / bins
    for b in range(bins):
        x0 = left + b * bw
        h_in, h_out = plot_h * n_in[b] / peak, plot_h * n_out[b] / peak
        tip = f"{edges[b]:.4g} to {edges[b + 1]:.4g}: {n_in[b] + n_out[b]} formula(s)"
        out.append(f"<g><title>{escape(tip)}</title>")
        if n_in[b]:
            out.append(f'<rect class="hist" x="{x0 + 1:.1f}" y="{bottom - h_in:.1f}" '
                       f'width="{bw - 2:.1f}" height="{h_in:.1f}"/>')  # fmt: skip
        if n_out[b]:
            out.append(f'<rect class="hist out" x="{x0 + 1:.1f}" y="{bottom - h_in - h_out:.1f}" '
                       f'width="{bw - 2:.1f}" height="{h_out:.1f}"/>')  # fmt: skip
        out.append("</g>")
    for t in nice_ticks(lo, hi):
        if lo - 1e-12 <= t <= hi + 1e-12:
            xt = left + plot_w * (t - lo) / (hi - lo)
            out.append(f'<text class="tick" x="{xt:.1f}" y="{bottom + 18}" text-anchor="middle">'
                       f"{_fmt_tick(t)}</text>")  # fmt: skip
    out.append(f'<text class="axis" x="{left + plot_w / 2:.1f}" y="{height - 4}" '
               f'text-anchor="middle">{escape(s.label)}</text>')  # fmt: skip
    out.append(f'<line class="axisline" x1="{left}" y1="{bottom}" x2="{width - right}" '
               f'y2="{bottom}"/></svg>')  # fmt: skip
    return "".join(out)


@dataclass(frozen=True)
class Chart:
    """The chart of one result: ``kind`` "dots" (one line per formula, in two orders) or
    "histogram"; ``svgs`` maps an order ("value", "input") or "histogram" to its SVG."""

    kind: str
    label: str
    svgs: dict[str, str]
    has_domain: bool


def chart_svgs(frame: pd.DataFrame, task_type: str | None, unit: str = "") -> Chart | None:
    """The chart of a prediction frame (None when no row has a value to draw)."""
    s = _series(frame, task_type)
    if s is None:
        return None
    if unit and not s.bounded:
        s = replace(s, label=f"{s.label} ({unit})")
    has_domain = s.in_domain is not None
    if len(s.value) > CHART_ROWS:
        return Chart("histogram", s.label, {"histogram": _histogram(s, s.label)}, has_domain)
    by_value = np.argsort(-s.value, kind="stable")
    by_input = np.arange(len(s.value))
    svgs = {
        "value": _dot_plot(s, by_value, f"{s.label}, highest first"),
        "input": _dot_plot(s, by_input, f"{s.label}, in input order"),
    }
    return Chart("dots", s.label, svgs, has_domain)
