"""The run-level guard: a run that would hold too much of its data publishes nothing.

A sanitizer that removes half of a clean data set is worse than none, so before the manifest
is written the run compares what it quarantined with ``guard.max_quarantine_share`` (of all
rows whose label is present; default 10%) and ``guard.max_class_quarantine_share`` (of any class
with at least ``MIN_CLASS_ROWS`` rows; default 30%). Rows without a label are left out of both
shares: they are always held (nothing can train on them) and are not a detector's judgement.

When either share is exceeded the run writes provenance and the report (in red, naming the
detectors and classes responsible) but no manifest, and exits with status 3.
"""

from __future__ import annotations

from typing import Any

from sanitizer.errors import SanitizerError

MIN_CLASS_ROWS = 20
"""Smaller classes are not judged on their own: one held row of five is 20%, and says little."""
NULL_CLASS = "<null>"  # how the run's counts name rows without a label (sanitizer.beam.score)
EXIT_STATUS = 3


class GuardError(SanitizerError):
    """The run would have quarantined more than the guard allows; nothing was published."""

    exit_status = EXIT_STATUS


def _detector(code: str) -> str:
    head = code.split(":", 1)[0]
    return "row checks" if head in ("invalid", "validation", "expectation") else head


def verdict(guard, counts) -> dict[str, Any]:
    """The guard's reading of a run's counts (a ``record.Counts``): shares, limits, what tripped."""
    unlabelled_rows = counts.class_rows.get(NULL_CLASS, 0)
    unlabelled_held = counts.class_quarantined.get(NULL_CLASS, 0)
    rows = counts.rows_in - unlabelled_rows
    held = counts.quarantined - unlabelled_held
    share = held / rows if rows else 0.0
    classes = []
    for name, n in sorted(counts.class_rows.items()):
        if name == NULL_CLASS or n < MIN_CLASS_ROWS:
            continue
        q = counts.class_quarantined.get(name, 0)
        if q / n > guard.max_class_quarantine_share:
            classes.append({"class": name, "rows": n, "quarantined": q, "share": round(q / n, 6)})
    by_detector: dict[str, int] = {}
    for code, n in counts.by_reason.items():
        if code.startswith("missing:"):
            continue  # reported, kept clean
        name = _detector(code)
        by_detector[name] = by_detector.get(name, 0) + n
    over = share > guard.max_quarantine_share
    return {
        "tripped": bool(over or classes),
        "rows": rows,
        "quarantined": held,
        "share": round(share, 6),
        "max_quarantine_share": guard.max_quarantine_share,
        "max_class_quarantine_share": guard.max_class_quarantine_share,
        "classes_over": classes,
        "by_detector": dict(sorted(by_detector.items(), key=lambda kv: -kv[1])),
    }


def percent(share: float) -> str:
    """0.1 -> '10%', 0.001 -> '0.1%': a limit printed as it was set."""
    return f"{share * 100:.4g}%"


def error(reading: dict[str, Any], out: str) -> GuardError:
    """The one-line message for a tripped guard: what, who, and the ways out."""
    parts = []
    if reading["share"] > reading["max_quarantine_share"]:
        parts.append(f"{reading['quarantined']:,} of {reading['rows']:,} labelled rows ({reading['share']:.1%}), "
                     f"more than guard.max_quarantine_share {percent(reading['max_quarantine_share'])}")
    if reading["classes_over"]:
        named = ", ".join(f"{c['class']!r} {c['quarantined']:,} of {c['rows']:,} ({c['share']:.0%})"
                          for c in reading["classes_over"][:5])
        parts.append(f"more than guard.max_class_quarantine_share {percent(reading['max_class_quarantine_share'])} "
                     f"of class {named}")
    detectors = ", ".join(f"{name} {n:,}" for name, n in list(reading["by_detector"].items())[:5])
    return GuardError(
        f"the run would quarantine {'; and '.join(parts)}, so nothing was published (no manifest; exit 3). "
        f"Held by: {detectors}. Review {out}/report.html; if these rows really are bad, raise the limits "
        "(--max-quarantine-share, --max-class-quarantine-share, or guard: in the config), or set a detector "
        "to report only (policy: {DETECTOR: report})"
    )
