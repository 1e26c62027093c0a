"""The few lines a finished run prints: counts, reasons, skipped detectors and where everything is."""

from __future__ import annotations

from typing import Any

from sanitizer.data.column_kinds import group_by_kind
from sanitizer.runs.record import RunRecord
from sanitizer.cli.terminal import printable


def _names(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more (provenance.json: columns)" if len(names) > limit else "")


def skipped_inputs(skipped: list[dict[str, Any]], limit: int = 8) -> str:
    """The files under the input a run did not read, with the reasons: ``_SUCCESS (a Spark/Hadoop job marker)``."""
    shown = [f"{s.get('relpath') or s.get('uri')} ({s.get('reason', '')}"
             + (f", {s['files']} file(s)" if s.get("files") is not None else "") + ")" for s in skipped[:limit]]
    more = f", ... {len(skipped) - limit} more (provenance.json: skipped_inputs)" if len(skipped) > limit else ""
    return ", ".join(shown) + more


def summary_lines(provenance: RunRecord | dict[str, Any], output: str) -> list[str]:
    record = RunRecord.coerce(provenance)
    counts = record.counts
    columns = record.columns
    lines = [
        f"run {record.run_id} on {record.runner}",
        f"  columns:      label {columns.label}, id {columns.id}"
        + (" (generated)" if columns.id_generated else " (inferred: id-like and unique)" if columns.id_inferred else ""),
    ]
    judged = group_by_kind(columns.kinds, True, columns.id)
    if judged:  # per kind: "judged: numeric 4: a, b, c, d; boolean 1: flag"
        lines.append("  judged:       " + "; ".join(f"{kind} {len(names)}: {_names(names)}"
                                                    for kind, names in judged.items()))
    else:  # provenance written before kinds existed
        lines.append(f"  judged:       {len(columns.features)} feature column(s): {_names(columns.features)}")
    if record.inputs or record.skipped_inputs:
        lines.insert(1, f"  input files:  {len(record.inputs)} read"
                     + (f"; {len(record.skipped_inputs)} not read: " + skipped_inputs(record.skipped_inputs)
                        if record.skipped_inputs else ""))
    not_judged = group_by_kind(columns.kinds, False, columns.id)
    if not_judged:  # per kind: "not judged: text 1: Comments; id-like 1: Individual ID"
        reasons = {c["name"]: c["reason"] for c in columns.ignored}
        parts = []
        for kind, names in not_judged.items():
            shown = [n if reasons.get(n) in (kind, None) else f"{n} ({reasons[n]})" for n in names]
            parts.append(f"{kind} {len(names)}: {_names(shown)}")
        lines.append("  not judged:   " + "; ".join(parts))
    elif columns.ignored:
        lines.append(f"  not judged:   {len(columns.ignored)} column(s): "
                     + _names([f"{c['name']} ({c['reason']})" for c in columns.ignored]))
    lines += [
        f"  rows in:      {counts.rows_in:>10,}",
        f"  clean:        {counts.clean:>10,}",
        f"  quarantined:  {counts.quarantined:>10,}",
    ]
    reported_only = {name for name, d in counts.by_detector.items() if d.action == "report"}
    held, reported = [], []
    for reason, n in sorted(counts.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        kept = reason.startswith("missing:") or reason.split(":", 1)[0] in reported_only
        (reported if kept else held).append(f"    {reason:<40} {n:>8,}")
    lines += held
    if reported:
        lines.append(f"  reported, kept clean: {counts.reported_kept_clean:>,} row(s)   "
                     "(report-only detectors, missing values: published with the clean rows)")
        lines += reported
    review = record.decisions
    if review:
        applied = review.get("applied", {})
        lines.append(
            f"  review decisions: {applied.get('released_kept_clean', 0):,} released kept clean "
            f"({applied.get('released_overridden', 0):,} flagged again, overridden), "
            f"{applied.get('confirmed_held', 0):,} confirmed held, {applied.get('stale', 0):,} stale (made for "
            f"other content, not applied)   [{review['path']}]"
        )
    validation = record.validation if isinstance(record.validation, dict) else {}
    for c in [c for c in validation.get("checks") or [] if not c.get("success")][:10]:
        lines.append(f"  expectation failed ({c.get('severity') or 'critical'}"
                     f"{'' if c.get('blocking') else ', not blocking'}): {c.get('expectation')}"
                     f"({c.get('column') or 'table'}) on {c.get('on')}, observed {c.get('observed')}")
    for name, reason in record.skipped_detectors().items():
        lines.append(f"  detector {name} skipped: {reason}")
    lines += [
        f"  outputs:      {output.rstrip('/')}/clean/  {output.rstrip('/')}/quarantine/",
        f"  manifest:     {output.rstrip('/')}/manifest.json   provenance: {output.rstrip('/')}/provenance.json",
        f"  review:       {output.rstrip('/')}/report.html   (or: sanitize review {output.rstrip('/')} list)",
    ]

    return [printable(line) for line in lines]
