"""How the report shows a ``feature_collision`` flag: its colour, its evidence in words, and the rows the evidence names."""

from __future__ import annotations

from sanitizer.detectors.shared.evidence_text import number, reference_rows

COLOUR = "#8e44ad"
NEIGHBOUR_KEYS = ("nearest",)  # [{id, label, distance}]: the nearest rows in the embedding
FEATURE_KEYS = ()

SIGNALS = {
    "margin": "nearly as close to another class as to its own",
    "group": "its own-class neighbours are drawn the same way",
    "cluster": "far from its class past a cluster of look-alikes",
    "deep_knn": "another class outvotes its own",
}
"""Each signal that can fire, in words."""


def describe(ev: dict) -> list[str]:
    """Which class the row is drawn toward and why, the distances and margins, the nats, the votes, the nearest rows
    and, for a backbone on images, the image column it embedded."""
    lines = []
    if "toward_label" in ev:
        why = [SIGNALS.get(str(s), str(s)) for s in ev.get("signals") or []]
        lines.append(f"embedding drawn from {ev.get('given_label')} toward {ev.get('toward_label')}"
                     + (f": {'; '.join(why)}" if why else ""))
    if "own_distance" in ev:
        lines.append(f"own class at {number(ev.get('own_distance'))} (typical {number(ev.get('typical_own_distance'))}),"
                     f" class {ev.get('other_label', ev.get('toward_label'))} at {number(ev.get('other_distance'))};"
                     f" margin {number(ev.get('margin'), 2)}, group margin {number(ev.get('group_margin'), 2)}")
    nats = ev.get("nats")
    if isinstance(nats, dict):
        parts = ", ".join(f"{k} {number(v, 3)}" for k, v in nats.items())
        lines.append(f"nats: {parts} (threshold {number(ev.get('threshold_nats'))})")
    votes = ev.get("votes")
    if isinstance(votes, dict) and votes:
        ordered = sorted(votes.items(), key=lambda kv: -kv[1] if isinstance(kv[1], (int, float)) else 0)
        lines.append(f"votes among {ev.get('k')} nearest: " + ", ".join(f"{k} {number(v)}" for k, v in ordered)
                     + (f" (ratio {number(ev.get('vote_ratio'), 3)})" if "vote_ratio" in ev else ""))
    if ev.get("nearest"):
        lines.append(f"nearest: {reference_rows(ev['nearest'])}")
    if ev.get("image_column"):
        lines.append(f"judged in the backbone's embedding of image column {ev['image_column']}")
    return lines
