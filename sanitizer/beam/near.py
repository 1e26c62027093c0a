"""Near copies in the duplicates stage: band keys per record, candidate pairs per key bucket, confirmation
of the candidates only.

::

    HashRows ─bands─► GroupByKey((source, key mod BUCKETS)) ─► pairs ─► CombineGlobally ─► Candidates ──┐
    ReadForNear ─► NearPayload (candidate records only: signature, shifted hashes, vector) ─► Combine ──┤
                         confirm, group, decide (records held as exact copies left out) ─► near Verdicts ◄┘

A record's band keys are a few 64-bit numbers per source (text: LSH bands of its MinHash; image: the bands of
its nine shifted pHashes; vector: Euclidean LSH bands), so the shuffle carries those and the record keys, never
the texts, images or vectors. Only the records that share a band key with another are read a second time
for what confirms a pair; a data set without near copies sends almost nothing there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from sanitizer.data.batch import KEY_COLUMN, in_sorted
from sanitizer.detectors.duplicates import near
from sanitizer.detectors.duplicates.groups import NEAR_DUPLICATE, Judge, Verdicts
from sanitizer.representations.media_columns import ImageValues, TextValues

BUCKETS = 64


@dataclass(frozen=True)
class Source:
    kind: str  # near.TEXT, near.IMAGE or near.VECTOR
    column: str | None  # the text or image column; None for the numeric vector
    encoder: Any = None

    @property
    def name(self) -> str:
        return self.kind if self.column is None else f"{self.kind}:{self.column}"


def sources_of(plan) -> list[Source]:
    """What near copies are looked for in: every judged text and image column, and the numeric features."""
    out = [Source(near.TEXT, e.name, e) for e in plan.encoders if isinstance(e, TextValues)]
    out += [Source(near.IMAGE, e.name, e) for e in plan.encoders if isinstance(e, ImageValues)]
    if plan.features:
        out.append(Source(near.VECTOR, None))
    return out


def _numbers(column: pa.Array, coerce: bool) -> np.ndarray:
    if coerce or not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                      or pa.types.is_boolean(column.type) or pa.types.is_decimal(column.type)):
        import pandas as pd

        return pd.to_numeric(pd.Series(column.to_pylist(), dtype=object), errors="coerce").to_numpy(np.float64)
    return np.array(column.cast(pa.float64(), safe=False).fill_null(np.nan).to_numpy(zero_copy_only=False),
                    copy=True)


def vectors_of(table: pa.Table, plan) -> tuple[np.ndarray, np.ndarray]:
    """(keys, X): every record's numeric features (and embedding) as float64, NaN where missing or unreadable."""
    keys = table.column(KEY_COLUMN).to_numpy()
    n = len(keys)
    columns = list(plan.features) + ([plan.embedding] if plan.embedding is not None else [])
    X = np.empty((n, sum(fc.width if fc.is_list else 1 for fc in columns)), order="F")  # filled column by column
    at = 0
    for fc in columns:
        column = table.column(fc.name).combine_chunks()
        if not fc.is_list:
            X[:, at] = _numbers(column, fc.coerce)
            at += 1
            continue
        nulls = column.is_null().to_numpy(zero_copy_only=False)
        if isinstance(column, pa.FixedSizeListArray):
            values = column.values.slice(column.offset * fc.width, n * fc.width)
            block = _numbers(values, False).reshape(n, fc.width)
        else:  # a variable-length list read as a vector: rows of another length are missing
            block = np.full((n, fc.width), np.nan)
            for i, row in enumerate(column.to_pylist()):
                if row is not None and len(row) == fc.width:
                    block[i] = np.asarray(row, dtype=np.float64)
        block[nulls] = np.nan
        X[:, at:at + fc.width] = block
        at += fc.width
    return keys, X


def signatures(source: Source, table: pa.Table, plan, space, seed: int,
               confirming: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(keys, payload) of every record that has one: text signatures, nine shifted image hashes (and the
    pixels, when ``confirming``), standardised vectors."""
    keys = table.column(KEY_COLUMN).to_numpy()
    if source.kind == near.TEXT:
        sig = near.text_signatures(source.encoder.encode(table.column(source.column)), seed)
        has = sig[:, 0] != near.minhash.EMPTY
        return keys[has], sig[has]
    if source.kind == near.IMAGE:
        pixels, problems = source.encoder.encode_checked(table.column(source.column))
        ok = np.ones(len(keys), dtype=bool)
        ok[list(problems)] = False
        return keys[ok], near.image_payload(pixels[ok], with_pixels=confirming)
    if space is None or not space.judged:
        return keys[:0], np.zeros((0, 0))
    vkeys, X = vectors_of(table, plan)
    return vkeys, space.standardise(X)


def rest_columns(plan, columns: list[str]) -> list[str]:
    """The content columns besides the numeric features: records are near copies by their vectors only
    when they are equal in these."""
    vector = {fc.name for fc in plan.features} | ({plan.embedding.name} if plan.embedding is not None else set())
    return [c for c in columns if c not in vector]


def band_parts(table: pa.Table, plan, sources: list[Source], space, seed: int, rest: np.ndarray | None = None,
               records: int = 0):
    """((source index, bucket), (band keys, record keys)) for every source of one batch; ``rest``: the hash
    of each record's content besides its vector (:func:`rest_columns`)."""
    for s, source in enumerate(sources):
        keys, payload = signatures(source, table, plan, space, seed, confirming=False)
        if len(keys) == 0:
            continue
        if source.kind == near.TEXT:
            bands = near.text_keys(payload, records)
        elif source.kind == near.IMAGE:
            bands = near.image_keys(payload)
        else:
            bands = near.vector_keys(payload, seed, space.radius, rest)
        flat = bands.reshape(-1)
        owners = np.repeat(keys, bands.shape[1])
        valid = flat != near.minhash.NO_KEY
        flat, owners = flat[valid], owners[valid]
        bucket = (flat % np.uint64(BUCKETS)).astype(np.uint8)
        order = np.argsort(bucket, kind="stable")  # a radix sort on one byte (BUCKETS <= 256)
        edges = np.flatnonzero(np.diff(bucket[order])) + 1
        for rows in np.split(order, edges):
            if len(rows):
                yield (s, int(bucket[rows[0]])), (flat[rows], owners[rows])


def pairs_of(item) -> list[tuple[int, np.ndarray]]:
    """The candidate pairs of one bucket of band keys (:func:`near.pairs_from_keys`), from the entries whose
    band key another entry holds too: most band keys are one record's, and only shared ones make pairs."""
    (s, _), parts = item
    parts = list(parts)
    bands, owners = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    order = np.argsort(bands)
    ordered = bands[order]
    same = ordered[1:] == ordered[:-1]
    shared = np.zeros(len(bands), dtype=bool)
    shared[1:] = same
    shared[:-1] |= same
    shared = order[shared]  # the entries whose band key another entry holds
    pairs = near.pairs_from_keys(bands[shared], owners[shared])
    return [(s, pairs)] if len(pairs) else []


def merge_pairs(items) -> dict[int, np.ndarray]:
    out: dict[int, list] = {}
    for item in items:
        for s, pairs in (item.items() if isinstance(item, dict) else [item]):
            out.setdefault(s, []).append(pairs)
    return {s: np.unique(np.concatenate(p), axis=0) for s, p in out.items()}


def fit_space(X: np.ndarray, records: int, params):
    if X.ndim != 2 or X.shape[1] == 0:
        return near.VectorSpace(np.zeros(0), np.ones(0), 0.0, 0.0, 0.0, 0.0, "no numeric features")
    return near.fit_vectors(X, records, params.vector_ratio, params.chance_max)


@dataclass
class NearRows:
    """The candidate records of one or more batches: per source, their keys and payloads; per record, its
    rank, label, id and whether it is a holdout record."""

    keys: list = field(default_factory=list)
    rank: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    holdout: list = field(default_factory=list)
    payload: dict = field(default_factory=dict)  # source index -> list of (keys, payload)

    def without(self, held: Verdicts) -> "NearRows":
        """These records but those ``held`` (as exact copies: an exact copy is no near copy of another)."""
        if not len(held.keys):
            return self
        out = NearRows()
        for i, keys in enumerate(self.keys):
            keep = held.lookup(keys) < 0
            if keep.any():
                for name in ("keys", "rank", "labels", "ids", "holdout"):
                    getattr(out, name).append(np.asarray(getattr(self, name)[i])[keep])
        for s, values in self.payload.items():
            for keys, payload in values:
                keep = held.lookup(keys) < 0
                if keep.any():
                    out.payload.setdefault(s, []).append((keys[keep], payload[keep]))
        return out

    @staticmethod
    def merge(parts) -> "NearRows":
        out = NearRows()
        for p in parts:
            for name in ("keys", "rank", "labels", "ids", "holdout"):
                getattr(out, name).extend(getattr(p, name))
            for s, values in p.payload.items():
                out.payload.setdefault(s, []).extend(values)
        return out


def candidate_keys(candidates: dict[int, np.ndarray]) -> np.ndarray:
    """The sorted keys of the records in any candidate pair."""
    if not candidates:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(np.concatenate([p.reshape(-1) for p in candidates.values()]))


def payload_rows(table: pa.Table, plan, sources, space, seed: int, candidates: dict[int, np.ndarray],
                 rank_of, labels_of, ids_of, holdout: bool, wanted: np.ndarray | None = None) -> NearRows:
    """The records of ``table`` that are in a candidate pair (``wanted``: their :func:`candidate_keys`, when
    already worked out)."""
    out = NearRows()
    keys = table.column(KEY_COLUMN).to_numpy()
    take = in_sorted(keys, candidate_keys(candidates) if wanted is None else wanted)
    if not take.any():
        return out
    rows = np.flatnonzero(take)
    sub = table.take(pa.array(rows))
    sub_keys = keys[rows]
    out.keys.append(sub_keys)
    out.rank.append(rank_of(sub_keys, sub))
    out.labels.append(labels_of(sub))
    out.ids.append(ids_of(sub))
    out.holdout.append(np.full(len(rows), holdout))
    for s, source in enumerate(sources):
        if s not in candidates:
            continue
        k, payload = signatures(source, sub, plan, space, seed)
        if len(k):
            out.payload.setdefault(s, []).append((k, payload))
    return out


THRESHOLDS = {near.TEXT: "text_jaccard", near.IMAGE: "image_bits"}


def decide_near(rows: NearRows, candidates: dict[int, np.ndarray], sources, space, params,
                records: int = 0, held: Verdicts | None = None) -> Verdicts:
    """Confirm the candidate pairs, join them into groups and decide each group; the records ``held`` as
    exact copies take no part. A source where more than
    :data:`~sanitizer.detectors.duplicates.near.NATURAL` of the ``records`` have a near copy (templated
    captions, a photo series) is not judged: near-equal records are how that data is written."""
    if held is not None:
        rows = rows.without(held)
    if not rows.keys:
        return Verdicts()
    keys = np.concatenate(rows.keys)
    keys, first = np.unique(keys, return_index=True)  # a holdout and a training record never share a key
    rank = np.concatenate(rows.rank)[first]
    labels = np.concatenate([np.asarray(x, dtype=object) for x in rows.labels])[first]
    ids = np.concatenate([np.asarray(x, dtype=object) for x in rows.ids])[first]
    holdout = np.concatenate(rows.holdout)[first]
    confirmed, similarity, unjudged = [], {}, {}
    for s, pairs in candidates.items():
        parts = rows.payload.get(s)
        if not parts:
            continue
        pk = np.concatenate([p[0] for p in parts])
        pk, at = np.unique(pk, return_index=True)
        payload = np.concatenate([p[1] for p in parts])[at]
        ia, ib = np.searchsorted(pk, pairs[:, 0]), np.searchsorted(pk, pairs[:, 1])
        ia, ib = np.minimum(ia, len(pk) - 1), np.minimum(ib, len(pk) - 1)
        present = (pk[ia] == pairs[:, 0]) & (pk[ib] == pairs[:, 1])
        pairs, ia, ib = pairs[present], ia[present], ib[present]
        kind = sources[s].kind
        threshold = space.radius if kind == near.VECTOR else getattr(params, THRESHOLDS[kind])
        ok, value = near.confirm(kind, payload, ia, ib, threshold)
        involved = len(np.unique(pairs[ok]))
        if records and involved > near.NATURAL * records:
            unjudged[sources[s].name] = involved
            continue
        for (a, b), v in zip(pairs[ok].tolist(), value[ok].tolist()):
            text = _similarity(kind, v, space)
            for k in (a, b):
                similarity.setdefault(k, text)
        confirmed.append(pairs[ok])
    pairs = np.concatenate(confirmed) if confirmed else np.zeros((0, 2), dtype=np.uint64)
    judge = Judge(keys, rank, labels, ids, holdout, params.chance_max, copy_code=NEAR_DUPLICATE)
    groups: dict[int, list[int]] = {}
    rank_of = {int(k): int(r) for k, r in zip(keys.tolist(), rank.tolist())}
    for k, root in near.leaders(pairs, rank_of).items():
        groups.setdefault(root, []).append(int(np.searchsorted(keys, np.uint64(k))))
    index_similarity = {int(np.searchsorted(keys, np.uint64(k))): v for k, v in similarity.items()}
    for root, members in sorted(groups.items()):
        judge.group(np.array(members), root, similarity=index_similarity)
    verdicts = judge.verdicts()
    renamed = {("near_" + k if k in ("groups", "conflict_groups", "tied_groups", "chance_groups", "chance_rows")
                else k): v for k, v in verdicts.stats.items()}
    renamed["near_candidate_pairs"] = int(sum(len(p) for p in candidates.values()))
    renamed["near_confirmed_pairs"] = int(len(pairs))
    for name, count in unjudged.items():  # summed like every count when verdicts merge
        renamed[f"near_not_judged:{name}"] = int(count)
    return Verdicts(**{f: getattr(verdicts, f) for f in ("keys", "code", "group", "size", "other", "consensus",
                                                          "votes", "expected")}, stats=renamed)


def _similarity(kind: str, value: float, space) -> str:
    if kind == near.TEXT:
        return f"text Jaccard {value:.2f}"
    if kind == near.IMAGE:
        return f"image hashes {int(value)} of 63 bits apart"
    return f"distance {value:.3g} (near below {space.radius:.3g})"
