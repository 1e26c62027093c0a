"""The report's lines for failed data-set checks, each with its Great Expectations severity."""

from __future__ import annotations

from sanitizer.report.charts import esc


def failed_check_notes(checks: list, limit: int = 10) -> list[str]:
    """One badge line per failed check: critical ones that withheld publication in red, others 'published anyway'."""
    out = []
    for c in [c for c in checks if isinstance(c, dict) and not c.get("success")][:limit]:
        badge = "fail" if c.get("blocking") else "skip"
        out.append(f'<span class="badge {badge}">{esc(c.get("severity") or "critical")}</span> '
                   f'{esc(c.get("expectation"))}({esc(c.get("column") or "table")}) on {esc(c.get("on"))}: '
                   f'observed {esc(c.get("observed"))}{"" if c.get("blocking") else ", published anyway"}')
    return out
