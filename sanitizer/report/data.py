"""Read a run's quarantine shards into what the report shows.

One streaming pass over ``OUT/quarantine/*.parquet`` (record batches, only the
columns the report needs) collects:

- every quarantined row's detector scores, for the score histograms;
- the given/suggested label pairs of the detectors that suggest a label (their
  ``label_matrix`` hook), for the confusion matrix;
- per reason code, how many quarantined rows carry it;
- the ``limit`` rows to show in the suspects table (most reasons first, then
  the highest score relative to its threshold), with their evidence summarised
  and, when a feature column is a square image, a small thumbnail.

Then :func:`sanitizer.report.neighbours.lookup` fetches the reference rows
the shown rows' evidence names (one more pass, over the clean and quarantine
shards), for the page to show each suspect beside them: as thumbnails (same
size, same brightness scale) or, for tabular data, as the values of its columns
(numbers, and categorical, boolean and date values as written) beside their typical values
(:mod:`sanitizer.report.tabular`). Image and text columns are shown from their stored values, fetched in
one more pass (:mod:`sanitizer.report.media`).
"""

from __future__ import annotations

import heapq
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sanitizer.data.layout import CODES_COLUMN, CONTENT_COLUMN, REASONS_COLUMN, SCORE_PREFIX
from sanitizer.data.reasons import parse as parse_reasons
from sanitizer.runs.record import RunRecord
from sanitizer.report import neighbours as nb
from sanitizer.report import written
from sanitizer.report.tabular import tabular_view
from sanitizer.report.evidence import detector_for, named_features, referenced, summarise_reasons, trigger_words
from sanitizer.report.media import show_media
from sanitizer.report.representation_words import media_kinds
from sanitizer.runs.decisions import ROW_CHECK_DETECTOR

BATCH_ROWS = 8192
MAX_THUMB_SIDE = 32  # larger images are area-averaged down to at most this side
THUMB_BUDGET_BYTES = 1_600_000  # raw thumbnail bytes for all shown rows together (base64 adds a third)
MAX_DISTINCT_THRESHOLDS = 64


@dataclass
class DetectorScores:
    name: str
    flagged: list[np.ndarray] = field(default_factory=list)  # scores of rows this detector flagged
    other: list[np.ndarray] = field(default_factory=list)  # scores of rows quarantined for other reasons
    not_scored: int = 0  # quarantined rows without a finite score (invalid rows, detector skipped)
    thresholds: set = field(default_factory=set)  # thresholds seen in this detector's reasons

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        def cat(parts):
            return np.concatenate(parts) if parts else np.zeros(0)

        return cat(self.flagged), cat(self.other)


@dataclass
class Thumbs:
    column: str
    side: int  # side of the source image
    shown_side: int  # side of the thumbnails in the report (<= side)
    lo: float = 0.0
    hi: float = 1.0
    rows_with_thumbnail: int = 0


@dataclass
class QuarantineData:
    total_rows: int
    id_column: str
    label_column: str
    detectors: list[str]
    rows: list[dict[str, Any]]  # the rows shown, ranked
    code_counts: Counter
    scores: dict[str, DetectorScores]
    flip_pairs: Counter  # (given, suggested) -> rows, from the detectors whose ``label_matrix`` hook is on
    thumbs: Thumbs | None
    files: list[str]
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    """id -> {label, px (thumbnail) | feat + v (tabular values), quarantined (when it is itself held)} of
    every referenced row found in the output; ids not found are absent."""
    features: dict[str, Any] | None = None  # the tabular view: {names, typical, sample_rows, sample_from}
    references_skipped: int = 0  # referenced ids past nb.MAX_REFERENCE_IDS, not looked up
    reference_shards_unreadable: int = 0  # output shards the lookup could not read (their rows: not found)
    flip_detectors: list[str] = field(default_factory=list)  # the detectors flip_pairs counts, sorted
    media: dict[str, Any] | None = None  # image thumbnails and text snippets (sanitizer.report.media)


# --------------------------------------------------------------------------- file access


quarantine_files = nb.quarantine_files  # where the shards are and how they open: sanitizer.report.neighbours


# --------------------------------------------------------------------------- helpers


def _finite(value) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _square_side(width: int) -> int | None:
    side = math.isqrt(width)
    return side if side >= 2 and side * side == width else None


def find_thumbnail_column(schema: pa.Schema, feature_columns: list[str]) -> tuple[str, int] | None:
    """The first feature column that is a fixed-size numeric list of square length (an image)."""
    names = [c for c in feature_columns if c in schema.names] or list(schema.names)
    for name in names:
        t = schema.field(name).type
        if pa.types.is_fixed_size_list(t) and (
            pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)
        ):
            side = _square_side(t.list_size)
            if side is not None:
                return name, side
    return None


def _area_matrix(side: int, target: int) -> np.ndarray:
    """(target, side) matrix averaging the source pixels that fall in each target pixel."""
    bins = np.minimum((np.arange(side) * target) // side, target - 1)
    m = np.zeros((target, side))
    m[bins, np.arange(side)] = 1.0
    return m / m.sum(axis=1, keepdims=True)


def _thumb_side(side: int, expected_rows: int) -> int:
    t = min(side, MAX_THUMB_SIDE)
    while t > 8 and expected_rows * t * t > THUMB_BUDGET_BYTES:
        t -= 1
    return t


def _images(column: pa.ChunkedArray | pa.Array, side: int, target: int) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (n, target, target), present bool (n,)) from a fixed-size list column."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    present = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = arr.flatten() if arr.null_count == 0 else arr.fill_null([0] * (side * side)).flatten()
    flat = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    if len(flat) != n * side * side:  # fill_null could not fill: fall back row by row
        rows = arr.to_pylist()
        flat = np.array([v if v is not None else [0.0] * (side * side) for v in rows], dtype=np.float64).ravel()
    flat = np.where(np.isfinite(flat), flat, np.nan)
    imgs = flat.reshape(n, side, side)
    if target != side:
        m = _area_matrix(side, target)
        imgs = np.matmul(np.matmul(m, np.nan_to_num(imgs)), m.T)
    return imgs.astype(np.float32), present


# --------------------------------------------------------------------------- ranking


def _rank_key(codes: list[str], reasons: list[dict]) -> tuple[int, float]:
    """More reasons first; then how far the strongest score is past its threshold."""
    best = 0.0
    for r in reasons:
        s, t = _finite(r.get("score")), _finite(r.get("threshold"))
        if s is None or t is None:
            continue
        ratio = s / t if t > 0 else (1.0 + s - t)
        best = max(best, ratio)
    if any(str(c).startswith(("invalid:", "validation:", "review:")) for c in codes):
        best = max(best, 1e6)  # failed a hard check, or a reviewer confirmed it: certain
    return len(set(codes)), best


# --------------------------------------------------------------------------- the pass


def load_quarantine(out_dir: str, provenance: RunRecord | dict, limit: int) -> QuarantineData:
    record = RunRecord.coerce(provenance)
    id_column = record.columns.id or "sanitizer_id"
    label_column = record.columns.label or "label"
    feature_columns = list(record.columns.features)
    files = quarantine_files(out_dir, record)
    expected = record.counts.quarantined

    detectors: list[str] = []
    scores: dict[str, DetectorScores] = {}
    code_counts: Counter = Counter()
    flip_pairs: Counter = Counter()
    flip_detectors: set[str] = set()
    heap: list = []  # (rank key..., -seq, row) min-heap of the best ``limit`` rows
    thumbs: Thumbs | None = None
    layout: nb.FeatureLayout | None = None
    total = 0
    seq = 0
    media = media_kinds(record.columns.kinds)

    for path in files:
        with nb.open_shard(path) as fh:
            pf = pq.ParquetFile(fh)
            schema = pf.schema_arrow
            if not detectors:
                detectors = [n[len(SCORE_PREFIX):] for n in schema.names if n.startswith(SCORE_PREFIX)]
                scores = {d: DetectorScores(d) for d in detectors}
            if thumbs is None:
                found = find_thumbnail_column(schema, feature_columns)
                if found:
                    thumbs = Thumbs(found[0], found[1], _thumb_side(found[1], min(limit, max(expected, 1))))
                    layout = None
                elif layout is None and path == files[0]:  # no image column: the tabular view
                    layout = nb.feature_layout(schema, feature_columns, (id_column, label_column),
                                               record.columns.kinds)
            wanted = [id_column, label_column, REASONS_COLUMN, CODES_COLUMN, CONTENT_COLUMN]
            wanted += [SCORE_PREFIX + d for d in detectors]
            if thumbs is not None:
                wanted.append(thumbs.column)
            wanted += layout.read() if layout is not None else []
            wanted = [c for c in dict.fromkeys(wanted) if c in schema.names]
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
                seq = _consume(batch, seq, id_column, label_column, detectors, scores, code_counts, flip_pairs,
                               flip_detectors, heap, thumbs, limit, layout, media)
                total += batch.num_rows

    ranked = [entry[-1] for entry in sorted(heap, reverse=True)]
    for rank, row in enumerate(ranked):
        row["rank"] = rank
    data = QuarantineData(total, id_column, label_column, detectors, ranked, code_counts, scores, flip_pairs,
                          thumbs, files, flip_detectors=sorted(flip_detectors))
    if ranked:
        _references(out_dir, record, data, layout)
    for row in ranked:  # features of a tabular view given up (an image column in a later shard)
        for key in ("_x", "_t", "_d", "_named"):
            row.pop(key, None)
    if thumbs is not None:
        _finish_thumbnails(ranked, thumbs, list(data.references.values()))
    show_media(out_dir, record, data)
    return data


def _references(out_dir: str, record: RunRecord, q: QuarantineData, layout: nb.FeatureLayout | None) -> None:
    """Look up the rows the shown rows' evidence names (see :mod:`sanitizer.report.neighbours`) into
    ``q.references``. Thumbnails shrink (to no less than 8 pixels a side) so that the suspects' and the
    references' together fit THUMB_BUDGET_BYTES; all keep one size."""
    ids, q.references_skipped = nb.collect_ids(q.rows)
    thumbs = q.thumbs
    columns = [thumbs.column] if thumbs is not None else layout.read() if layout else []
    found = nb.lookup(nb.run_files(out_dir, record), q.id_column, q.label_column, columns, ids, layout)
    table, q.reference_shards_unreadable = found.table, found.shards_unreadable
    q.references = nb.reference_entries(found, q.label_column)
    if thumbs is not None and found.found and thumbs.column in table.schema.names:
        shown = sum("_img" in r for r in q.rows)
        side = min(thumbs.shown_side, _thumb_side(thumbs.side, shown + len(found.found)))
        if side < thumbs.shown_side:  # shrink the suspects' thumbnails to the common, smaller size
            m = _area_matrix(thumbs.shown_side, side)
            for r in q.rows:
                if "_img" in r:
                    r["_img"] = (m @ r["_img"].astype(np.float64) @ m.T).astype(np.float32)
            thumbs.shown_side = side
        rows = sorted(found.found.items(), key=lambda kv: kv[1])
        for start in range(0, len(rows), BATCH_ROWS):
            part = rows[start:start + BATCH_ROWS]
            take = pa.array([i for _, i in part], pa.int64())
            imgs, present = _images(table[thumbs.column].take(take), thumbs.side, side)
            for k, (ident, _) in enumerate(part):
                if present[k]:
                    q.references[ident]["_img"] = imgs[k]
    elif layout is not None:
        found_rows = {}
        if table is not None:
            X, (texts, days) = nb.feature_matrix(table, layout), written.values(table, layout.written)
            found_rows = {ident: (X[i], texts[i], days[i]) for ident, i in found.found.items()}
        kinds = {str(k.get("name")): str(k.get("kind")) for k in record.columns.kinds}
        q.features = tabular_view(q.rows, q.references, found_rows, found.sample, found.sample_written, layout,
                                  kinds)
        q.features["sample_rows"] = 0 if found.sample is None else len(found.sample)
        q.features["sample_from"] = found.sample_from


def _consume(batch: pa.RecordBatch, seq: int, id_column: str, label_column: str, detectors: list[str],
             scores: dict[str, DetectorScores], code_counts: Counter, flip_pairs: Counter, flip_detectors: set[str],
             heap: list, thumbs: Thumbs | None, limit: int, layout: nb.FeatureLayout | None = None,
             media: dict[str, str] | None = None) -> int:
    names = batch.schema.names
    n = batch.num_rows

    def col(name):
        return batch.column(names.index(name)) if name in names else None

    ids = nb.id_texts(col(id_column)) if col(id_column) is not None else [None] * n
    shas = col(CONTENT_COLUMN).to_pylist() if col(CONTENT_COLUMN) is not None else [None] * n
    X = nb.feature_matrix(batch, layout) if layout is not None else None
    texts, days = written.values(batch, layout.written) if layout is not None else (None, None)
    labels = col(label_column).to_pylist() if col(label_column) is not None else [None] * n
    raw_reasons = col(REASONS_COLUMN).to_pylist() if col(REASONS_COLUMN) is not None else [None] * n
    raw_codes = col(CODES_COLUMN).to_pylist() if col(CODES_COLUMN) is not None else [None] * n
    score_arrays = {}
    for d in detectors:
        c = col(SCORE_PREFIX + d)
        score_arrays[d] = (
            np.asarray(c.to_numpy(zero_copy_only=False), dtype=np.float64) if c is not None else np.full(n, np.nan)
        )
    images = present = None
    if thumbs is not None and col(thumbs.column) is not None:
        images, present = _images(col(thumbs.column), thumbs.side, thumbs.shown_side)

    parsed: list[list[dict]] = []
    codes_per_row: list[list[str]] = []
    for i in range(n):
        try:
            if isinstance(raw_reasons[i], list):  # the list<struct> column (sanitizer.data.reasons)
                reasons = parse_reasons(raw_reasons[i])
            else:  # runs published before it: one JSON string per row
                reasons = json.loads(raw_reasons[i]) if raw_reasons[i] else []
            if not isinstance(reasons, list):
                reasons = [reasons]
        except (TypeError, ValueError):
            reasons = [{"code": "unreadable_reasons", "evidence": {"raw": str(raw_reasons[i])[:200]}}]
        reasons = [r if isinstance(r, dict) else {"code": str(r)} for r in reasons]
        codes = [str(c) for c in (raw_codes[i] or [])] or [str(r.get("code", "?")) for r in reasons]
        parsed.append(reasons)
        codes_per_row.append(codes)
        code_counts.update(set(codes))
        for r in reasons:
            det = r.get("detector") or r.get("code")
            if det in scores and _finite(r.get("threshold")) is not None:
                ts = scores[det].thresholds
                if len(ts) < MAX_DISTINCT_THRESHOLDS:
                    ts.add(round(float(r["threshold"]), 6))
            hooks = detector_for(str(det))
            if hooks is not None and hooks.label_matrix:
                ev = r.get("evidence") or {}
                given = ev.get("given_label", labels[i])
                suggested = ev.get("suggested_label")
                if suggested is not None:
                    flip_pairs[(nb.text(given), nb.text(suggested))] += 1
                    flip_detectors.add(str(det))

    for d in detectors:
        values = score_arrays[d]
        finite = np.isfinite(values)
        mine = np.array([d in c for c in codes_per_row], dtype=bool)
        s = scores[d]
        s.flagged.append(values[finite & mine])
        s.other.append(values[finite & ~mine])
        s.not_scored += int((~finite).sum())

    for i in range(n):
        key = _rank_key(codes_per_row[i], parsed[i])
        entry_key = (key[0], key[1], -seq)
        seq += 1
        if len(heap) >= limit and entry_key <= heap[0][:3]:
            continue
        row = {
            "id": ids[i],
            "label": nb.text(labels[i]),
            "codes": codes_per_row[i],
            "scores": {d: _finite(score_arrays[d][i]) for d in detectors},
            "flagged_by": sorted({str(r.get("detector")) for r in parsed[i] if r.get("detector")}),
            "evidence": summarise_reasons(parsed[i], media),
            "sha": None if shas[i] is None else str(shas[i]),
            "row_check": any(r.get("detector") == ROW_CHECK_DETECTOR for r in parsed[i]),
            "refs": referenced(parsed[i]),
        }
        if media and trigger_words(parsed[i]):
            row["hw"] = trigger_words(parsed[i])
        if X is not None:
            row["_x"], row["_t"], row["_d"], row["_named"] = X[i], texts[i], days[i], named_features(parsed[i])
        if images is not None and present[i]:
            row["_img"] = images[i]
        entry = (*entry_key, row)
        if len(heap) < limit:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)
    return seq


def _finish_thumbnails(rows: list[dict], thumbs: Thumbs, references: list[dict] = ()) -> None:
    """Scale every shown thumbnail, the suspects' and their references', with one common range (so
    brightness compares across rows), as bytes."""
    import base64

    imgs = [r["_img"] for r in [*rows, *references] if "_img" in r]
    if imgs:
        stack = np.stack(imgs).astype(np.float64)
        finite = stack[np.isfinite(stack)]
        if finite.size:
            lo, hi = (float(v) for v in np.percentile(finite, [0.1, 99.9]))
            if hi <= lo:
                hi = lo + 1.0
            thumbs.lo, thumbs.hi = float(lo), float(hi)
    for k, r in enumerate([*rows, *references]):
        img = r.pop("_img", None)
        if img is None:
            continue
        q = np.clip((np.nan_to_num(img.astype(np.float64), nan=thumbs.lo) - thumbs.lo) / (thumbs.hi - thumbs.lo),
                    0, 1)
        r["px"] = base64.b64encode((q * 255 + 0.5).astype(np.uint8).tobytes()).decode("ascii")
        thumbs.rows_with_thumbnail += k < len(rows)
