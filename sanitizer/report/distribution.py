"""The whole distribution of one detector's scores: every scored row, clean ones included, against the threshold.

Drawn from the fixed-bin histogram the pipeline merges (``counts.by_detector.<name>.histogram`` in
provenance; see ``sanitizer.runs.score_histogram``), on a logarithmic count axis so the few rows past the
threshold show beside the many below it. The first and last bars hold the rows below and above the
binned range.
"""

from __future__ import annotations

import math

from sanitizer.report.charts import GRID, MUTED, OTHER_COLOUR, THRESHOLD_COLOUR, _svg, esc, fmt, nice_ticks
from sanitizer.runs.score_histogram import ScoreHistogram


def chart(name: str, hist: ScoreHistogram, thresholds: list[float], colour: str) -> str:
    width, height = 560, 240
    ml, mr, mt, mb = 56, 16, 24, 40
    pw, ph = width - ml - mr, height - mt - mb
    edges = hist.edges
    slots = len(hist.counts)  # underflow, the bins, overflow
    bw = pw / slots
    top = max(hist.counts) if hist.counts else 0
    ymax = math.log10(top + 1) or 1.0
    t_lo = min(thresholds) if thresholds else math.inf

    def y(count: int) -> float:
        return mt + ph - math.log10(count + 1) / ymax * ph

    def x(value: float) -> float:  # a score's position on the inner bins (slot 1 .. slots - 1)
        return ml + bw * (1 + (value - hist.lo) / (hist.hi - hist.lo) * (slots - 2))

    body = []
    for power in range(0, int(ymax) + 1):
        count = 10 ** power
        body.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y(count):.1f}" y2="{y(count):.1f}" stroke="{GRID}"/>')
        body.append(f'<text x="{ml - 6}" y="{y(count) + 4:.1f}" text-anchor="end" class="tick">{count:,}</text>')
    for i, count in enumerate(hist.counts):
        if not count:
            continue
        if i == 0:
            span, start = f"below {fmt(hist.lo)}", -math.inf
        elif i == slots - 1:
            span, start = f"{fmt(hist.hi)} and above", hist.hi
        else:
            span, start = f"{fmt(edges[i - 1])} to {fmt(edges[i])}", edges[i - 1]
        past = start >= t_lo
        fill = colour if past else OTHER_COLOUR
        x0 = ml + i * bw + 0.5
        body.append(f'<g><title>{esc(f"{span}: {count:,} rows")}</title>'
                    f'<rect x="{x0:.1f}" y="{y(count):.1f}" width="{max(bw - 1, 1):.1f}" '
                    f'height="{y(0) - y(count):.1f}" fill="{fill}"/></g>')
    body.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}" stroke="{MUTED}"/>')
    for t in nice_ticks(hist.lo, hist.hi, 6):
        body.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{mt + ph}" y2="{mt + ph + 4}" stroke="{MUTED}"/>')
        body.append(f'<text x="{x(t):.1f}" y="{mt + ph + 16}" text-anchor="middle" class="tick">{esc(fmt(t))}</text>')
    shown = sorted(t for t in thresholds if hist.lo <= t <= hist.hi)
    shown = shown if len(shown) <= 12 else [shown[0], shown[-1]]
    for t in shown:
        body.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{mt}" y2="{mt + ph}" stroke="{THRESHOLD_COLOUR}" '
                    f'stroke-width="1.5" stroke-dasharray="4 3"><title>threshold {esc(fmt(t))}</title></line>')
    body.append(f'<text x="{ml + pw / 2:.1f}" y="{height - 6}" text-anchor="middle" class="axis">'
                f'{esc(name)} score, every scored row (count axis logarithmic)</text>')
    return _svg(width, height, body, f"Histogram of {name} scores of every scored row")


def panel(name: str, hist: ScoreHistogram, thresholds: list[float], colour: str) -> str:
    """A report panel: the chart, its legend and what it shows in words."""
    past = 0
    if thresholds:
        t_lo = min(thresholds)
        edges = hist.edges
        past = sum(c for i, c in enumerate(hist.counts[1:-1]) if edges[i] >= t_lo) + hist.counts[-1]
    legend = (f'<div class="legend"><span><i style="background:{OTHER_COLOUR}"></i>below the threshold</span>'
              f'<span><i style="background:{colour}"></i>at or past the threshold</span>'
              f'<span><i style="background:{THRESHOLD_COLOUR}"></i>threshold</span></div>')
    note = (f"All {hist.total:,} scored rows in {len(hist.counts) - 2} fixed bins from {fmt(hist.lo)} to "
            f"{fmt(hist.hi)}, plus one bar each for the rows below and above that range.")
    if thresholds:
        note += f" {past:,} rows sit in bins at or past the lowest threshold ({fmt(min(thresholds))})."
    head = f'<h3>All rows: <span class="mono">{esc(name)}</span></h3>'
    return (f'<div class="panel">{head}{legend}{chart(name, hist, thresholds, colour)}'
            f'<p class="note">{esc(note)}</p></div>')
