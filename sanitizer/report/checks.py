"""The report's lines for failed data-set checks, each with its Great Expectations severity.

These lines are where a run's data-set check results are read (sanitize writes no Great Expectations
Data Docs, whose renderer does not escape data values): every value and name is escaped here."""

from __future__ import annotations

from sanitizer.report.charts import esc


def failed_check_notes(checks: list, limit: int = 10) -> list[str]:
    """One badge line per failed check: critical ones that withheld publication in red, others 'published anyway'."""
    out = []
    for c in [c for c in checks if isinstance(c, dict) and not c.get("success")][:limit]:
        badge = "fail" if c.get("blocking") else "skip"
        out.append(f'<span class="badge {badge}">{esc(c.get("severity") or "critical")}</span> '
                   f'{esc(c.get("expectation"))}({esc(c.get("column") or "table")}) on {esc(c.get("on"))}: '
                   f'observed {esc(c.get("observed"))}{_unexpected(c)}'
                   f'{"" if c.get("blocking") else ", published anyway"}')
    return out


def _unexpected(check: dict) -> str:
    """'; unexpected values: ...' from a check's sampled unexpected values, escaped (or nothing)."""
    values = check.get("unexpected")
    if not isinstance(values, list) or not values:
        return ""
    return "; unexpected values: " + ", ".join(f"<code>{esc(v)}</code>" for v in values)
