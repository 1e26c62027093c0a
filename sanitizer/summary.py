"""The few lines a finished run prints: counts, reasons, skipped detectors and where everything is."""

from __future__ import annotations

from typing import Any


def summary_lines(provenance: dict[str, Any], output: str) -> list[str]:
    counts = provenance.get("counts", {})
    lines = [
        f"run {provenance['run_id']} on {provenance['runner']}",
        f"  rows in:      {counts.get('rows_in', 0):>10,}",
        f"  clean:        {counts.get('clean', 0):>10,}",
        f"  quarantined:  {counts.get('quarantined', 0):>10,}",
    ]
    for reason, n in sorted(counts.get("by_reason", {}).items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"    {reason:<40} {n:>8,}")
    review = provenance.get("decisions")
    if review:
        applied = review.get("applied", {})
        lines.append(
            f"  review decisions: {applied.get('released_kept_clean', 0):,} released kept clean "
            f"({applied.get('released_overridden', 0):,} flagged again, overridden), "
            f"{applied.get('confirmed_held', 0):,} confirmed held, {applied.get('stale', 0):,} stale (made for "
            f"other content, not applied)   [{review['path']}]"
        )
    for name, info in provenance.get("detectors", {}).items():
        if info.get("status") == "skipped":
            lines.append(f"  detector {name} skipped: {info.get('reason')}")
    lines += [
        f"  outputs:      {output.rstrip('/')}/clean/  {output.rstrip('/')}/quarantine/",
        f"  manifest:     {output.rstrip('/')}/manifest.json   provenance: {output.rstrip('/')}/provenance.json",
        f"  review:       {output.rstrip('/')}/report.html   (or: sanitize review {output.rstrip('/')} list)",
    ]
    from sanitizer.review_cli import printable  # reason codes and detector notes carry data (column names)

    return [printable(line) for line in lines]
