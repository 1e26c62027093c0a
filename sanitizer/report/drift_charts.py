"""The drift section's charts: a drifted column's baseline and new data drawn over each other.

* :func:`overlaid_histogram`: a numeric or date column's sampled values on the baseline's quantile bins, as
  densities (each side's share of its sample per unit of the column), so bins of unequal width compare
  fairly and a shift shows as one shape sliding past the other;
* :func:`share_bars`: a categorical, boolean or label column's levels, the baseline's share and the new
  data's share side by side.

Inline SVG drawn in Python, nothing fetched; every text from the data goes through :func:`esc`.
"""

from __future__ import annotations

from datetime import date, timedelta

from sanitizer.report.charts import GRID, MUTED, _svg, esc, fmt, nice_ticks

BASELINE_COLOUR = "#1f618d"
NEW_COLOUR = "#e67e22"
MAX_LEVEL_CHARS = 22


def legend() -> str:
    """The two colours, as the report's other legends show theirs."""
    return (f'<div class="legend"><span><i style="background:{BASELINE_COLOUR}"></i>baseline</span>'
            f'<span><i style="background:{NEW_COLOUR}"></i>new data</span></div>')


def _tick_text(value: float, kind: str) -> str:
    if kind == "date":  # days since 1970-01-01
        try:
            return (date(1970, 1, 1) + timedelta(days=round(value))).isoformat()
        except (OverflowError, ValueError):
            return fmt(value)
    return fmt(value)


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def overlaid_histogram(name: str, kind: str, histogram: dict) -> str:
    """``histogram``: {"edges": [low, inner edges..., high], "baseline": counts, "new": counts}."""
    edges = [float(e) for e in histogram["edges"]]
    lo, hi = edges[0], edges[-1]
    span = (hi - lo) or 1.0
    widths = [max(b - a, span * 1e-3) for a, b in zip(edges[:-1], edges[1:])]
    sides = [(label, colour, [s / w for s, w in zip(_shares(histogram[label]), widths)])
             for label, colour in (("baseline", BASELINE_COLOUR), ("new", NEW_COLOUR))]
    top = max((d for _, _, densities in sides for d in densities), default=0.0) or 1.0
    width, height = 560, 230
    ml, mr, mt, mb = 20, 16, 16, 42
    pw, ph = width - ml - mr, height - mt - mb

    def x(value: float) -> float:
        return ml + (value - lo) / span * pw

    body = [f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" stroke="{MUTED}"/>']
    for label, colour, densities in sides:
        counts = histogram[label]
        for i, density in enumerate(densities):
            if not counts[i]:
                continue
            a, b = edges[i], edges[i] + widths[i]
            h = density / top * ph
            tip = f"{label}: {counts[i]:,} sampled rows from {_tick_text(a, kind)} to {_tick_text(edges[i + 1], kind)}"
            body.append(f'<g><title>{esc(tip)}</title><rect x="{x(a):.1f}" y="{mt + ph - h:.1f}" '
                        f'width="{max(x(b) - x(a), 1):.1f}" height="{h:.1f}" fill="{colour}" fill-opacity="0.45" '
                        f'stroke="{colour}" stroke-width="1"/></g>')
    for t in nice_ticks(lo, hi, 5 if kind == "date" else 6):
        body.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{mt + ph}" y2="{mt + ph + 4}" stroke="{MUTED}"/>')
        body.append(f'<text x="{x(t):.1f}" y="{mt + ph + 16}" text-anchor="middle" class="tick">'
                    f"{esc(_tick_text(t, kind))}</text>")
    body.append(f'<text x="{ml + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" class="axis">'
                f"{esc(name)} (height: share of each side's sample per unit)</text>")
    return _svg(width, height, body, f"Histogram of {name}: baseline and new data")


def share_bars(name: str, shares: dict) -> str:
    """``shares``: {"levels": [...], "baseline": counts, "new": counts}; one pair of bars per level."""
    levels = [str(v) for v in shares["levels"]]
    base, new = _shares(shares["baseline"]), _shares(shares["new"])
    bar_h, gap = 9, 8
    ml, mr, mt = 150, 110, 22
    width = 560
    pw = width - ml - mr
    height = mt + len(levels) * (2 * bar_h + gap) + 24
    xmax = max(nice_ticks(0, max(base + new, default=0.0) or 0.01, 4)[-1], max(base + new, default=0.0) or 0.01)
    body = []
    for t in nice_ticks(0, xmax, 4):
        xx = ml + t / xmax * pw
        body.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{mt - 4}" y2="{height - 20}" stroke="{GRID}"/>')
        body.append(f'<text x="{xx:.1f}" y="{height - 6}" text-anchor="middle" class="tick">{t * 100:.3g}%</text>')
    for i, level in enumerate(levels):
        yy = mt + i * (2 * bar_h + gap)
        short = level if len(level) <= MAX_LEVEL_CHARS else level[:MAX_LEVEL_CHARS - 1] + "…"
        body.append(f'<text x="{ml - 6}" y="{yy + bar_h + 4}" text-anchor="end" class="tick">'
                    f"<title>{esc(level)}</title>{esc(short)}</text>")
        for j, (label, colour, share, count) in enumerate((
                ("baseline", BASELINE_COLOUR, base[i], shares["baseline"][i]),
                ("new data", NEW_COLOUR, new[i], shares["new"][i]))):
            y0 = yy + j * bar_h
            body.append(f'<g><title>{esc(f"{level}: {share:.1%} of the {label} ({count:,} rows)")}</title>'
                        f'<rect x="{ml}" y="{y0}" width="{max(share / xmax * pw, 0 if count == 0 else 1.5):.1f}" '
                        f'height="{bar_h - 1}" fill="{colour}" rx="1"/></g>')
            body.append(f'<text x="{ml + share / xmax * pw + 5:.1f}" y="{y0 + bar_h - 1}" class="tick">'
                        f"{share:.1%}</text>")
    body.append(f'<text x="{ml}" y="12" class="axis">share of the rows holding a value of {esc(name)}</text>')
    return _svg(width, height, body, f"Shares of {name}: baseline and new data")
