"""Small inline SVG charts, drawn in Python: no plotting library, nothing fetched.

Every piece of text that comes from the data goes through :func:`esc`.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from sanitizer.report.evidence import detector_for

EXTRA_COLOURS = ["#c0392b", "#7f8c8d", "#b7950b", "#1f618d", "#a04000"]  # for detectors that name no colour
OTHER_COLOUR = "#c9ced6"
THRESHOLD_COLOUR = "#c0392b"
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"


def esc(value) -> str:
    return escape(str(value), quote=True)


def count(value) -> str:
    """An integer with thousands separators (``12,345``); anything else escaped as it is."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return esc(value)


def colour_for(name: str, index: int = 0) -> str:
    """The colour detector ``name`` declares (its ``colour`` hook), else the ``index``-th spare colour."""
    hooks = detector_for(name)
    return (hooks.colour if hooks is not None else None) or EXTRA_COLOURS[index % len(EXTRA_COLOURS)]


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    a = abs(value)
    if a >= 1e5 or a < 1e-3:
        return f"{value:.2g}"
    if a >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(label)}</title>" + "".join(body) + "</svg>"
    )


def histogram(name: str, flagged: np.ndarray, other: np.ndarray, thresholds: list[float],
              colour: str, bins: int = 30) -> str:
    """Quarantined rows' scores: this detector's flags stacked on rows quarantined for other reasons."""
    width, height = 560, 240
    ml, mr, mt, mb = 48, 16, 24, 40
    pw, ph = width - ml - mr, height - mt - mb
    values = np.concatenate([flagged, other])
    lo = float(min(values.min(), *(thresholds or [values.min()])))
    hi = float(max(values.max(), *(thresholds or [values.max()])))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.02
    lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, bins + 1)
    h_flag, _ = np.histogram(flagged, edges)
    h_other, _ = np.histogram(other, edges)
    top = max(int((h_flag + h_other).max()), 1)
    yticks = [t for t in nice_ticks(0, top, 4) if t == int(t)]
    ymax = max(top, yticks[-1] if yticks else top)

    def x(v):
        return ml + (v - lo) / (hi - lo) * pw

    def y(c):
        return mt + ph - c / ymax * ph

    body = []
    for t in yticks:
        body.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{ml - 6}" y="{y(t) + 4:.1f}" text-anchor="end" class="tick">{int(t)}</text>')
    if thresholds:
        t_lo, t_hi = min(thresholds), max(thresholds)
        if t_hi > t_lo:
            body.append(
                f'<rect x="{x(t_lo):.1f}" y="{mt}" width="{max(x(t_hi) - x(t_lo), 1):.1f}" height="{ph}" '
                f'fill="{THRESHOLD_COLOUR}" fill-opacity="0.08"/>'
            )
    bw = pw / bins
    for i in range(bins):
        a, b = int(h_other[i]), int(h_flag[i])
        if a + b == 0:
            continue
        x0 = ml + i * bw + 0.5
        tip = f"{fmt(edges[i])} to {fmt(edges[i + 1])}: {b} flagged by {name}, {a} quarantined for other reasons"
        body.append(f"<g><title>{esc(tip)}</title>")
        if b:
            body.append(f'<rect x="{x0:.1f}" y="{y(b):.1f}" width="{bw - 1:.1f}" height="{y(0) - y(b):.1f}" '
                        f'fill="{colour}"/>')
        if a:
            body.append(f'<rect x="{x0:.1f}" y="{y(a + b):.1f}" width="{bw - 1:.1f}" '
                        f'height="{y(b) - y(a + b):.1f}" fill="{OTHER_COLOUR}"/>')
        body.append("</g>")
    body.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" stroke="{MUTED}"/>')
    for t in nice_ticks(lo, hi, 6):
        body.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{mt + ph}" y2="{mt + ph + 4}" stroke="{MUTED}"/>')
        body.append(f'<text x="{x(t):.1f}" y="{mt + ph + 16}" text-anchor="middle" class="tick">{esc(fmt(t))}</text>')
    if thresholds:
        shown = sorted(thresholds) if len(thresholds) <= 12 else [min(thresholds), max(thresholds)]
        opacity = 1.0 if len(shown) <= 2 else 0.55
        for t in shown:
            body.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{mt}" y2="{mt + ph}" stroke="{THRESHOLD_COLOUR}" '
                        f'stroke-opacity="{opacity}" stroke-width="1.5" stroke-dasharray="4 3">'
                        f'<title>threshold {esc(fmt(t))}</title></line>')
        label = (f"threshold {fmt(thresholds[0])}" if len(thresholds) == 1
                 else f"thresholds {fmt(min(thresholds))} to {fmt(max(thresholds))}")
        anchor_x = x(max(thresholds))
        anchor = "end" if anchor_x > ml + pw * 0.7 else "start"
        dx = -4 if anchor == "end" else 4
        body.append(f'<text x="{anchor_x + dx:.1f}" y="{mt - 8}" text-anchor="{anchor}" class="thr">{esc(label)}</text>')
    body.append(f'<text x="{ml + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" class="axis">'
                f'{esc(name)} score (quarantined rows only)</text>')
    return _svg(width, height, body, f"Histogram of {name} scores of quarantined rows")


def label_matrix(pairs: dict[tuple[str, str], int], max_classes: int = 20) -> tuple[str, int]:
    """Given label (rows) by suggested label (columns); returns (svg, classes left out)."""
    weight: dict[str, int] = {}
    for (g, s), n in pairs.items():
        weight[g] = weight.get(g, 0) + n
        weight[s] = weight.get(s, 0) + n
    classes = sorted(weight, key=lambda c: (-weight[c], c))[:max_classes]
    left_out = max(len(weight) - len(classes), 0)
    classes = sort_labels(classes)
    k = len(classes)
    cell = 30 if k <= 12 else 22
    label_w = min(max(max(len(c) for c in classes) * 7 + 12, 40), 140)
    ml, mt = label_w + 22, label_w + 22
    width, height = ml + k * cell + 10, mt + k * cell + 10
    top = max(pairs.values()) if pairs else 1
    idx = {c: i for i, c in enumerate(classes)}
    body = [
        f'<text x="{ml + k * cell / 2:.1f}" y="12" text-anchor="middle" class="axis">suggested label</text>',
        (f'<text transform="translate(12 {mt + k * cell / 2:.1f}) rotate(-90)" text-anchor="middle" '
         'class="axis">given label</text>'),
    ]
    for c, i in idx.items():
        short = c if len(c) <= 18 else c[:17] + "…"
        body.append(f'<text x="{ml - 6}" y="{mt + i * cell + cell / 2 + 4:.1f}" text-anchor="end" class="tick">'
                    f"<title>{esc(c)}</title>{esc(short)}</text>")
        cx, cy = ml + i * cell + cell / 2 + 4, mt - 6
        body.append(f'<text transform="translate({cx:.1f} {cy}) rotate(-90)" class="tick"><title>{esc(c)}</title>'
                    f"{esc(short)}</text>")
    for i in range(k):
        for j in range(k):
            body.append(f'<rect x="{ml + j * cell}" y="{mt + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                        f'fill="{"#f3f4f6" if i != j else "#e5e7eb"}"/>')
    for (g, s), n in pairs.items():
        if g not in idx or s not in idx:
            continue
        i, j = idx[g], idx[s]
        alpha = 0.15 + 0.85 * (n / top)
        text_colour = "#ffffff" if alpha > 0.55 else INK
        body.append(
            f'<g><title>{esc(f"given {g}, suggested {s}: {n} rows")}</title>'
            f'<rect x="{ml + j * cell}" y="{mt + i * cell}" width="{cell - 1}" height="{cell - 1}" '
            f'fill="#2f6fd6" fill-opacity="{alpha:.2f}"/>'
            f'<text x="{ml + j * cell + cell / 2 - 0.5:.1f}" y="{mt + i * cell + cell / 2 + 4:.1f}" '
            f'text-anchor="middle" class="cell" fill="{text_colour}">{n}</text></g>'
        )
    return _svg(width, height, body, "Label flips: given label by suggested label"), left_out


def class_share_bars(rows: list[tuple[str, int, int]]) -> str:
    """Horizontal bars: quarantined share per class; rows are (class, rows, quarantined)."""
    label_w = min(max((max(len(r[0]) for r in rows) if rows else 4) * 7 + 10, 40), 160)
    bar_h, gap = 16, 6
    ml, mr, mt = label_w + 8, 150, 22
    pw = 560 - ml - mr
    width = 560
    height = mt + len(rows) * (bar_h + gap) + 24
    top = max((q / n for _, n, q in rows if n), default=0.0)
    xmax = max(nice_ticks(0, top or 0.01, 4)[-1], top or 0.01)
    body = []
    for t in nice_ticks(0, xmax, 4):
        xx = ml + t / xmax * pw
        body.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{mt - 4}" y2="{height - 20}" stroke="{GRID}"/>')
        body.append(f'<text x="{xx:.1f}" y="{height - 6}" text-anchor="middle" class="tick">{t * 100:.3g}%</text>')
    for i, (cls, n, q) in enumerate(rows):
        share = q / n if n else 0.0
        yy = mt + i * (bar_h + gap)
        short = cls if len(cls) <= 22 else cls[:21] + "…"
        body.append(f'<text x="{ml - 6}" y="{yy + bar_h - 4}" text-anchor="end" class="tick">'
                    f"<title>{esc(cls)}</title>{esc(short)}</text>")
        body.append(f'<g><title>{esc(f"{cls}: {q:,} of {n:,} rows quarantined ({share:.1%})")}</title>'
                    f'<rect x="{ml}" y="{yy}" width="{max(share / xmax * pw, 0 if q == 0 else 1.5):.1f}" '
                    f'height="{bar_h}" fill="#0f766e" rx="2"/></g>')
        body.append(f'<text x="{ml + share / xmax * pw + 6:.1f}" y="{yy + bar_h - 4}" class="tick">'
                    f"{share:.1%} ({q:,} of {n:,})</text>")
    body.append(f'<text x="{ml}" y="12" class="axis">share of the class quarantined</text>')
    return _svg(width, height, body, "Quarantined share per class")


def sort_labels(labels):
    """Numeric labels in numeric order, then the rest alphabetically."""
    def key(c):
        try:
            return (0, float(c), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(c))

    return sorted(labels, key=key)
