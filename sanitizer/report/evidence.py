"""One quarantined row's reasons, summarised as short plain-text lines.

The lines are data, not markup: the page renders them with ``textContent``.
Known detectors get a tailored summary; anything else (row checks, expectation
failures, detectors added later) gets its scalar evidence as ``key: value``.
"""

from __future__ import annotations

import math
from typing import Any

MAX_LINE = 240
MAX_NEIGHBOURS = 5
MAX_GENERIC_ITEMS = 6


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e12:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def _neighbours(items: Any) -> str:
    if not isinstance(items, list):
        return ""
    parts = []
    for item in items[:MAX_NEIGHBOURS]:
        if isinstance(item, dict) and "label" not in item and "distance" in item:
            parts.append(f"{item.get('id')} (distance {_num(item.get('distance'))})")
        elif isinstance(item, dict):
            parts.append(f"{item.get('id')} ({item.get('label')})")
        else:
            parts.append(str(item))
    more = len(items) - MAX_NEIGHBOURS
    return ", ".join(parts) + (f", +{more} more" if more > 0 else "")


def _label_flip(ev: dict) -> list[str]:
    lines = []
    if "suggested_label" in ev:
        line = f"suggested label {ev.get('suggested_label')}"
        if "p_suggested" in ev:
            line += f" (p {_num(ev['p_suggested'])}; given {ev.get('given_label')} p {_num(ev.get('p_given'))})"
        lines.append(line)
    if ev.get("neighbours"):
        agreement = ev.get("neighbour_agreement")
        head = "neighbours" + (f" (agree with given: {_num(agreement, 2)})" if agreement is not None else "")
        lines.append(f"{head}: {_neighbours(ev['neighbours'])}")
    return lines


_FC_SIGNALS = {
    "margin": "nearly as close to another class as to its own",
    "group": "its own-class neighbours are drawn the same way",
    "cluster": "far from its class past a cluster of look-alikes",
    "deep_knn": "another class outvotes its own",
}


def _feature_collision(ev: dict) -> list[str]:
    lines = []
    if "toward_label" in ev:
        why = [_FC_SIGNALS.get(str(s), str(s)) for s in ev.get("signals") or []]
        lines.append(f"embedding drawn from {ev.get('given_label')} toward {ev.get('toward_label')}"
                     + (f": {'; '.join(why)}" if why else ""))
    if "own_distance" in ev:
        lines.append(f"own class at {_num(ev.get('own_distance'))} (typical {_num(ev.get('typical_own_distance'))}),"
                     f" class {ev.get('other_label', ev.get('toward_label'))} at {_num(ev.get('other_distance'))};"
                     f" margin {_num(ev.get('margin'), 2)}, group margin {_num(ev.get('group_margin'), 2)}")
    nats = ev.get("nats")
    if isinstance(nats, dict):
        parts = ", ".join(f"{k} {_num(v, 3)}" for k, v in nats.items())
        lines.append(f"nats: {parts} (threshold {_num(ev.get('threshold_nats'))})")
    votes = ev.get("votes")
    if isinstance(votes, dict) and votes:
        ordered = sorted(votes.items(), key=lambda kv: -kv[1] if isinstance(kv[1], (int, float)) else 0)
        lines.append(f"votes among {ev.get('k')} nearest: " + ", ".join(f"{k} {_num(v)}" for k, v in ordered)
                     + (f" (ratio {_num(ev.get('vote_ratio'), 3)})" if "vote_ratio" in ev else ""))
    if ev.get("nearest"):
        lines.append(f"nearest: {_neighbours(ev['nearest'])}")
    return lines


def _outlier(ev: dict) -> list[str]:
    lines = []
    feats = ev.get("extreme_features")
    if isinstance(feats, list) and feats:
        parts = []
        for f in feats[:4]:
            if not isinstance(f, dict):
                parts.append(str(f))
                continue
            typical = f.get("typical_range")
            rng = f" (typical {_num(typical[0])}–{_num(typical[1])})" if isinstance(typical, list) and len(typical) == 2 else ""
            parts.append(f"{f.get('feature')} = {_num(f.get('value'))}{rng}")
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
                parts.append(f"{label} {_num(signals[name])} nats"
                             + (f" vs {_num(limit)}" if limit is not None else "") + mark)
        if parts:
            lines.append("signals: " + "; ".join(parts))
    if ev.get("nearest"):
        lines.append(f"nearest reference rows: {_neighbours(ev['nearest'])}")
    return lines


def _backdoor(ev: dict) -> list[str]:
    lines = [f"labelled {ev.get('given_label')}, but rows that match it outside the trigger say "
             f"{ev.get('suggested_label')} (vote margin {_num(ev.get('vote_margin'))}, "
             f"{_num(ev.get('group_in_sample'))} carriers in the sample)"]
    pattern = ev.get("pattern")
    if isinstance(pattern, list) and pattern:
        parts = [f"{p.get('feature')} = {_num(p.get('value'))} (typical {_num(p.get('typical'))})"
                 for p in pattern[:8] if isinstance(p, dict)]
        lines.append(f"trigger ({ev.get('trigger')}): " + ", ".join(parts))
    if ev.get("group"):
        lines.append(str(ev["group"]))
    if ev.get("neighbours"):
        lines.append(f"neighbours outside the trigger: {_neighbours(ev['neighbours'])}")
    return lines


def _generic(ev: Any) -> list[str]:
    if not isinstance(ev, dict):
        return [str(ev)] if ev not in (None, "", {}) else []
    parts = []
    for key, value in list(ev.items())[:MAX_GENERIC_ITEMS]:
        if _is_id_list(value):
            parts.append(f"{key}: {_neighbours(value)}")
        elif isinstance(value, (dict, list)):
            parts.append(f"{key}: {str(value)[:80]}")
        else:
            parts.append(f"{key}: {_num(value)}")
    return ["; ".join(parts)] if parts else []


_BY_DETECTOR = {"backdoor": _backdoor, "label_flip": _label_flip, "feature_collision": _feature_collision, "outlier": _outlier}


def summarise_reasons(reasons: list[dict]) -> list[dict[str, Any]]:
    """[{code, detector, score, threshold, lines}] for one row's parsed reasons."""
    out = []
    for r in reasons:
        detector = str(r.get("detector") or "")
        ev = r.get("evidence") or {}
        fn = _BY_DETECTOR.get(detector)
        try:
            lines = fn(ev) if fn and isinstance(ev, dict) else _generic(ev)
        except Exception:  # odd evidence must not break the report
            lines = _generic(ev)
        score, threshold = r.get("score"), r.get("threshold")
        head = []
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            head.append(f"score {_num(score)}")
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            head.append(f"threshold {_num(threshold)}")
        if r.get("action") == "report":
            head.append("report only")
        out.append({
            "code": str(r.get("code", "?")),
            "detector": detector,
            "head": ", ".join(head),
            "lines": [_clip(str(line)) for line in lines],
        })
    return out


# --------------------------------------------------------------------------- the rows evidence names

NEIGHBOUR_KEYS = {"label_flip": ("neighbours",), "backdoor": ("neighbours",), "feature_collision": ("nearest",),
                  "outlier": ("nearest",)}
"""Evidence keys that list reference rows ({id, label} or {id, distance}); other detectors: any list of
dicts with an ``id``."""


def _is_id_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "id" in value[0]


def referenced(reasons: list[dict]) -> list[dict[str, Any]]:
    """[{id, label, detector, role}] for the reference rows one row's evidence names, at most
    MAX_NEIGHBOURS per list and detector. ``role`` is "suggested" for a neighbour carrying the label the
    detector suggests instead (label_flip, backdoor: the suggested label's nearest examples), else
    "neighbour". ``label`` is the one the evidence gives (None where it gives none: outlier)."""
    out = []
    for r in reasons:
        ev = r.get("evidence")
        if not isinstance(ev, dict):
            continue
        detector = str(r.get("detector") or r.get("code") or "")
        keys = NEIGHBOUR_KEYS.get(detector) or tuple(k for k, v in ev.items() if _is_id_list(v))
        suggested = ev.get("suggested_label")
        suggested = None if suggested is None else str(suggested)
        for key in keys:
            items = ev.get(key)
            if not isinstance(items, list):
                continue
            for item in items[:MAX_NEIGHBOURS]:
                if not isinstance(item, dict) or item.get("id") is None:
                    continue
                label = item.get("label")
                label = None if label is None else str(label)
                role = "suggested" if suggested is not None and label == suggested else "neighbour"
                out.append({"id": str(item["id"]), "label": label, "detector": detector, "role": role})
    return out


def named_features(reasons: list[dict]) -> list[str]:
    """Feature names the evidence points at (outlier extreme_features, backdoor trigger pattern), in order."""
    names = []
    for r in reasons:
        ev = r.get("evidence")
        if not isinstance(ev, dict):
            continue
        for key in ("extreme_features", "pattern"):
            items = ev.get(key)
            if isinstance(items, list):
                names.extend(str(i["feature"]) for i in items if isinstance(i, dict) and i.get("feature") is not None)
    return list(dict.fromkeys(names))
