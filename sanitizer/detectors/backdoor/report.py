"""How the report shows a ``backdoor`` flag: its colour, its evidence in words, and the rows the evidence names."""

from __future__ import annotations

from sanitizer.detectors.shared.evidence_text import number, reference_rows

COLOUR = "#138d75"
NEIGHBOUR_KEYS = ("neighbours",)  # [{id, label}]: rows that match outside the trigger
FEATURE_KEYS = ("pattern",)  # [{feature, value, typical}]: the trigger


def describe(ev: dict) -> list[str]:
    """The vote that contradicts the label, the trigger pattern, the group, the neighbours outside the trigger."""
    if ev.get("trigger") in ("categorical", "token", "patch"):
        return _categorical(ev)
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


def _categorical(ev: dict) -> list[str]:
    """A categorical trigger: the values, the group in the sample, what the row's content says."""
    given = ev.get("given_label")
    pattern = ev.get("pattern") if isinstance(ev.get("pattern"), list) else []
    values = " and ".join(_part(p) for p in pattern if isinstance(p, dict))
    lines = [f"trigger {values}: held by {number(ev.get('group_in_sample'))} sample rows, "
             f"{_percent(ev.get('group_label_purity'))} of them labelled {given}"]
    shares = ev.get("content_says_label_share")
    if isinstance(shares, dict):
        lines.append(f"outside the trigger, the group's rows look like {given} as rarely as other classes' rows do "
                     f"(neighbours labelled {given}: {_percent(shares.get('group'))} for the group, "
                     f"{_percent(shares.get('class'))} for the class's other rows, "
                     f"{_percent(shares.get('other_classes'))} for other classes' rows)")
    lines.append(f"this row is labelled {given}, but only {_percent(ev.get('neighbour_agreement'))} of its "
                 f"neighbours outside the trigger are (the most common other label: {ev.get('suggested_label')})")
    if ev.get("neighbours"):
        lines.append(f"neighbours outside the trigger: {reference_rows(ev['neighbours'])}")
    return lines


def _quoted(value) -> str:
    return "missing" if value is None else f"'{value}'"


def _percent(share) -> str:
    return f"{100 * share:.0f}%" if isinstance(share, (int, float)) else "?"


def _part(p: dict) -> str:
    """One part of a categorical or word trigger in words."""
    if "region" in p and isinstance(p.get("region"), list) and len(p["region"]) == 4:
        x0, y0, x1, y1 = p["region"]
        return f"{'a patch' if p.get('present', True) else 'no patch'} at x {x0}-{x1}, y {y0}-{y1} of {p.get('feature')}"
    if "token" in p:
        return f"{'the word' if p.get('present', True) else 'no word'} {_quoted(p.get('token'))} in {p.get('feature')}"
    return f"{p.get('feature')} = {_quoted(p.get('value'))}"
