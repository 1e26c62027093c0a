"""How the report shows a ``duplicates`` flag: its colour and its evidence in words."""

from __future__ import annotations

from sanitizer.detectors.shared.evidence_text import number

COLOUR = "#7d3c98"


def _chance(ev: dict) -> str:
    expected = ev.get("chance_copies_expected")
    if not isinstance(expected, (int, float)):
        return ""
    if expected < 0.001:
        return " (a chance copy of this content is not expected: fewer than 0.001 in a run of this size)"
    return f" (by chance, {number(expected)} copies of this content would be expected)"


def describe(ev: dict) -> list[str]:
    """What the record copies, which copy stays, and how unlikely a chance copy is."""
    kind = ev.get("kind")
    group = ev.get("group")
    if kind == "leak":
        return [f"a copy of holdout record {ev.get('holdout_id')}: training on it leaks the evaluation set",
                f"group {group}"]
    if kind == "label_conflict":
        if ev.get("consensus_label") is not None and ev.get("consensus_label") == ev.get("given_label"):
            lines = [f"one of {ev.get('copies')} identical records whose labels disagree ({ev.get('votes')}); it "
                     "carries the majority's label, and is held with its group so the group is decided once"]
        elif ev.get("consensus_label") is None:
            lines = [f"{ev.get('copies')} identical records disagree on the label with no majority "
                     f"({ev.get('votes')}): every copy is held for review"]
        else:
            lines = [f"labelled {ev.get('given_label')}, but {ev.get('copies')} identical records say "
                     f"{ev.get('consensus_label')} ({ev.get('votes')})"]
        return lines + [f"group {group}{_chance(ev)}"]
    if kind == "near_duplicate":
        return [f"a near copy of {ev.get('kept_id')} ({ev.get('similarity')}), one of {ev.get('copies')} in group "
                f"{group}; that copy is kept"]
    return [f"an exact copy of {ev.get('kept_id')}, one of {ev.get('copies')} identical records in group {group}; "
            f"that copy is kept{_chance(ev)}"]
