"""How the report shows a ``backdoor`` flag: its colour, its evidence in words, and the rows the evidence names."""

from __future__ import annotations

from sanitizer.detectors.shared.evidence_text import number, reference_rows

COLOUR = "#138d75"
NEIGHBOUR_KEYS = ("neighbours",)  # [{id, label}]: rows that match outside the trigger
FEATURE_KEYS = ("pattern",)  # [{feature, value, typical}]: the trigger


def describe(ev: dict) -> list[str]:
    """The vote that contradicts the label, the trigger pattern, the group, the neighbours outside the trigger."""
    lines = [f"labelled {ev.get('given_label')}, but rows that match it outside the trigger say "
             f"{ev.get('suggested_label')} (vote margin {number(ev.get('vote_margin'))}, "
             f"{number(ev.get('group_in_sample'))} carriers in the sample)"]
    pattern = ev.get("pattern")
    if isinstance(pattern, list) and pattern:
        parts = [f"{p.get('feature')} = {number(p.get('value'))} (typical {number(p.get('typical'))})"
                 for p in pattern[:8] if isinstance(p, dict)]
        lines.append(f"trigger ({ev.get('trigger')}): " + ", ".join(parts))
    if ev.get("group"):
        lines.append(str(ev["group"]))
    if ev.get("neighbours"):
        lines.append(f"neighbours outside the trigger: {reference_rows(ev['neighbours'])}")
    return lines
