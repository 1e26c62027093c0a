"""Assemble report.html: one self-contained page (inline CSS, JS and SVG; nothing fetched).

Safety rules, kept everywhere in this module:

- every value from the data or the provenance goes through :func:`esc`
  (``html.escape`` with quotes) before it lands in markup, text or attribute;
- the data the suspects table needs is JSON in ``<script type="application/json">``
  with ``<``, ``>`` and ``&`` written as ``\\u003c`` etc., read with ``JSON.parse``
  and put on the page with ``textContent`` only;
- a content security policy allows only this page's own two scripts (by nonce),
  inline styles and ``data:`` images, so even a mistake could neither run injected
  script nor fetch anything.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sanitizer.report import charts, distribution
from sanitizer.report.suspects import suspects_section
from sanitizer.report.assets import CSS, ERROR_JS, TABLE_JS
from sanitizer.report.review_assets import REVIEW_CSS, REVIEW_JS
from sanitizer.report.charts import count as _n
from sanitizer.report.charts import esc
from sanitizer.report.checks import failed_check_notes
from sanitizer.report.drift_section import NAV_LINK as DRIFT_LINK
from sanitizer.report.drift_section import drift_section
from sanitizer.report.run_facts import columns_section, guard_callout, inputs_section
from sanitizer.runs.record import Accounting, Counts, RunRecord
from sanitizer.report.data import QuarantineData, _finite

NAV = (
    '<nav class="toc"><a href="#summary">Summary</a><a href="#columns">Columns</a><a href="#detectors">Detectors</a>'
    '<a href="#reasons">Reasons</a>'
    '<a href="#plots">Plots</a><a href="#classes">Classes</a><a href="#suspects-section">Suspects</a></nav>'
)
MAX_CLASS_BARS = 40
MAX_CLASS_TABLE = 500
OPEN_CLASS_TABLE = 30  # longer class tables start folded


def script_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' can end or confuse it."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _pct(part, whole) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _num_or_none(value):
    return None if isinstance(value, bool) else _finite(value)


def _table(headers: list[tuple[str, str]], rows: list[list[str]], cls: str = "small") -> str:
    """headers: (label, css class); rows: cells already escaped."""
    head = "".join(f'<th class="{c}">{esc(h)}</th>' for h, c in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{headers[i][1]}">{cell}</td>' for i, cell in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --------------------------------------------------------------------------- sections


def _header(p: RunRecord, out_dir: str) -> str:
    status = p.status or "unknown"
    badge = "ok" if status == "succeeded" else "fail"
    if p.guard_tripped:
        status = "failed: nothing published (guard)"
    inputs = p.inputs
    first = inputs[0].get("uri") if inputs else p.config.get("input")
    input_text = (f"{first}" if first else "?") + (f" (+{len(inputs) - 1} more files)" if len(inputs) > 1 else "")
    meta = [
        ("run", p.run_id or "?"),
        ("started", p.started_at or "?"),
        ("runner", p.runner or "?"),
        ("input", input_text or "?"),
        ("output", out_dir),
        ("sanitizer", p.versions.get("sanitizer", "?")),
    ]
    items = "".join(f"<span>{esc(k)} <b class=\"wrap\">{esc(v)}</b></span>" for k, v in meta)
    return (
        f'<header class="top"><h1>Quarantine report <span class="badge {badge}" id="run-status">{esc(status)}</span>'
        f'</h1><div class="meta">{items}</div></header>'
    )


def _summary(p: RunRecord, q: QuarantineData) -> str:
    counts, acc = p.counts, p.accounting
    rows_in = counts.rows_in or acc.input_rows
    clean = counts.clean or acc.clean_rows
    quarantined = counts.quarantined or acc.quarantined_rows or (q.total_rows if counts == Counts() else 0)
    invalid, reported = counts.invalid, counts.reported_kept_clean
    cards = [
        ("rows-in", "", "Rows in", rows_in, "read from the input"),
        ("rows-clean", "c", "Clean", clean, f"{_pct(clean, rows_in)} of rows, published"),
        ("rows-quarantined", "q", "Quarantined", quarantined, f"{_pct(quarantined, rows_in)} of rows"),
        ("rows-invalid", "", "Failed row checks", invalid, "null / NaN / wrong shape / expectations"),
        ("rows-reported", "", "Flagged, kept clean", reported, "by report-only detectors or a missing value"),
    ]
    html = ['<section id="summary"><h2>Summary</h2>', guard_callout(p), '<div class="cards">']
    for ident, cls, title, value, sub in cards:
        html.append(
            f'<div class="card {cls}"><div class="k">{esc(title)}</div>'
            f'<div class="v" id="{ident}" data-value="{int(value)}">{_n(value)}</div>'
            f'<div class="s">{esc(sub)}</div></div>'
        )
    html.append("</div>")
    notes = []
    if acc != Accounting():  # recorded (a provenance without one says nothing)
        if acc.holds:
            notes.append(f'<span class="badge ok">accounted</span> input rows = clean + quarantined '
                         f"({_n(acc.input_rows)} = {_n(acc.clean_rows)} + {_n(acc.quarantined_rows)})")
        else:
            problems = "; ".join(acc.problems)
            notes.append(f'<span class="badge fail">not accounted</span> {esc(problems)}')
    if q.total_rows != quarantined:
        notes.append(f'<span class="badge skip">note</span> the quarantine shards hold {_n(q.total_rows)} rows, '
                     f"provenance says {_n(quarantined)}")
    v = p.validation
    if isinstance(v, dict):
        checks = v.get("checks") or []
        passed = sum(1 for c in checks if isinstance(c, dict) and c.get("success"))
        suite = (v.get("suite") or {}).get("name", "")
        badge = "ok" if v.get("success") else "fail"
        notes.append(f'<span class="badge {badge}">expectations</span> {passed} of {len(checks)} data-set checks '
                     f"passed (suite {esc(suite)}); results in validation/")
        notes += failed_check_notes(checks)  # each failed check with its GX severity (sanitizer.report.checks)
    review = counts.review
    if review is not None:
        notes.append(
            f'<span class="badge neutral">review</span> {_n(review.released_kept_clean)} released rows kept '
            f'clean ({_n(review.released_overridden)} of them overriding a detector), '
            f'{_n(review.confirmed_held)} confirmed rows held'
            + (f', {_n(review.stale)} decisions not applied (made for other content than the row '
               f'holds now, or without a content hash)' if review.stale else "")
        )
    if notes:
        html.append('<p class="note">' + "<br>".join(notes) + "</p>")
    for w in p.warnings:
        html.append(f'<div class="callout">{esc(w)}</div>')
    html.append("</section>")
    return "".join(html)


def _detector_section(p: RunRecord, q: QuarantineData) -> str:
    by_det = p.counts.by_detector
    fitted = p.detectors
    policy = p.config.get("policy") or {}
    names = list(dict.fromkeys(list(fitted) + list(by_det) + q.detectors))
    rows = []
    for name in names:
        info = fitted.get(name) or {}
        stats = by_det.get(name)
        status = str(info.get("status") or ("fitted" if stats else "unknown"))
        badge = {"fitted": "ok", "skipped": "skip"}.get(status, "neutral")
        action = (stats.action if stats else None) or policy.get(name) or "quarantine"
        thr = _num_or_none(info.get("threshold"))
        seen = sorted(q.scores[name].thresholds) if name in q.scores else []
        if thr is not None:
            thr_text = charts.fmt(thr)
        elif len(seen) == 1:
            thr_text = charts.fmt(seen[0])
        elif seen:
            thr_text = f"{charts.fmt(seen[0])} to {charts.fmt(seen[-1])} (per class)"
        else:
            thr_text = "–"
        notes = info.get("reason") if status == "skipped" else info.get("score") or ""
        rows.append([
            f'<span class="mono">{esc(name)}</span>',
            f'<span class="badge {badge}">{esc(status)}</span>',
            esc(action),
            _n(stats.scored) if stats else "–",
            _n(stats.flagged) if stats else "–",
            _n(sum(q.code_counts.get(code, 0) for code in _codes_of(name))),
            esc(thr_text),
            f'<span class="wrap">{esc(notes)}</span>',
        ])
    if not rows:
        return ""
    table = _table(
        [("detector", ""), ("status", ""), ("action", ""), ("scored", "num"), ("flagged", "num"),
         ("in quarantine", "num"), ("threshold", ""), ("notes / skipped because", "")],
        rows,
    )
    return f'<section id="detectors"><h2>Detectors</h2><div class="panel">{table}</div></section>'


def _codes_of(detector: str) -> tuple[str, ...]:
    """The reason codes a detector's flags carry: its name, or the kinds it declares (``reason_codes``)."""
    from sanitizer.report.evidence import detector_for

    hooks = detector_for(detector)
    return tuple(getattr(hooks, "reason_codes", ()) or ()) or (detector,)


def _reason_section(p: RunRecord, q: QuarantineData) -> str:
    counts = p.counts
    by_reason = dict(counts.by_reason)
    by_det = counts.by_detector
    for code, n in q.code_counts.items():
        by_reason.setdefault(code, n)
    if not by_reason:
        return ""
    quarantined = counts.quarantined or q.total_rows
    rows = []
    for code, n in sorted(by_reason.items(), key=lambda kv: (-int(kv[1] or 0), kv[0])):
        if code.startswith("invalid:"):
            action = "quarantine (row check)"
        elif code.startswith("validation:"):
            action = "quarantine (expectation)"
        elif code.startswith("review:"):
            action = "quarantine (review decision)"
        else:
            owner = next((name for name in by_det if code in _codes_of(name)), None)
            action = by_det[owner].action if owner is not None else "quarantine"
        inq = q.code_counts.get(code, 0)
        rows.append([f'<span class="mono wrap">{esc(code)}</span>', esc(action), _n(n), _n(inq),
                     _pct(inq, quarantined)])
    table = _table(
        [("reason code", ""), ("action", ""), ("rows flagged", "num"), ("in quarantine", "num"),
         ("share of quarantine", "num")],
        rows,
    )
    return (f'<section id="reasons"><h2>Reasons</h2><div class="panel">{table}'
            '<p class="note">A row can carry several reasons, so the counts add up to more than the quarantined '
            "total. Rows flagged by a report-only detector are counted but stay clean.</p></div></section>")


def _class_rows(p: RunRecord) -> list[tuple[str, int, int]]:
    rows, held = p.counts.class_rows, p.counts.class_quarantined
    return [(str(c), rows.get(c, 0), held.get(c, 0))
            for c in charts.sort_labels(set(rows) | set(held))]


def _plots_section(p: RunRecord, q: QuarantineData, colours: dict[str, str]) -> str:
    parts = ['<section id="plots"><h2>Plots</h2>']
    figures = []
    fitted = p.detectors
    for i, name in enumerate(q.detectors):
        s = q.scores[name]
        flagged, other = s.arrays()
        thr = _num_or_none((fitted.get(name) or {}).get("threshold"))
        counted = p.counts.by_detector.get(name)
        if counted is not None and counted.histogram is not None:  # every row, merged in the pipeline
            every = sorted(s.thresholds) or ([thr] if thr is not None else [])
            figures.append(distribution.panel(name, counted.histogram, every, colours[name]))
        head = f'<h3>Quarantined rows: <span class="mono">{esc(name)}</span></h3>'
        if flagged.size + other.size == 0:
            why = (fitted.get(name) or {}).get("reason")
            msg = "no quarantined row has a score from this detector" + (f" (skipped: {why})" if why else "")
            figures.append(f'<div class="panel">{head}<p class="note">{esc(msg)}</p></div>')
            continue
        thresholds = sorted(s.thresholds)
        if thr is not None and not thresholds:
            thresholds = [thr]
        svg = charts.histogram(name, flagged, other, thresholds, colours[name])
        legend = (f'<div class="legend"><span><i style="background:{colours[name]}"></i>flagged by {esc(name)}</span>'
                  f'<span><i style="background:{charts.OTHER_COLOUR}"></i>quarantined for other reasons</span>'
                  f'<span><i style="background:{charts.THRESHOLD_COLOUR}"></i>threshold</span></div>')
        note = ("Quarantined rows only, to compare the reasons they were held for; the 'All rows' chart "
                "above counts every scored row.")
        if s.not_scored:
            note += f" {s.not_scored:,} quarantined rows have no score (failed a row check or not scored)."
        if len(thresholds) > 1:
            note += f" The threshold differs per class ({len(thresholds)} values; the band spans them)."
        figures.append(f'<div class="panel">{head}{legend}{svg}<p class="note">{esc(note)}</p></div>')

    if q.flip_pairs:
        svg, left_out = charts.label_matrix(dict(q.flip_pairs))
        note = (f"Rows flagged by {' or '.join(q.flip_detectors)}: the label they were given (rows) against the label "
                "the detector suggests (columns), from each row's evidence.")
        if left_out:
            note += f" {left_out} less frequent classes are left out."
        figures.append(f'<div class="panel"><h3>Label flips: given vs suggested</h3>{svg}'
                       f'<p class="note">{esc(note)}</p></div>')

    classes = _class_rows(p)
    if classes and any(qn for _, _, qn in classes):
        shown = classes
        note = "Share of each class's rows that were quarantined (all reasons)."
        if len(classes) > MAX_CLASS_BARS:
            shown = sorted(classes, key=lambda c: -(c[2] / c[1] if c[1] else 0))[:MAX_CLASS_BARS]
            note += f" The {MAX_CLASS_BARS} classes with the highest share of {len(classes):,} are shown."
        figures.append(f'<div class="panel"><h3>Quarantine share per class</h3>{charts.class_share_bars(shown)}'
                       f'<p class="note">{esc(note)}</p></div>')
    if not figures:
        return ""
    parts.append('<div class="grid2">' + "".join(figures) + "</div></section>")
    return "".join(parts)


def _class_section(p: RunRecord) -> str:
    classes = _class_rows(p)
    if not classes:
        return ""
    note = ""
    if len(classes) > MAX_CLASS_TABLE:
        note = (f'<p class="note">{len(classes):,} classes; the {MAX_CLASS_TABLE} with the most quarantined rows '
                "are listed (all are in provenance.json, counts.by_class).</p>")
        classes = sorted(classes, key=lambda c: (-c[2], c[0]))[:MAX_CLASS_TABLE]
    rows = [[f'<span class="wrap">{esc(c)}</span>', _n(n), _n(qn), _pct(qn, n)] for c, n, qn in classes]
    table = _table([("class", ""), ("rows", "num"), ("quarantined", "num"), ("share", "num")], rows, "small narrow")
    if len(classes) > OPEN_CLASS_TABLE:
        table = f"<details><summary>Show all {len(classes):,} classes</summary>{table}</details>"
    return f'<section id="classes"><h2>Classes</h2><div class="panel">{table}{note}</div></section>'


def _footer(p: RunRecord) -> str:
    text = ", ".join(f"{k} {v}" for k, v in p.versions.items())
    total = p.timings.total_s
    sample = p.sample.get("rows")
    bits = [f"Generated from provenance.json and the quarantine shards of run {p.run_id or '?'}."]
    if sample is not None:
        bits.append(f"Detectors fitted on a sample of {sample:,} rows." if isinstance(sample, int) else "")
    if total is not None:
        bits.append(f"Run took {total} s.")
    return f'<footer><p>{esc(" ".join(b for b in bits if b))}</p><p class="mono wrap">{esc(text)}</p></footer>'


# --------------------------------------------------------------------------- page


def build_html(out_dir: str, provenance: RunRecord | dict, q: QuarantineData, limit: int) -> str:
    provenance = RunRecord.coerce(provenance)
    nonce = secrets.token_urlsafe(18)
    colours = {d: charts.colour_for(d, i) for i, d in enumerate(q.detectors)}
    for d in provenance.detectors:
        colours.setdefault(d, charts.colour_for(d, len(colours)))
    table_data = {
        "detectors": q.detectors,
        "colours": colours,
        "thumb": ({"side": q.thumbs.shown_side, "column": q.thumbs.column}
                  if q.thumbs is not None and q.thumbs.rows_with_thumbnail else None),
        "total": q.total_rows,
        "review": {"run_id": provenance.run_id, "out": out_dir.rstrip("/")},
        "references": q.references,  # the rows the evidence names: label, thumbnail or feature values
        "features": q.features,  # tabular view: feature names and typical ranges (None with thumbnails)
        "media": q.media,  # image thumbnails and text snippets, each stored once (sanitizer.report.media)
        "rows": [
            {
                "id": r["id"],
                "label": r["label"],
                "codes": r["codes"],
                "scores": [_num_or_none(r["scores"].get(d)) for d in q.detectors],
                "flagged_by": r["flagged_by"],
                "evidence": r["evidence"],
                "sha": r.get("sha"),
                "row_check": bool(r.get("row_check")),
                "refs": r.get("refs") or [],
                **{k: r[k] for k in ("px", "feat", "v", "more", "mv", "first", "odd", "im", "imx", "tx", "hl", "hw")
                   if k in r},
            }
            for r in q.rows
        ],
    }
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    title = f"Quarantine report · {provenance.run_id}"
    drift_html = drift_section(provenance)  # empty without a baseline
    body = [
        _header(provenance, out_dir),
        NAV.replace('<a href="#columns">', DRIFT_LINK + '<a href="#columns">', 1) if drift_html else NAV,
        '<div id="js-errors" hidden></div>',
        f'<script nonce="{nonce}">{ERROR_JS}</script>',
        "<main>",
        _summary(provenance, q),
        drift_html,
        inputs_section(provenance),
        columns_section(provenance),
        _detector_section(provenance, q),
        _reason_section(provenance, q),
        _plots_section(provenance, q, colours),
        _class_section(provenance),
        suspects_section(provenance, q, out_dir),
        _footer(provenance),
        "</main>",
        f'<script type="application/json" id="report-data">{script_json(table_data)}</script>',
        f'<script nonce="{nonce}">{REVIEW_JS}</script>',
        f'<script nonce="{nonce}">{TABLE_JS}</script>',
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(title)}</title><style>{CSS}{REVIEW_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )

