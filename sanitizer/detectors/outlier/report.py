"""How the report shows an ``outlier`` flag: its colour, its evidence in words, and the rows the evidence names."""

from __future__ import annotations

from sanitizer.detectors.shared.evidence_text import number, reference_rows

COLOUR = "#d9822b"
NEIGHBOUR_KEYS = ("nearest",)  # [{id, distance}]: the nearest reference rows
FEATURE_KEYS = ("extreme_features",)
"""[{feature, value, typical_range}] for numeric and date features; a categorical finding (first) has ``test``
(unseen, class, combination or misplaced), ``value``, ``reference_rows`` and, for a combination or an exchange
of two cells, ``with``."""


def describe(ev: dict) -> list[str]:
    """The unusual categorical values and the extreme features against their typical range, what the row was
    compared with, the signals, the nearest rows."""
    lines = []
    feats = ev.get("extreme_features")
    if isinstance(feats, list):
        lines.extend(category_line(f) for f in feats if isinstance(f, dict) and "test" in f)
        feats = [f for f in feats if not (isinstance(f, dict) and "test" in f)]
    if isinstance(feats, list) and feats:
        parts = []
        for f in feats[:4]:
            if not isinstance(f, dict):
                parts.append(str(f))
                continue
            typical = f.get("typical_range")
            rng = (f" (typical {number(typical[0])}–{number(typical[1])})"
                   if isinstance(typical, list) and len(typical) == 2 else "")
            parts.append(f"{f.get('feature')} = {number(f.get('value'))}{rng}")
        lines.append("extreme features: " + "; ".join(parts))
    if "reference" in ev:
        lines.append(f"compared with {ev['reference']}")
    signals = ev.get("signals")
    if isinstance(signals, dict):
        parts = []
        for name, label in (("tail", "most extreme feature"), ("knn", "k-NN distance"),
                            ("category", "unusual categories")):
            if name in signals:
                limit = signals.get(f"{name}_threshold")
                mark = " (fired)" if isinstance(ev.get("fired"), list) and name in ev["fired"] else ""
                parts.append(f"{label} {number(signals[name])} nats"
                             + (f" vs {number(limit)}" if limit is not None else "") + mark)
        if parts:
            lines.append("signals: " + "; ".join(parts))
    if ev.get("nearest"):
        lines.append(f"nearest reference rows: {reference_rows(ev['nearest'])}")
    return lines


def category_line(item: dict) -> str:
    """One categorical finding in words: "Island = 'Mars': never seen in 3,100 reference rows"."""
    what = f"{item.get('feature')} = {value_text(item.get('value'))}"
    rows = item.get("reference_rows")
    rows = f"{rows:,}" if isinstance(rows, int) else str(rows)
    test = item.get("test")
    if test == "class":
        elsewhere = item.get("count_other_classes")
        more = f" (seen in {elsewhere:,} rows of other classes)" if isinstance(elsewhere, int) and elsewhere else ""
        return f"{what}: never seen among {rows} rows of class {item.get('class')}{more}"
    if test == "misplaced":
        return misplaced_line(item, what)
    if test == "combination":
        other = item.get("with") if isinstance(item.get("with"), dict) else {}
        return (f"{what} with {other.get('feature')} = {value_text(other.get('value'))}: "
                f"never seen together in {rows} rows")
    return f"{what}: never seen in {rows} reference rows"


def misplaced_line(item: dict, what: str) -> str:
    """"color = 'VS2': a value of clarity (4,120 reference rows there, 3 in color)", and its exchanged partner."""
    home, name = item.get("home"), item.get("feature")
    line = f"{what}: a value of {home} ({_count(item.get('count_in_home'))} reference rows there, " \
           f"{_count(item.get('count'))} in {name})"
    other = item.get("with") if isinstance(item.get("with"), dict) else None
    if other:
        line += (f"; {home} = {value_text(other.get('value'))}: a value of {name} "
                 f"({_count(other.get('count_in_home'))} there, {_count(other.get('count'))} in {home}): "
                 "the two cells look exchanged")
    return line


def _count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def value_text(value) -> str:
    """A categorical value as the report quotes it: text in quotes, a missing value as "missing"."""
    if value is None:
        return "missing"
    return f"'{value}'" if isinstance(value, str) else number(value)
