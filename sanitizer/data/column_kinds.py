"""Every input column's kind: what its values are, inferred from the Arrow type and the first rows, or
declared in the config (``columns: {name: kind}``) or on the command line (``--column-kind name=kind``).

Kinds: ``numeric``, ``boolean``, ``categorical``, ``date``, ``text``, ``image``, ``id-like``, ``embedding``
and ``label``. Inference, for a column that is neither the label, the id nor the embedding:

* images: binary values that start with an image file's signature, the Hugging Face ``struct<bytes,
  path>`` layout, or text whose first values are all image file paths (``.png``, ``.jpg``, ...):
  ``image`` (:func:`sanitizer.representations.images.image_layout`);

* integers, floats and decimals, and text that holds numbers: ``numeric`` (an integer column is
  categorical only when declared; a 0/1 integer column is boolean only when declared);
* Arrow booleans: ``boolean`` (judged as 0/1 by the numeric detectors, as before kinds existed);
* dictionary columns: ``categorical``;
* dates and timestamps, and text whose every value in the first rows is an ISO date: ``date``;
* other text, by its first rows: two values that read as yes/no, true/false, y/n or t/f: ``boolean``;
  values averaging :data:`TEXT_WORDS` words or more (sentences), more distinct values than
  :data:`TEXT_SHARE` of the non-null rows (at least :data:`MIN_ROWS` of them: names, free text, keys
  grow with the row count), or more distinct values than the vocabulary bound: ``text``; else
  ``categorical``.

The detectors judge numeric and boolean columns as numbers, categorical columns (and booleans stored as
text) by their codes, dates as days, and images and prose (text averaging :data:`TEXT_WORDS` words or
more, or declared text) through a representation's vectors; a column they do not judge (short free text
such as names, id-like, empty, unsupported) is listed with its kind, never dropped silently. Vocabularies come from the first rows and are bounded: the most frequent
``max_levels`` values keep their own codes; the rarer ones share the ``other`` code (a column
*declared* categorical; an inferred one with that many values is text); a value never seen gets the
``unseen`` code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

KINDS = ("numeric", "boolean", "categorical", "date", "text", "image", "id-like", "embedding", "label", "empty",
         "unsupported")
"""Every kind a column can have (``label`` only by ``--label-column``; ``empty``: no values in the first rows;
``unsupported``: nested values or raw bytes, which no detector reads)."""
DECLARABLE = ("numeric", "boolean", "categorical", "date", "text", "image", "id-like", "embedding")
"""The kinds a user may declare in ``columns:`` or with ``--column-kind``."""
MAX_LEVELS = 1000
"""Default bound on a categorical vocabulary (``categorical_max_levels``)."""
TEXT_WORDS = 5.0
"""Text whose values average this many words or more is prose, not categories."""
TEXT_SHARE = 0.5
"""Text with more distinct values than this share of its non-null first rows grows with the row count."""
MIN_ROWS = 20
"""Fewer non-null first rows than this say nothing about growth."""
PREVIEW = 20
"""Levels shown in provenance (the most frequent first)."""
BOOLEAN_WORDS = ({"yes", "no"}, {"y", "n"}, {"true", "false"}, {"t", "f"})
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _values(column) -> list:
    if column is None:
        return []
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return [v for v in column.to_pylist() if v is not None]


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def prose_words(column) -> float:
    """The mean number of words of a text column's first non-null values (0 when it has none): text
    averaging :data:`TEXT_WORDS` or more is prose, judged through its text representation."""
    values = [str(v) for v in _values(column)]
    return float(np.mean([len(v.split()) for v in values])) if values else 0.0


def infer_text(column, max_levels: int = MAX_LEVELS) -> tuple[str, str]:
    """The kind of a text column that is not numbers and not id-like, from its first rows, and why."""
    values = [str(v) for v in _values(column)]
    if not values:
        return "text", "no values in the first rows"
    distinct = set(values)
    if all(_ISO_DATE.match(v) for v in distinct):
        return "date", "every value in the first rows is an ISO date"
    if len(distinct) == 2 and {v.strip().lower() for v in distinct} in BOOLEAN_WORDS:
        return "boolean", f"two values ({', '.join(sorted(distinct))})"
    words = float(np.mean([len(v.split()) for v in values]))
    if words >= TEXT_WORDS:
        return "text", f"values average {words:.1f} words (prose, not categories)"
    if len(distinct) > max_levels:
        return "text", (f"{len(distinct):,} distinct values among {len(values):,} in the first rows, over the "
                        f"vocabulary bound of {max_levels:,}")
    if len(values) >= MIN_ROWS and len(distinct) > TEXT_SHARE * len(values):
        return "text", (f"{len(distinct):,} distinct values in {len(values):,} rows: they grow with the row "
                        "count (names, free text, keys)")
    return "categorical", f"{_count(len(distinct), 'distinct value')} among {len(values):,} values in the first rows"


def vocabulary(column, max_levels: int = MAX_LEVELS) -> dict[str, Any]:
    """The bounded vocabulary of a categorical or boolean column's first rows: levels by frequency (then
    value), codes 0..size-1; beyond ``max_levels`` the rarest share one ``other`` code; ``unseen`` is the
    code of a value never seen and ``missing`` (the last) the code of a null. ``levels`` is a preview of at
    most :data:`PREVIEW` (:func:`codebook` maps every value)."""
    values = _values(column)
    return _described(*_levels(values, max_levels), max_levels, "sampled_rows", len(values))


def _described(uniq, counts, order, kept, max_levels: int, rows_key: str, rows: int) -> dict[str, Any]:
    """The vocabulary's record from :func:`_levels`: size, a preview of the levels, the other, unseen and
    missing codes, and the rows it was taken from (under ``rows_key``)."""
    size, folded = len(kept), len(order) - len(kept)
    out: dict[str, Any] = {
        "size": size,
        "levels": [{"value": str(uniq[i]), "rows": int(counts[i])} for i in kept[:PREVIEW]],
        rows_key: rows,
        "max_levels": max_levels,
    }
    if folded:
        out["other"] = {"code": size, "levels": folded, "rows": int(sum(int(counts[i]) for i in order[size:]))}
    out["unseen_code"] = size + (1 if folded else 0)
    out["missing_code"] = out["unseen_code"] + 1
    return out


def _codes(uniq, order, kept) -> dict[str, int]:
    """Every value as text -> its code: the kept levels 0..size-1, the rarer ones the ``other`` code."""
    codes = {str(uniq[i]): code for code, i in enumerate(kept)}
    codes.update({str(uniq[i]): len(kept) for i in order[len(kept):]})
    return codes


def _levels(values: list, max_levels: int, counted: dict[str, int] | None = None):
    """(distinct values as text, their counts, indices by frequency then value, the indices that keep a code),
    from the values, or from ``counted`` (value as text -> rows)."""
    if counted is not None:
        uniq = np.array(list(counted), dtype=object)
        counts = np.fromiter(counted.values(), dtype=np.int64, count=len(counted))
    else:
        uniq, counts = np.unique(np.array([str(v) for v in values], dtype=object), return_counts=True) \
            if values else (np.array([], dtype=object), np.array([], dtype=np.int64))
    order = sorted(range(len(uniq)), key=lambda i: (-int(counts[i]), str(uniq[i])))
    kept = order[:max_levels] if len(order) <= max_levels else order[:max_levels - 1]
    return uniq, counts, order, kept


def counted_vocabulary(kind: ColumnKind, counted: dict[str, int], max_levels: int) -> ColumnKind:
    """``kind`` with its vocabulary and codebook counted over a run's clean rows (``counted``: value as text
    -> clean rows holding it, :mod:`sanitizer.runs.level_counts`) instead of the first rows: the same
    structure, ``counted_rows`` for ``sampled_rows``."""
    uniq, counts, order, kept = _levels([], max_levels, counted)
    vocab = _described(uniq, counts, order, kept, max_levels, "counted_rows", int(counts.sum()))
    return replace(kind, vocabulary=vocab, codes=_codes(uniq, order, kept))


def codebook(column, max_levels: int = MAX_LEVELS) -> dict[str, int]:
    """Every value of a categorical or boolean column's first rows (as text, ``str(value)``) -> its code in
    :func:`vocabulary`: the kept levels 0..size-1, the rarer ones the ``other`` code. The full mapping
    (``vocabulary`` previews only :data:`PREVIEW` levels) that the manifest hands to training."""
    uniq, _, order, kept = _levels(_values(column), max_levels)
    return _codes(uniq, order, kept)


def date_range(column) -> dict[str, str] | None:
    """The earliest and latest value in the first rows (ISO text), or None when none parse."""
    values = _values(column)
    if not values:
        return None
    try:
        if isinstance(values[0], str):
            import pandas as pd

            parsed = pd.to_datetime(pd.Series(values), errors="coerce", format="ISO8601").dropna()
            if parsed.empty:
                return None
            return {"min": parsed.min().isoformat(), "max": parsed.max().isoformat()}
        lo, hi = min(values), max(values)
        return {"min": lo.isoformat(), "max": hi.isoformat()}
    except (TypeError, ValueError, AttributeError):
        return None


def kind_of_type(t: pa.DataType) -> str | None:
    """The kind the Arrow type alone decides, or None when the first rows must (text)."""
    if pa.types.is_dictionary(t):
        return "categorical"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_temporal(t):
        return "date"
    return None


@dataclass(frozen=True)
class ColumnKind:
    """One input column's kind: ``declared`` when the config or a flag named it; ``judged`` when the
    detectors read it; ``detail`` how the kind was decided; ``vocabulary`` (categorical, boolean) and
    ``range`` (date) from the first rows."""

    name: str
    kind: str
    judged: bool
    declared: bool = False
    detail: str = ""
    vocabulary: dict[str, Any] | None = None
    range: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, int] | None = field(default=None, repr=False)
    """Categorical and boolean: every value of the first rows -> its code (:func:`codebook`); not in
    provenance (which previews the levels), written whole into the manifest."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "judged": self.judged,
                               "declared": self.declared, "detail": self.detail}
        if self.vocabulary is not None:
            out["vocabulary"] = self.vocabulary
        if self.range is not None:
            out["range"] = self.range
        out.update(self.extra)
        return out


def parse_declared(raw: Any, source: str = "columns") -> dict[str, str]:
    """``{name: kind}`` from the config's mapping or ``name=kind`` strings; ValueError naming what is wrong."""
    if raw is None:
        return {}
    if isinstance(raw, (list, tuple)):
        pairs: dict[str, str] = {}
        for item in raw:
            name, sep, kind = str(item).rpartition("=")
            if not sep or not name.strip() or not kind.strip():
                raise ValueError(f"{source}: {item!r} is not NAME=KIND (e.g. Island=categorical)")
            pairs[name.strip()] = kind.strip()
        raw = pairs
    if not isinstance(raw, dict):
        raise ValueError(f"{source} must be a mapping of column name to kind, got {raw!r}")
    out = {}
    for name, kind in raw.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{source}: column names must be non-empty strings, got {name!r}")
        if kind not in DECLARABLE:
            extra = " (the label's kind is set by label_column)" if kind == "label" else ""
            raise ValueError(f"{source}.{name}: kind must be one of {', '.join(DECLARABLE)}, got {kind!r}{extra}")
        out[name] = kind
    return out


def group_by_kind(kinds: list[dict[str, Any]], judged: bool, id_column: str = "") -> dict[str, list[str]]:
    """Kind -> column names, judged or not (the label and the id left out), from provenance's
    ``columns.kinds``: kinds in :data:`KINDS` order, names in input order."""
    groups: dict[str, list[str]] = {}
    for k in kinds:
        if bool(k.get("judged")) == judged and k.get("kind") != "label" and k.get("name") != id_column:
            groups.setdefault(str(k.get("kind", "")), []).append(str(k.get("name", "")))
    rank = {kind: i for i, kind in enumerate(KINDS)}
    return dict(sorted(groups.items(), key=lambda kv: rank.get(kv[0], len(KINDS))))
