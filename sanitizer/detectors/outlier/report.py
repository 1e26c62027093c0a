"""How the report shows an ``outlier`` flag: its colour, its evidence in words, and the rows the evidence names."""

from __future__ import annotations

from sanitizer.detectors.shared.evidence_text import number, reference_rows

COLOUR = "#d9822b"
NEIGHBOUR_KEYS = ("nearest",)  # [{id, distance}]: the nearest reference rows
FEATURE_KEYS = ("extreme_features",)  # [{feature, value, typical_range}]


def describe(ev: dict) -> list[str]:
    """The extreme features against their typical range, what the row was compared with, both signals, the nearest rows."""
    lines = []
    feats = ev.get("extreme_features")
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
        for name, label in (("tail", "most extreme feature"), ("knn", "k-NN distance")):
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
