"""The HTML quarantine report: ``OUT/report.html``, one self-contained page for reviewers.

    from sanitizer.report import write_report
    path = write_report(out_dir, provenance)   # after provenance.json is written

The page reads its numbers from the run record (:class:`sanitizer.runs.record.RunRecord`, or
the provenance dict it is written as) and its rows from
``OUT/quarantine/*.parquet``: a summary, per-detector / per-reason / per-class
tables, score histograms with the thresholds marked, the label-flip matrix,
the quarantine share per class and a sortable, filterable table of the suspects
(with thumbnails when a feature column is a square image; an image column's thumbnails and a text
column's snippets, made from the values as stored, beside each suspect's neighbours:
:mod:`sanitizer.report.media`). It opens from disk
and fetches nothing: its stylesheets and scripts are files in ``static/`` (package data, see
:mod:`sanitizer.report.assets`), inlined into the page. Regenerate it for an existing run with
``python -m sanitizer.report OUT``.
"""

from __future__ import annotations


from sanitizer.data.layout import REPORT
from sanitizer.runs.record import RunRecord
from sanitizer.report.data import load_quarantine
from sanitizer.report.page import build_html
from sanitizer.io.fs import write_bytes_atomic
MAX_ROWS = 5000

__all__ = ["MAX_ROWS", "REPORT", "render_report", "write_report"]


def render_report(out_dir: str, provenance: RunRecord | dict, max_rows: int = MAX_ROWS) -> str:
    """The report page as a string (see :func:`write_report`)."""
    provenance = RunRecord.coerce(provenance)
    data = load_quarantine(out_dir, provenance, max(int(max_rows), 1))
    return build_html(out_dir, provenance, data, max_rows)


def write_report(out_dir: str, provenance: RunRecord | dict, max_rows: int = MAX_ROWS) -> str:
    """Write ``out_dir/report.html`` for a finished run and return its path.

    ``provenance`` is the run's record, or the dict ``sanitizer.beam.job.run`` returns
    (the content of provenance.json). At most ``max_rows`` quarantined rows are listed in the
    suspects table (the page says how many more there are and where they are);
    every count and plot covers all of them.
    """
    html = render_report(out_dir, provenance, max_rows).encode("utf-8")
    path = f"{out_dir.rstrip('/')}/{REPORT}"
    write_bytes_atomic(path, html)
    return path
