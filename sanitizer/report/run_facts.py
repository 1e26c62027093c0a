"""Report sections about the run as a whole: the run-level guard's verdict, the input files read and
skipped, and the columns judged.

Every value from the data or the provenance goes through :func:`esc` (see sanitizer.report.page).
"""

from __future__ import annotations

from sanitizer.runs.guard import percent
from sanitizer.data.column_kinds import group_by_kind
from sanitizer.runs.record import RunRecord
from sanitizer.report.charts import count as _n
from sanitizer.report.charts import esc

REASONS = {
    "id-like": "looks like a record id or row counter",
    "text": "text",
    "date": "date or time",
    "empty": "no values",
    "unsupported-type": "a type the detectors do not read",
    "inexact-integer": "integers float64 cannot hold exactly",
    "not-selected": "not named in --feature-columns",
}
MAX_LEVEL_CHARS = 40  # a vocabulary level longer than this is cut short, whole in its tooltip


def guard_callout(p: RunRecord) -> str:
    """A red callout when the run-level guard stopped publication: how much, which classes, held by whom,
    and the ways out. Empty when the guard passed or was not recorded."""
    g = p.guard or {}
    if not g.get("tripped"):
        return ""
    parts = []
    if float(g.get("share", 0)) > float(g.get("max_quarantine_share", 1)):
        parts.append(f"{_n(g.get('quarantined', 0))} of {_n(g.get('rows', 0))} labelled rows "
                     f"({float(g.get('share', 0)):.1%}), over the limit of {percent(g['max_quarantine_share'])}")
    classes = g.get("classes_over") or []
    if classes:
        named = ", ".join(f"<b>{esc(repr(c.get('class')))}</b> {_n(c.get('quarantined', 0))} of "
                          f"{_n(c.get('rows', 0))} ({float(c.get('share', 0)):.1%})" for c in classes[:10])
        more = f" and {len(classes) - 10} more" if len(classes) > 10 else ""
        parts.append(f"over {percent(g.get('max_class_quarantine_share', 1))} of class {named}{more}")
    held = ", ".join(f"<b>{esc(name)}</b> {_n(n)}" for name, n in (g.get("by_detector") or {}).items())
    return (
        '<div class="callout bad" id="guard">'
        '<span class="badge fail">nothing published</span> '
        f"The run would have quarantined {'; and '.join(parts)}. "  # numbers, and class names escaped above
        f"Held by: {held or 'none recorded'}. No manifest was written (exit status 3). "
        "Review the suspects below; if they really are bad, raise the limits "
        "(<code>--max-quarantine-share</code>, <code>--max-class-quarantine-share</code> or "
        "<code>guard:</code> in the config), or set the detector responsible to report only "
        "(<code>policy: {DETECTOR: report}</code>) and run again.</div>"
    )


def columns_section(p: RunRecord) -> str:
    """Which columns the detectors judged (features), which they did not and why, and the id and label."""
    c = p.columns
    if not (c.features or c.ignored):
        return ""
    if c.id_generated:
        id_text = "generated (<code>file:row</code>)"
    elif c.id_inferred:
        id_text = f"<b>{esc(c.id)}</b> (inferred: unique and id-like; not judged)"
    else:
        id_text = f"<b>{esc(c.id)}</b>"
    if c.kinds:
        return _kinds_section(c, id_text)
    width = f" ({_n(c.feature_count)} values)" if c.feature_count and c.feature_count != len(c.features) else ""
    features = ", ".join(f"<code>{esc(name)}</code>" for name in c.features) or "none"
    rows = "".join(
        f'<tr><td><code>{esc(i.get("name", ""))}</code></td>'
        f'<td>{esc(REASONS.get(i.get("reason", ""), i.get("reason", "")))}</td>'
        f'<td>{esc(i.get("detail", ""))}</td></tr>'
        for i in c.ignored
    )
    ignored = (
        f'<table class="small" id="columns-ignored"><thead><tr><th>column</th><th>not judged: why</th>'
        f"<th>detail</th></tr></thead><tbody>{rows}</tbody></table>"
        if rows else '<p class="note">Every other column was judged.</p>'
    )
    return (
        '<section id="columns"><h2>Columns</h2>'
        f'<p class="note" id="columns-judged">Judged ({len(c.features)}){width}: {features}. '
        f"Label <b>{esc(c.label)}</b>; record id {id_text}.</p>"
        f"{ignored}</section>"
    )


def _kind_facts(k: dict) -> str:
    """A column's vocabulary (size, the most frequent levels, the other and unseen codes) or date range."""
    v, r = k.get("vocabulary"), k.get("range")
    if isinstance(v, dict):
        levels = ", ".join(f"{_level(level.get('value'))} ({_n(level.get('rows', 0))})"
                           for level in (v.get("levels") or [])[:8])
        more = " ..." if int(v.get("size", 0) or 0) > 8 else ""
        other = v.get("other") or {}
        folded = (f"; {_n(other.get('levels', 0))} rarer values share the other code {esc(other.get('code'))}"
                  if other else "")
        return (f"{_n(v.get('size', 0))} levels: {levels}{more}{folded}; unseen values get code "
                f"{esc(v.get('unseen_code'))}")
    if isinstance(r, dict):
        return f"{esc(r.get('min'))} to {esc(r.get('max'))}"
    return ""


def _level(value) -> str:
    """A level as its repr, cut to MAX_LEVEL_CHARS with the whole value in a tooltip; escaped."""
    text = repr(value)
    if len(text) <= MAX_LEVEL_CHARS:
        return esc(text)
    return f'<span title="{esc(text)}">{esc(text[:MAX_LEVEL_CHARS - 1])}…</span>'


def _kinds_section(c, id_text: str) -> str:
    """The Columns section from every column's kind: judged per kind, then one row per column."""
    judged = group_by_kind(c.kinds, True, c.id)
    summary = "; ".join(f"{esc(kind)} ({len(names)}): " + ", ".join(f"<code>{esc(n)}</code>" for n in names)
                        for kind, names in judged.items()) or "none"
    width = f" ({_n(c.feature_count)} values)" if c.feature_count and c.feature_count != len(c.features) else ""
    rows = "".join(
        f'<tr data-kind="{esc(k.get("kind", ""))}"><td><code>{esc(k.get("name", ""))}</code></td>'
        f'<td>{esc(k.get("kind", ""))}{" (declared)" if k.get("declared") else ""}</td>'
        f'<td>{"judged" if k.get("judged") else "not judged"}</td>'
        f'<td>{esc(k.get("detail", ""))}</td><td>{_kind_facts(k)}</td></tr>'
        for k in c.kinds
    )
    return (
        '<section id="columns"><h2>Columns</h2>'
        f'<p class="note" id="columns-judged">Judged{width}: {summary}. '
        f"Label <b>{esc(c.label)}</b>; record id {id_text}.</p>"
        '<table class="small" id="columns-kinds"><thead><tr><th>column</th><th>kind</th><th>judged</th>'
        f"<th>how decided / why not judged</th><th>vocabulary or range (first rows)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


MAX_SKIPPED_ROWS = 200


def inputs_section(p: RunRecord) -> str:
    """How many input files were read, and every file (or folder) under the input that was not, with why."""
    inputs, skipped = p.inputs, p.skipped_inputs
    if not (inputs or skipped):
        return ""
    size = sum(int(i.get("bytes") or 0) for i in inputs)
    read = f'<p class="note" id="inputs-read">Read {_n(len(inputs))} file(s), {_n(size)} bytes.'
    if not skipped:
        return f'<section id="inputs"><h2>Input files</h2>{read} Every file under the input was read.</p></section>'
    rows = "".join(
        f'<tr><td><code>{esc(s.get("relpath") or s.get("uri", ""))}</code></td><td>{esc(s.get("reason", ""))}</td>'
        f'<td class="num">{"" if s.get("files") is None else _n(s["files"])}</td></tr>'
        for s in skipped[:MAX_SKIPPED_ROWS]
    )
    more = (f'<p class="note">... and {_n(len(skipped) - MAX_SKIPPED_ROWS)} more in provenance.json '
            "(skipped_inputs).</p>" if len(skipped) > MAX_SKIPPED_ROWS else "")
    return (
        f'<section id="inputs"><h2>Input files</h2>{read} Not read: {_n(len(skipped))}.</p>'
        '<table class="small" id="inputs-skipped"><thead><tr><th>not read</th><th>why</th>'
        f'<th class="num">files</th></tr></thead><tbody>{rows}</tbody></table>{more}</section>'
    )
