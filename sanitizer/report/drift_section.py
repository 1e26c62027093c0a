"""The report's drift section: how far the new data moved from the trusted baseline the run was given.

Read from provenance's ``drift`` (every statistic of every compared column with its threshold, the alarms and
the verdict; :mod:`sanitizer.beam.drift`) and ``baseline`` (where the baseline came from). The section shows,
in this order:

* the verdict (``ok``, ``warning``: published and recorded, ``critical``: nothing published) with the
  baseline's path, run id and row counts;
* one table row per column and statistic (value, threshold, alarm, severity), alarmed rows first;
* for each drifted column, the baseline and the new data drawn over each other
  (:mod:`sanitizer.report.drift_charts`);
* the columns that were not compared, with why.

A run without a baseline has no section. Every value from the data or the provenance goes through
:func:`esc` (see sanitizer.report.page).
"""

from __future__ import annotations

from typing import Any

from sanitizer.report import drift_charts
from sanitizer.report.charts import count as _n
from sanitizer.report.charts import esc, fmt
from sanitizer.runs.record import RunRecord

NAV_LINK = '<a href="#drift">Drift</a>'
MAX_CHARTS = 24  # drifted columns drawn; every score stays in the table
FOLD_ROWS = 40  # a longer table of scores starts folded below its alarmed rows
VERDICT_BADGES = {"ok": "ok", "warning": "skip", "critical": "fail"}
STATISTICS = {
    "js_distance": "Jensen-Shannon distance on the baseline's quantile bins",
    "wasserstein": "Wasserstein distance in baseline standard deviations",
    "linf": "largest change of one level's share",
    "class_shares": "largest change of one class's share",
    "new_categories": "share of new rows holding a level the baseline never had",
    "missing_rate": "change of the share of missing values",
    "vector_js": "Jensen-Shannon distance of the representation vectors",
}


def _number(value: Any) -> str:
    return fmt(float(value)) if isinstance(value, int | float) and not isinstance(value, bool) else "–"


def _verdict(drift: dict, baseline: dict) -> str:
    verdict = str(drift.get("verdict") or "ok")
    source = baseline.get("path") or drift.get("baseline") or "?"
    run = (f" (run <b class=\"mono\">{esc(baseline['run_id'])}</b>, manifest sha256 "
           f"<span class=\"mono\">{esc(str(baseline.get('manifest_sha256') or '?')[:12])}…</span>)"
           if baseline.get("run_id") else "")
    columns = drift.get("columns") or {}
    alarmed = sum(1 for c in columns.values() if c.get("alarm"))
    line = (f'<p class="note" id="drift-verdict" data-verdict="{esc(verdict)}">'
            f'<span class="badge {VERDICT_BADGES.get(verdict, "neutral")}">drift: {esc(verdict)}</span> '
            f"against the baseline <b class=\"wrap\">{esc(source)}</b>{run}: "
            f"{_n(drift.get('new_rows', 0))} new rows compared with {_n(drift.get('baseline_rows', 0))} baseline "
            f"rows; {_n(alarmed)} of {_n(len(columns))} columns drifted "
            f"({_n(len(drift.get('alarms') or []))} statistics over their threshold; "
            f"{_n(drift.get('tests', 0))} tests sharing a false-alarm rate of {_number(drift.get('alpha'))}).</p>")
    if verdict == "critical":
        named = ", ".join(sorted({f"<code>{esc(a.get('column'))}</code>" for a in drift.get("alarms") or []
                                  if a.get("severity") == "critical"}))
        line += ('<div class="callout bad" id="drift-critical"><span class="badge fail">nothing published</span> '
                 f"The new data drifted from the baseline on a column marked critical ({named}), so no manifest was "
                 "written. If the change is expected, set <code>baseline.drift.columns.COLUMN.severity: "
                 "warning</code> (or take this data as the new baseline) and run again.</div>")
    elif verdict == "warning":
        line += ('<div class="callout" id="drift-warning">The new data drifted from the baseline; the run published '
                 "anyway, as these columns' severity is <code>warning</code>. Check the columns below before "
                 "training on it.</div>")
    return line


def _score_rows(columns: dict) -> list[tuple[bool, str]]:
    """(alarmed, row markup) per column and statistic: alarmed rows first, then in column order."""
    rows = []
    for name, column in columns.items():
        for statistic, entry in (column.get("statistics") or {}).items():
            alarm = bool(entry.get("alarm"))
            badge = (f'<span class="badge {"fail" if column.get("severity") == "critical" else "skip"}">alarm</span>'
                     if alarm else "")
            rows.append((alarm, (
                f'<tr data-alarm="{int(alarm)}" data-column="{esc(name)}" data-statistic="{esc(statistic)}">'
                f'<td><code class="wrap">{esc(name)}</code></td><td>{esc(column.get("kind", ""))}</td>'
                f'<td><span title="{esc(STATISTICS.get(statistic, statistic))}">{esc(statistic)}</span></td>'
                f'<td class="num">{_number(entry.get("value"))}</td>'
                f'<td class="num">{_number(entry.get("threshold"))}</td><td>{badge}</td>'
                f'<td>{esc(column.get("severity", ""))}</td></tr>')))
    return sorted(rows, key=lambda r: not r[0])  # stable: column order within each group


def _table(columns: dict) -> str:
    rows = _score_rows(columns)
    head = ('<thead><tr><th>column</th><th>kind</th><th>statistic</th><th class="num">value</th>'
            '<th class="num">threshold</th><th>alarm</th><th>severity</th></tr></thead>')
    alarmed = [markup for alarm, markup in rows if alarm]
    quiet = [markup for alarm, markup in rows if not alarm]
    if len(rows) <= FOLD_ROWS:
        return f'<table class="small" id="drift-scores">{head}<tbody>{"".join(alarmed + quiet)}</tbody></table>'
    return (f'<table class="small" id="drift-scores">{head}<tbody>{"".join(alarmed)}</tbody></table>'
            f'<details><summary>Show the {_n(len(quiet))} scores under their threshold</summary>'
            f'<table class="small" id="drift-scores-quiet">{head}<tbody>{"".join(quiet)}</tbody></table></details>')


def _figure(name: str, column: dict) -> str:
    alarms = "; ".join(f"{stat} {_number(e.get('value'))} over {_number(e.get('threshold'))}"
                       for stat, e in (column.get("statistics") or {}).items() if e.get("alarm"))
    head = f'<h3>Drifted: <span class="mono">{esc(name)}</span> ({esc(column.get("kind", ""))})</h3>'
    if isinstance(column.get("histogram"), dict):
        chart = drift_charts.overlaid_histogram(name, str(column.get("kind")), column["histogram"])
        note = (f"{alarms}. Each side's sampled values (at most a few thousand rows each) on the baseline's "
                "quantile bins; the outer bins reach the smallest and largest value seen.")
    elif isinstance(column.get("shares"), dict):
        chart = drift_charts.share_bars(name, column["shares"])
        note = f"{alarms}. The levels whose share moved most; the rest are summed as (other)."
    else:
        chart, note = "", f"{alarms}."
    return f'<div class="panel" data-drift-chart="{esc(name)}">{head}{drift_charts.legend()}{chart}' \
           f'<p class="note">{esc(note)}</p></div>'


def drift_section(p: RunRecord) -> str:
    """The drift section, or nothing when the run had no baseline (or recorded no comparison)."""
    drift, baseline = p.extra.get("drift"), p.extra.get("baseline")
    if not isinstance(drift, dict):
        return ""
    baseline = baseline if isinstance(baseline, dict) else {}
    columns = {k: v for k, v in (drift.get("columns") or {}).items() if isinstance(v, dict)}
    drifted = [name for name, c in columns.items() if c.get("alarm")]
    parts = [f'<section id="drift"><h2>Drift from the baseline</h2>{_verdict(drift, baseline)}',
             f'<div class="panel">{_table(columns)}<p class="note">Each threshold is the larger of what two '
             "samples of these sizes from one distribution exceed by chance and the smallest change that counts; "
             "every score is in provenance.json under drift.</p></div>"]
    if drifted:
        more = (f'<p class="note">{_n(len(drifted) - MAX_CHARTS)} more drifted columns are in the table.</p>'
                if len(drifted) > MAX_CHARTS else "")
        parts.append('<div class="grid2" id="drift-charts">'
                     + "".join(_figure(name, columns[name]) for name in drifted[:MAX_CHARTS]) + f"</div>{more}")
    skipped = drift.get("not_compared") or {}
    if skipped:
        items = "; ".join(f"<code>{esc(k)}</code>: {esc(v)}" for k, v in skipped.items())
        parts.append(f'<p class="note" id="drift-not-compared">Not compared: {items}.</p>')
    parts.append("</section>")
    return "".join(parts)
