"""One quarantined row's reasons, summarised as short plain-text lines, and the rows and features they name.

The lines are data, not markup: the page renders them with ``textContent``.
Each detector says how its evidence reads through the hooks of its contract
(:meth:`~sanitizer.detectors.contract.Detector.describe`, ``neighbour_keys``,
``feature_keys``); anything without them (row checks, expectation failures, a
detector without hooks) gets its scalar evidence as ``key: value``, and every
list of reference rows or features its evidence holds.
"""

from __future__ import annotations

from typing import Any

from sanitizer.detectors import REGISTRY
from sanitizer.detectors.contract import Detector
from sanitizer.detectors.shared.evidence_text import MAX_NEIGHBOURS, number, reference_rows
from sanitizer.report import representation_words

MAX_LINE = 240
MAX_GENERIC_ITEMS = 6
MAX_VALUE = 60  # a value in words (evidence's "value" text) longer than this is cut when its line is too long


def detector_for(name: str) -> Detector | None:
    """The registered detector called ``name`` (its report hooks), or None for a row check, an expectation or
    a detector this installation does not know."""
    cls = REGISTRY.get(name)
    return None if cls is None else cls()


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def _long(item: Any) -> bool:
    value = item.get("value") if isinstance(item, dict) else None
    return isinstance(value, str) and len(value) > MAX_VALUE


def _long_value(ev: Any) -> bool:
    """Whether ``ev`` holds a text ``value`` of more than MAX_VALUE characters where evidence names values:
    in ``ev``, in a dict or list of dicts it holds, or in a dict one of those holds."""
    if not isinstance(ev, dict):
        return False
    if _long(ev):
        return True
    for value in ev.values():
        for item in value if isinstance(value, list) else (value,) if isinstance(value, dict) else ():
            if isinstance(item, dict) and (_long(item) or any(_long(v) for v in item.values() if isinstance(v, dict))):
                return True
    return False


def _short_values(ev: Any) -> Any:
    """``ev`` with every text ``value`` (a categorical or date value in words) of more than MAX_VALUE characters
    cut short, so a long value leaves room for the rest of its line; ``ev`` itself when none is that long."""
    if isinstance(ev, dict) and not _long_value(ev):
        return ev
    if isinstance(ev, list):
        return [_short_values(v) for v in ev]
    if not isinstance(ev, dict):
        return ev
    out = {k: _short_values(v) for k, v in ev.items()}
    value = out.get("value")
    if isinstance(value, str) and len(value) > MAX_VALUE:
        out["value"] = value[: MAX_VALUE - 1] + "…"
    return out


def _generic(ev: Any) -> list[str]:
    if not isinstance(ev, dict):
        return [str(ev)] if ev not in (None, "", {}) else []
    parts = []
    for key, value in list(ev.items())[:MAX_GENERIC_ITEMS]:
        if _is_id_list(value):
            parts.append(f"{key}: {reference_rows(value)}")
        elif isinstance(value, (dict, list)):
            parts.append(f"{key}: {str(value)[:80]}")
        else:
            parts.append(f"{key}: {number(value)}")
    return ["; ".join(parts)] if parts else []


def _describe(hooks: Detector | None, ev: Any) -> list | None:
    try:
        return hooks.describe(ev) if hooks is not None and isinstance(ev, dict) else None
    except Exception:  # odd evidence must not break the report
        return None


def summarise_reasons(reasons: list[dict], media: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """[{code, detector, score, threshold, lines}] for one row's parsed reasons. ``media``: column -> "image" or
    "text" (:func:`~sanitizer.report.representation_words.media_kinds`); evidence naming their representation's
    dimensions reads in words (:mod:`sanitizer.report.representation_words`)."""
    out = []
    for r in reasons:
        detector = str(r.get("detector") or "")
        ev = r.get("evidence") or {}
        hooks = detector_for(detector)
        worded: list[str] = []
        if media and isinstance(ev, dict):
            ev, worded = representation_words.split(ev, _keys(hooks, "feature_keys", ev, "feature"), media)
        lines = _describe(hooks, ev)
        if lines is not None and any(len(str(line)) > MAX_LINE for line in lines) and _long_value(ev):
            lines = _describe(hooks, _short_values(ev))  # a long value would push the rest of its line out
        if lines is None:
            lines = _generic(ev)
        lines = worded + list(lines)
        score, threshold = r.get("score"), r.get("threshold")
        head = []
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            head.append(f"score {number(score)}")
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            head.append(f"threshold {number(threshold)}")
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

def _is_list_of(value: Any, key: str) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and key in value[0]


def _is_id_list(value: Any) -> bool:
    return _is_list_of(value, "id")


def _keys(hooks: Detector | None, declared: str, ev: dict, key: str) -> tuple[str, ...]:
    """The evidence keys a detector declares in its hook ``declared``; without it, every list of dicts with ``key``."""
    keys = None if hooks is None else getattr(hooks, declared)
    return tuple(k for k, v in ev.items() if _is_list_of(v, key)) if keys is None else keys


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
        keys = _keys(detector_for(detector), "neighbour_keys", ev, "id")
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


def trigger_words(reasons: list[dict]) -> list[str]:
    """The words a row's evidence names as a text trigger (``trigger_token``, or ``tokens``: words or
    {token} items), lowercased, in order; the report highlights them in the row's text and its neighbours'."""
    words = []
    for r in reasons:
        ev = r.get("evidence")
        if not isinstance(ev, dict):
            continue
        items = ev.get("tokens") if isinstance(ev.get("tokens"), list) else []
        items = ([ev["trigger_token"]] if isinstance(ev.get("trigger_token"), str) else []) + items
        for item in items:
            word = item.get("token") if isinstance(item, dict) else item
            if isinstance(word, str) and word.strip():
                words.append(word.strip().lower())
    return list(dict.fromkeys(words))


def named_features(reasons: list[dict]) -> list[str]:
    """Feature names the evidence points at (the lists its detector's ``feature_keys`` name), in order."""
    names = []
    for r in reasons:
        ev = r.get("evidence")
        if not isinstance(ev, dict):
            continue
        for key in _keys(detector_for(str(r.get("detector") or r.get("code") or "")), "feature_keys", ev, "feature"):
            items = ev.get(key)
            if isinstance(items, list):
                names.extend(str(i["feature"]) for i in items if isinstance(i, dict) and i.get("feature") is not None)
    return list(dict.fromkeys(names))
