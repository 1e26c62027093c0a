"""The tabular view of the suspects: each row's values beside each feature's typical values and beside the
values of the reference rows its evidence names.

Every judged column can be shown: the numeric features (numbers; an Arrow boolean as 0/1, which the page
writes as false / true) and the categorical, boolean-as-text and date columns, as written
(:mod:`sanitizer.report.written`). What the page gets (``features``):

- ``names`` and ``kinds``: the shown columns, numeric features first; ``kinds`` says how each reads
  (numeric, boolean, categorical, date);
- ``typical``: per column, from the bounded sample of clean rows (:mod:`sanitizer.report.neighbours`):
  the 5th-95th percentile range of a number ([lo, hi]) or of a date ([lo, hi] in ISO 8601), and the most
  frequent values of a categorical or boolean column with their share of the sampled rows
  ({levels: [[value, share], ...], distinct}); None where the sample has no value.

- ``written``: the index of the first column shown as written; ``words``: their values, each text once
  (a row's value there is its index in ``words``, None when missing).

Each shown row gets ``feat`` (the columns that matter most, in column order) and ``v`` (its values there),
``more`` and ``mv`` (further columns and values), ``first`` (the columns its evidence names, which the page
shows first) and ``odd`` (its categorical values seen in under :data:`ODD_SHARE` of the sampled rows, and
its dates outside the typical range, which the page marks as it marks a number outside its range).
Which columns: the ones the evidence names, then the furthest from typical (a number or date in widths of
its typical range from the middle, a categorical value by its rarity, a missing number or date furthest):
:data:`~sanitizer.report.neighbours.SHOWN_FEATURES` in ``feat``, and as many more in ``more`` as keep the
page's size bounded (:data:`MORE_VALUES` values for all rows together, at most :data:`MAX_COLUMNS`
columns a row): a table of a few dozen columns with a few hundred suspects shows every column.
Each reference row gets the values of every column shown for a row naming it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np

from sanitizer.report.neighbours import SHOWN_FEATURES, TYPICAL, FeatureLayout, sig

LEVELS_SHOWN = 5  # most frequent values listed as a categorical column's typical values
ODD_SHARE = 0.01  # a categorical value seen in under this share of the sampled rows is marked
RARE_AS_EDGE = 0.05  # a categorical value this rare counts as far from typical as a number at its range's edge

MAX_COLUMNS = 32  # columns shown for one row
MORE_VALUES = 4000  # values past SHOWN_FEATURES for all rows together (the neighbours' add about six times that)

_EPOCH = dt.datetime(1970, 1, 1)


def typical_ranges(sample: np.ndarray | None, d: int) -> list[list | None]:
    """[lo, hi] (the :data:`TYPICAL` percentiles) per feature of the sample; None where it has no value."""
    if sample is None or not len(sample):
        return [None] * d
    out = []
    for j in range(d):
        col = sample[:, j]
        col = col[np.isfinite(col)]
        if not col.size:
            out.append(None)
            continue
        lo, hi = np.percentile(col, TYPICAL)
        out.append([sig(lo), sig(hi)])
    return out


def _bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(middle, width) of ranges; NaN where a range is missing."""
    return (lo + hi) / 2, np.maximum(np.maximum(hi - lo, np.abs(lo) * 1e-6), 1e-12)


def _range_bounds(typical: list) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([r[0] if r is not None and r[0] is not None else np.nan for r in typical], dtype=np.float64)
    hi = np.array([r[1] if r is not None and r[1] is not None else np.nan for r in typical], dtype=np.float64)
    return _bounds(lo, hi)


def _distance(x: np.ndarray, middle: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Widths of the typical range from its middle; 0 without a range; a missing value furthest."""
    with np.errstate(invalid="ignore"):
        dev = np.nan_to_num(np.abs(x - middle) / width, nan=0.0)
    dev[~np.isfinite(x)] = np.inf
    return dev


def pick(dev: np.ndarray, first: list[int], k: int = SHOWN_FEATURES) -> list[int]:
    """The ``k`` columns to show for a row: those its evidence names (``first``), then the furthest from
    typical by ``dev`` (ties in column order); in column order."""
    d = len(dev)
    if d <= k:
        return list(range(d))
    chosen = list(dict.fromkeys(j for j in first if 0 <= j < d))[:k]
    for j in np.argsort(-dev, kind="stable"):
        if len(chosen) >= k:
            break
        if int(j) not in chosen:
            chosen.append(int(j))
    return sorted(chosen)


def iso(days: float) -> str | None:
    """Days since 1970 as an ISO 8601 date (with the time when not midnight)."""
    try:
        when = _EPOCH + dt.timedelta(days=float(days))
    except (OverflowError, ValueError):
        return None
    when = when.replace(microsecond=0)
    return when.date().isoformat() if when.time() == dt.time(0) else when.isoformat()


class _Written:
    """What the sample says of the columns shown as written: level counts, date ranges."""

    def __init__(self, layout: FeatureLayout, sample: tuple[np.ndarray, np.ndarray] | None):
        w = len(layout.written)
        texts, days = sample if sample is not None else (np.zeros((0, w), object), np.zeros((0, w)))
        self.kinds = [kind for _, kind in layout.written]
        self.rows = len(texts)
        self.counts = [Counter(texts[:, c].tolist()) if kind != "date" else None
                       for c, kind in enumerate(self.kinds)]
        lo, hi = np.full(w, np.nan), np.full(w, np.nan)
        self.typical: list = []
        for c, kind in enumerate(self.kinds):
            if kind != "date":
                top = self.counts[c].most_common(LEVELS_SHOWN) if self.rows else []
                self.typical.append({"levels": [[v, round(n / self.rows, 4)] for v, n in top],
                                     "distinct": len(self.counts[c])} if top else None)
                continue
            col = days[:, c][np.isfinite(days[:, c])]
            if col.size:
                lo[c], hi[c] = np.percentile(col, TYPICAL)
                if np.all(col == np.floor(col)):  # dates without a time: a range of whole days
                    lo[c], hi[c] = np.floor(lo[c]), np.ceil(hi[c])
            self.typical.append([iso(lo[c]), iso(hi[c])] if col.size else None)
        self.lo, self.hi = lo, hi
        self.middle, self.width = _bounds(lo, hi)

    def share(self, c: int, value) -> float | None:
        return self.counts[c].get(value, 0) / self.rows if self.rows else None

    def distance(self, texts: np.ndarray, days: np.ndarray) -> np.ndarray:
        dev = _distance(days, self.middle, self.width)
        for c, kind in enumerate(self.kinds):
            if kind != "date":
                p = self.share(c, texts[c])
                dev[c] = 0.0 if p is None else np.inf if p == 0 else 0.5 * RARE_AS_EDGE / p
        return dev

    def odd(self, c: int, text, days: float) -> bool:
        if self.kinds[c] == "date":
            return bool(np.isfinite(days) and (days < self.lo[c] or days > self.hi[c]))
        p = self.share(c, text)
        return p is not None and p < ODD_SHARE


def tabular_view(rows: list[dict], references: dict[str, dict], found: dict[str, tuple], sample: np.ndarray | None,
                 sample_written: tuple[np.ndarray, np.ndarray] | None, layout: FeatureLayout,
                 kinds: dict[str, str] | None = None) -> dict:
    """Give each row (its ``_x``, ``_t``, ``_d``: numeric features, texts, days) ``feat``, ``v``, ``first`` and
    ``odd``, each reference (``found``: id -> (features, texts, days)) the union of the ``feat`` of the rows
    naming it and its values there; return the page's ``features``. ``kinds``: column -> kind (provenance)."""
    d = len(layout.names)
    typical = typical_ranges(sample, d)
    middle, width = _range_bounds(typical)
    shown = _Written(layout, sample_written)
    names = list(layout.names) + [c for c, _ in layout.written]
    index = {n: j for j, n in enumerate(names)}
    wanted: dict[str, set] = {}
    words: dict[str, int] = {}
    tabular = sum(row.get("_x") is not None for row in rows)
    extra = min(MAX_COLUMNS - SHOWN_FEATURES, MORE_VALUES // max(tabular, 1))
    for row in rows:
        x, t, dd = row.pop("_x", None), row.pop("_t", None), row.pop("_d", None)
        if x is None:
            continue
        named = [index[f] for f in row.pop("_named", []) if f in index]
        if len(names) <= SHOWN_FEATURES:  # every column, nothing to choose
            feat, more = list(range(len(names))), []
        else:
            dev = _distance(x, middle, width)
            dev = np.concatenate([dev, shown.distance(t, dd)]) if layout.written else dev
            feat = pick(dev, named)
            more = [j for j in pick(dev, named, SHOWN_FEATURES + extra) if j not in feat] if extra > 0 else []
        row["feat"], row["v"] = feat, _values(feat, d, x, t, words)
        first = [j for j in dict.fromkeys(named) if j in feat]
        odd = [j for j in feat + more if j >= d and shown.odd(j - d, t[j - d], dd[j - d])]
        row.update({"more": more, "mv": _values(more, d, x, t, words)} if more else {})
        row.update({"first": first} if first else {})
        row.update({"odd": odd} if odd else {})
        for ref in row.get("refs", []):
            wanted.setdefault(ref["id"], set()).update(feat + more)
    for ident, ref in references.items():
        values = found.get(ident)
        if values is None or ident not in wanted:
            continue
        feat = sorted(wanted[ident])
        ref["feat"] = feat
        ref["v"] = _values(feat, d, values[0], values[1], words)
    kinds = kinds or {}
    column_kinds = ["boolean" if kinds.get(n) == "boolean" else "numeric" for n in layout.names]
    return {"names": names, "kinds": column_kinds + shown.kinds, "typical": typical + shown.typical,
            "written": d, "words": list(words)}


def _values(feat: list[int], d: int, x: np.ndarray, texts: np.ndarray, words: dict[str, int]) -> list:
    """A row's values at ``feat``: numbers; a written value as its index in ``words`` (each text stored once)."""
    return [sig(x[j]) if j < d else None if texts[j - d] is None else words.setdefault(texts[j - d], len(words))
            for j in feat]
