"""The suspects section of report.html: notes, the review bar, the filters and the table's head.

The rows themselves are drawn by the page's scripts (``assets.TABLE_JS``, with the decision cells of
``review_assets.REVIEW_JS``) from the JSON the page embeds; everything from the data is escaped here.
"""

from __future__ import annotations

from sanitizer.runs.record import RunRecord
from sanitizer.report import charts
from sanitizer.report.charts import count as _n
from sanitizer.report.charts import esc
from sanitizer.report.data import QuarantineData
from sanitizer.report.snippets import SNIPPET_CHARS

REVIEW_BAR = (
    '<div class="review-bar" id="review-bar" role="group" aria-label="Review decisions">'
    '<label>reviewer <input type="text" id="reviewer" autocomplete="name" placeholder="your name"></label>'
    '<input type="text" id="decision-reason" aria-label="Reason for the next decisions" '
    'placeholder="reason for the next decisions (optional)">'
    '<span class="tally" id="review-tally" aria-live="polite"></span>'
    '<button type="button" id="bulk-release">Release all filtered</button>'
    '<button type="button" id="bulk-confirm">Confirm all filtered</button>'
    '<button type="button" id="download-decisions" disabled>Download decisions</button>'
    '<button type="button" id="clear-decisions" disabled>Clear decisions</button>'
    '<span class="keys"><kbd>j</kbd>/<kbd>k</kbd> next/previous · <kbd>r</kbd> release · <kbd>c</kbd> confirm · '
    '<kbd>u</kbd> undo · <kbd>/</kbd> filter · <kbd>Esc</kbd> leaves a text box</span>'
    '<span class="note" id="review-status" aria-live="polite"></span>'
    "</div>"
)
REVIEW_NOTE = (
    "Decide here: <b>Release</b> a false alarm (it joins the clean set when published), <b>Confirm</b> a real "
    "problem (it stays quarantined in later runs too). Decisions are kept in this browser for this run and "
    "bound to each row's content hash; <b>Download decisions</b> saves them as a file for "
    '<span class="mono">sanitize review {out} import FILE</span>, then '
    '<span class="mono">sanitize publish {out}</span>. A row that failed a row check cannot be released.'
)


def suspects_section(p: RunRecord, q: QuarantineData, out_dir: str) -> str:
    """The suspects table's section: notes, review bar, filters; its rows are drawn by the page's script."""
    head = '<section id="suspects-section"><h2>Suspects</h2>'
    if q.total_rows == 0:
        rows_in = p.counts.rows_in
        return (head + f'<div class="empty" id="nothing-quarantined">Nothing quarantined: all {_n(rows_in)} rows '
                "passed every check and every detector.</div></section>")
    notes = []
    if q.total_rows > len(q.rows):
        more = q.total_rows - len(q.rows)
        notes.append(
            f'<div class="callout" id="cap-note">Showing {_n(len(q.rows))} of {_n(q.total_rows)} quarantined rows '
            f"(those with the most reasons, then the highest score relative to its threshold); {_n(more)} more "
            f"are not listed here. Every quarantined row, with all its columns and reasons, is in "
            f'<span class="mono">{esc(out_dir.rstrip("/"))}/quarantine/*.parquet</span>.</div>'
        )
    t = q.thumbs
    if t is not None and t.rows_with_thumbnail:
        size = f"{t.side}x{t.side}" + (f", shown at {t.shown_side}x{t.shown_side}" if t.shown_side != t.side else "")
        notes.append(f'<p class="note">Thumbnails: feature column <span class="mono">{esc(t.column)}</span> as a '
                     f"{esc(size)} grayscale image, one brightness scale for all rows "
                     f"({esc(charts.fmt(t.lo))} black to {esc(charts.fmt(t.hi))} white).</p>")
    notes += media_notes(q.media)
    notes.append('<p class="note">Click a column header to sort; scores in bold are the ones past the detector\'s '
                 "threshold. The text box searches ids, labels, reason codes and evidence.</p>")
    codes = sorted(q.code_counts, key=lambda c: (-q.code_counts[c], c))
    options = '<option value="">all reasons</option>' + "".join(
        f'<option value="{esc(c)}">{esc(c)} ({q.code_counts[c]:,})</option>' for c in codes
    )
    controls = (
        '<div class="controls">'
        '<input type="search" id="filter-text" placeholder="Filter: id, label, reason, evidence…" '
        'aria-label="Filter the suspects">'
        f'<select id="filter-reason" aria-label="Reason">{options}</select>'
        '<select id="filter-decision" aria-label="Decision"><option value="">all decisions</option>'
        '<option value="undecided">undecided</option><option value="release">released</option>'
        '<option value="confirm">confirmed</option></select>'
        '<span class="spacer"></span><span class="note" id="table-status"></span>'
        '<select id="page-size" aria-label="Rows per page"><option value="50">50 / page</option>'
        '<option value="100" selected>100 / page</option><option value="250">250 / page</option>'
        '<option value="1000">1000 / page</option></select>'
        '<button type="button" id="page-prev">‹ prev</button><button type="button" id="page-next">next ›</button>'
        "</div>"
    )
    ths = ['<th class="num">#</th>',
           f'<th class="sortable" data-key="id" tabindex="0">{esc(q.id_column)}<span class="arrow"></span></th>',
           f'<th class="sortable" data-key="label" tabindex="0">{esc(q.label_column)}<span class="arrow"></span></th>']
    if t is not None and t.rows_with_thumbnail:
        ths.append(f"<th>{esc(t.column)}</th>")
    m = q.media or {}
    ths += [f"<th>{esc(m[kind])}</th>" for kind in ("image", "text") if m.get(kind)]
    ths.append("<th>decision</th>")
    ths.append('<th class="sortable" data-key="codes" tabindex="0">reasons<span class="arrow"></span></th>')
    for d in q.detectors:
        ths.append(f'<th class="sortable num" data-key="score:{esc(d)}" tabindex="0">{esc(d)}'
                   '<span class="arrow"></span></th>')
    ths.append("<th>evidence</th>")
    table = (f'<div class="panel">{REVIEW_BAR}{controls}<table id="suspects"><thead><tr>{"".join(ths)}</tr></thead>'
             '<tbody id="suspects-body"></tbody></table>'
             '<noscript><p class="note">The suspects table needs JavaScript; the rows are in '
             "quarantine/*.parquet.</p></noscript></div>")
    notes.append(f'<p class="note">{REVIEW_NOTE.format(out=esc(out_dir.rstrip("/")))}</p>')
    return head + "".join(notes) + table + "</section>"


def media_notes(media: dict | None) -> list[str]:
    """What the image thumbnails and text snippets show (:mod:`sanitizer.report.media`)."""
    notes = []
    if media and media.get("image"):
        notes.append(f'<p class="note" id="image-note">Images: column <span class="mono">{esc(media["image"])}</span>'
                     f", each suspect's and each named neighbour's as stored, at most {int(media.get('side') or 0)} "
                     "pixels a side with its proportions kept; an image that could not be read says why.</p>")
    if media and media.get("text"):
        notes.append(f'<p class="note" id="text-note">Texts: column <span class="mono">{esc(media["text"])}</span>, '
                     f"the first {SNIPPET_CHARS} characters (or those around the first marked word; the whole text "
                     'in its tooltip and under "full text"). Marked: <mark class="trig">a trigger</mark> the '
                     'evidence names, and <mark class="rare">words rare among the texts on this page</mark> '
                     "(the suspects' and their neighbours').</p>")
    return notes
