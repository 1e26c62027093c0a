"""How the report shows a ``label_flip`` flag: its colour, its evidence in words, and the rows the evidence names."""

from __future__ import annotations

from sanitizer.detectors.shared.evidence_text import number, reference_rows

COLOUR = "#2f6fd6"
NEIGHBOUR_KEYS = ("neighbours",)  # [{id, label}]: out-of-fold nearest rows
FEATURE_KEYS = ()
LABEL_MATRIX = True  # flagged rows go into the given-vs-suggested label matrix


def describe(ev: dict) -> list[str]:
    """The suggested label with both probabilities, the categorical values that pointed to it, and the
    neighbours with their agreement."""
    lines = []
    if "suggested_label" in ev:
        line = f"suggested label {ev.get('suggested_label')}"
        if "p_suggested" in ev:
            line += (f" (p {number(ev['p_suggested'])}; given {ev.get('given_label')}"
                     f" p {number(ev.get('p_given'))})")
        lines.append(line)
    named = [c for c in ev.get("categorical") or [] if isinstance(c, dict) and c.get("column")]
    if named:
        lines.append("pointing to it: " + ", ".join(f"{c['column']} = {_quoted(c.get('value'))}" for c in named))
    if ev.get("neighbours"):
        agreement = ev.get("neighbour_agreement")
        head = "neighbours" + (f" (agree with given: {number(agreement, 2)})" if agreement is not None else "")
        lines.append(f"{head}: {reference_rows(ev['neighbours'])}")
    return lines


def _quoted(value) -> str:
    return "missing" if value is None else repr(str(value)) if isinstance(value, str) else str(value)
