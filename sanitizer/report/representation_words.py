"""Evidence that names an image or text column's representation, in words a reviewer reads.

The detectors judge an image or text column through the vectors its representation makes
(:mod:`sanitizer.beam.media`): numeric features named ``COLUMN:0``, ``COLUMN:1``, ... and, for text, the two
signals ``COLUMN:unknown_words`` (the share of its words the representation never saw in the sample) and
``COLUMN:unexplained`` (the share of its word weight outside the sample's main directions). A dimension
number means nothing to a reviewer, so the report says what it stands for instead:

- ``review:unknown_words`` = 0.62 (typical 0-0.19) reads "62% of its words are unknown to the sample
  (typically 0-19%)";
- ``review:unexplained`` reads "89% of its wording lies outside the sample's common themes (typically
  44-73%)";
- ``image:contrast``, ``image:edges`` and ``image:colour`` (statistics of the decoded pixels) read as a
  percentage of the full scale, e.g. "0% contrast (grey-level spread) (typically 12-31%)";
- any number of ``image:N`` dimensions read "unusual in its image representation" (a trigger pattern
  there: "a trigger pattern in its image representation").

One line per column, before the detector's own lines (:func:`split`); features of other columns stay with
the detector's ``describe``.
"""

from __future__ import annotations

from typing import Any

KINDS = ("image", "text")
SIGNALS = {
    "unknown_words": "of its words are unknown to the sample",
    "unexplained": "of its wording lies outside the sample's common themes",
    "contrast": "contrast (grey-level spread)",
    "edges": "edges (difference between neighbouring pixels)",
    "colour": "colour (spread between channels)",
}
TRIGGER_KEYS = ("pattern",)  # feature lists that describe a trigger rather than an unusual value


def media_kinds(kinds: list[dict]) -> dict[str, str]:
    """Column -> "image" or "text" for the columns provenance's ``columns.kinds`` says were judged that way."""
    return {str(k.get("name")): str(k.get("kind")) for k in kinds
            if isinstance(k, dict) and k.get("judged") and k.get("kind") in KINDS}


def column_of(feature: Any, media: dict[str, str]) -> tuple[str, str] | None:
    """(column, dimension) when ``feature`` names a dimension or signal of a represented column, else None."""
    if not isinstance(feature, str) or ":" not in feature:
        return None
    column, _, dim = feature.rpartition(":")
    if column in media and (dim.isdigit() or dim in SIGNALS):
        return column, dim
    return None


def _percent(value: Any) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, (int, float)) and not isinstance(value, bool) else "?"


def _typical(item: dict) -> str:
    typical = item.get("typical_range")
    if isinstance(typical, list) and len(typical) == 2:
        return f" (typically {_percent(typical[0]).rstrip('%')}–{_percent(typical[1])})"
    return ""


def _line(column: str, kind: str, key: str, items: list[dict]) -> str:
    parts, dims = [], 0
    for item in items:
        dim = item["feature"].rpartition(":")[2]
        if dim in SIGNALS:
            parts.append(f"{_percent(item.get('value'))} {SIGNALS[dim]}{_typical(item)}")
        else:
            dims += 1
    if dims:
        what = "a trigger pattern in" if key in TRIGGER_KEYS else "unusual in"
        parts.append(f"{what} its {kind} representation" + (f" ({dims} of its directions)" if dims > 1 else ""))
    return f"{column}: " + "; ".join(parts)


def split(ev: dict, keys: tuple[str, ...], media: dict[str, str]) -> tuple[dict, list[str]]:
    """``ev`` without the items of its feature lists ``keys`` that name a represented column, and those items
    in words (one line per list and column). ``ev`` itself when it names none."""
    if not media:
        return ev, []
    out, lines = ev, []
    for key in keys:
        items = ev.get(key)
        if not isinstance(items, list):
            continue
        named: dict[str, list[dict]] = {}
        kept = []
        for item in items:
            found = column_of(item.get("feature"), media) if isinstance(item, dict) else None
            if found is None:
                kept.append(item)
            else:
                named.setdefault(found[0], []).append(item)
        if named:
            out = {**out, key: kept}
            lines.extend(_line(column, media[column], key, group) for column, group in named.items())
    return out, lines


__all__ = ["column_of", "media_kinds", "split"]
