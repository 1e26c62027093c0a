"""``feature_collision``: clean-label poisons that sit on top of another class in feature space.

Feature-collision poisons (Poison Frogs; Convex / Bullseye Polytope) carry the
label a human would give them, but are optimised so that the victim model's
embedding of each poison lands on a chosen target from another class. Two
signals, both in the embedding space of :mod:`sanitizer.embeddings`:

**A. Deep k-NN (Peri et al., 2020).** A record is flagged when the plurality
label of its k nearest reference embeddings (never itself) is not its own. The
trap: poisons aimed at one target sit on top of each other, so with a small k
they are each other's nearest neighbours and outvote the target's real
neighbourhood (on digits, 15 poisons at one target: k=10 catches 27%). The
**k rule**: to defend against clusters of up to ``max_cluster`` poisons per
target, use ``k = 2 * max_cluster + 1``. Then the cluster holds at most
``max_cluster`` of the k votes, fewer than half, and the rest come from the
target's true neighbourhood, which carries the target's label. k is capped by
the smallest class's reference rows (a clean record of a small class must be
able to win its own vote); provenance records the k used and why.

**B. Centroid check, across spaces.** Each class's centroid in embedding space
is fitted on the reference (a cluster of poisons barely moves a centroid of
hundreds of rows, whatever its size). A record is flagged when another class's
centroid is clearly closer than its own (distance ratio above
``centroid_ratio``) *while its input-space neighbours agree with its label* -
the signature of a clean-label poison: it looks right to a human and to raw
features, but not to the model. This catches clusters too big for any k.

The score is ``max(1 - agreement, centroid_score)`` in [0, 1], higher = more
suspicious; evidence gives the neighbourhood's majority label, the agreement
fraction, the nearest reference ids and labels, the nearest centroid and the
input-space agreement. Neighbour search is L2 with faiss over a bounded
reference (``reference_size`` sample rows): exact up to 10,000 rows (the default), an
inverted-file index above that (see :mod:`sanitizer.neighbours`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sanitizer.config import check_int, check_number
from sanitizer.detectors.base import Batch, Scores, Skipped, standardise, standardiser
from sanitizer.errors import ConfigError


@dataclass(frozen=True)
class FeatureCollisionParams:
    enabled: bool = True
    embedding_model: str | None = None
    """TorchScript backbone (path or URI); see sanitizer.embeddings."""
    embedding_column: str | None = None
    """A precomputed embedding column (fixed-size list of floats)."""
    max_cluster: int = 25
    """Largest cluster of poisons aimed at one target to defend against; sets k = 2 * max_cluster + 1."""
    k: int = 0
    """Override the k rule (0 = use it)."""
    input_neighbours: int = 10
    centroid_ratio: float = 1.5
    reference_size: int = 10_000
    builtin_epochs: int = 30
    top_neighbours: int = 5

    def validate(self) -> None:
        check_int("detectors.feature_collision.max_cluster", self.max_cluster, low=1, high=10_000)
        check_int("detectors.feature_collision.k", self.k, low=0, high=20_001)
        check_int("detectors.feature_collision.input_neighbours", self.input_neighbours, low=1, high=200)
        check_number("detectors.feature_collision.centroid_ratio", self.centroid_ratio, low=1.0, high=100.0)
        check_int("detectors.feature_collision.reference_size", self.reference_size, low=100, high=2_000_000)
        check_int("detectors.feature_collision.builtin_epochs", self.builtin_epochs, low=1, high=1000)
        check_int("detectors.feature_collision.top_neighbours", self.top_neighbours, low=0, high=50)
        for key in ("embedding_model", "embedding_column"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"detectors.feature_collision.{key} must be a non-empty string, got {value!r}")
        if self.embedding_model and self.embedding_column:
            raise ConfigError(
                "detectors.feature_collision: set embedding_model or embedding_column, not both"
            )


@dataclass(frozen=True)
class FeatureCollisionState:
    params: FeatureCollisionParams
    embedder: Any  # TorchScriptEmbedder, BuiltinEmbedder, or None for a precomputed column
    classes: tuple[str, ...]
    k: int
    emb_index: Any  # NeighbourIndex over the reference embeddings
    input_index: Any  # NeighbourIndex over the standardised reference features
    ref_labels: np.ndarray  # (R,) class index
    ref_keys: np.ndarray  # (R,) uint64, to leave a record out of its own vote
    ref_ids: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    centroids: np.ndarray  # (C, e)
    centroid_scale: np.ndarray  # (e,)
    summary: dict


class FeatureCollisionDetector:
    name: ClassVar[str] = "feature_collision"
    needs: ClassVar[frozenset[str]] = frozenset({"features", "label"})
    internal_threads: ClassVar[bool] = True  # faiss and torch are multi-threaded themselves
    Params = FeatureCollisionParams

    def fit(self, sample: Batch, params: FeatureCollisionParams, seed: int):
        from sanitizer.embeddings import BuiltinEmbedder, TorchScriptEmbedder
        from sanitizer.neighbours import NeighbourIndex

        classes, y = np.unique(sample.labels.astype(str), return_inverse=True)
        if len(classes) < 2:
            return Skipped(f"needs at least two classes in the sample, found {len(classes)}")
        if sample.n < 20:
            return Skipped(f"needs at least 20 valid rows in the sample, got {sample.n}")
        R = min(params.reference_size, sample.n)
        X = sample.X[:R]  # the sample is in random-priority order: a uniform subsample
        y = y[:R]
        if params.embedding_column:
            if sample.embedding is None:
                return Skipped(f"embedding column {params.embedding_column!r} was not provided to the detector")
            embedder, E = None, sample.embedding[:R]
        elif params.embedding_model:
            embedder = TorchScriptEmbedder.open(params.embedding_model, X.shape[1])
            E = embedder.embed(X)
        else:
            embedder = BuiltinEmbedder.train(X, y, seed, epochs=params.builtin_epochs)
            E = embedder.embed(X)
        counts = np.bincount(y, minlength=len(classes))
        wanted = params.k or 2 * params.max_cluster + 1
        smallest = int(counts[counts > 0].min())
        k = int(max(1, min(wanted, smallest - 1 if smallest > 1 else 1, R - 1)))
        mean, scale = standardiser(X)  # robust to a few huge values; never inf/NaN
        centroids = np.stack([E[y == c].mean(axis=0) for c in range(len(classes))])
        centroid_scale = E.std(axis=0)
        centroid_scale = np.where(centroid_scale > 0, centroid_scale, 1.0)
        describe = embedder.describe() if embedder is not None else {
            "source": "column", "column": params.embedding_column, "dim": int(E.shape[1])}
        state = FeatureCollisionState(
            params=params,
            embedder=embedder,
            classes=tuple(str(c) for c in classes),
            k=k,
            emb_index=NeighbourIndex.build(E, seed=seed),
            input_index=NeighbourIndex.build(standardise(X, mean, scale), seed=seed),
            ref_labels=y,
            ref_keys=np.asarray(sample.keys[:R]),
            ref_ids=np.asarray(sample.ids[:R], dtype=object),
            mean=mean,
            scale=scale,
            centroids=centroids,
            centroid_scale=centroid_scale,
            summary={},
        )
        rule = (
            f"k = 2 * max_cluster + 1 = {2 * params.max_cluster + 1}" if not params.k else f"k set to {params.k}"
        )
        if k < wanted:
            rule += f", capped at {k} by the smallest class's reference rows or the reference size"
        summary = {
            "embedding": describe,
            "k": k,
            "k_rule": rule,
            "max_cluster_defended": (k - 1) // 2,
            "reference_rows": R,
            "centroid_ratio": params.centroid_ratio,
            "neighbour_search": state.emb_index.describe(),
        }
        flagged = self.score(
            Batch(sample.X[:R], sample.labels[:R], sample.keys[:R], sample.ids[:R], sample.feature_names,
                  None if sample.embedding is None else sample.embedding[:R]),
            state,
        ).flagged
        summary["flagged_in_reference"] = int(flagged.sum())
        import dataclasses

        return dataclasses.replace(state, summary=summary)

    def score(self, batch: Batch, state: FeatureCollisionState) -> Scores:
        n = batch.n
        if n == 0:
            return Scores(np.zeros(0), np.zeros(0, dtype=bool), 0.5)
        if state.embedder is None:
            if batch.embedding is None:
                raise ConfigError(
                    f"embedding column {state.params.embedding_column!r} is missing from the batch"
                )
            E = batch.embedding
        else:
            E = state.embedder.embed(batch.X)
        index = {c: i for i, c in enumerate(state.classes)}
        codes, uniques = pd.factorize(batch.labels)
        y = np.array([index.get(str(u), -1) for u in uniques] + [-1], dtype=np.int64)[codes]
        known = y >= 0
        yy = np.maximum(y, 0)
        C = len(state.classes)

        emb_nb = _search(state.emb_index, E, state.k, state.ref_keys, batch.keys)
        votes = _votes(state.ref_labels[emb_nb], C)
        agreement = votes[np.arange(n), yy] / max(state.k, 1)
        majority = np.argmax(votes, axis=1)
        deep_knn = known & (votes[np.arange(n), yy] < votes.max(axis=1))

        in_nb = _search(state.input_index, standardise(batch.X, state.mean, state.scale), state.params.input_neighbours,
                        state.ref_keys, batch.keys)
        in_votes = _votes(state.ref_labels[in_nb], C)
        input_agreement = in_votes[np.arange(n), yy] / in_nb.shape[1]

        dist = _centroid_distances(E, state.centroids, state.centroid_scale)
        own = dist[np.arange(n), yy]
        others = dist.copy()
        others[np.arange(n), yy] = np.inf
        nearest_other = others.argmin(axis=1)
        ratio = own / np.maximum(others[np.arange(n), nearest_other], 1e-12)
        centroid_flag = known & (ratio > state.params.centroid_ratio) & (input_agreement >= 0.5)
        centroid_score = ratio / (1.0 + ratio)  # 0.5 where both centroids are equally near

        score = np.where(known, np.maximum(1.0 - agreement, centroid_score), np.nan)
        flagged = deep_knn | centroid_flag
        evidence = {}
        for i in np.flatnonzero(flagged):
            nb = emb_nb[i]
            signals = [s for s, on in (("deep_knn", deep_knn[i]), ("centroid", centroid_flag[i])) if on]
            evidence[int(i)] = {
                "signals": signals,
                "given_label": state.classes[yy[i]],
                "majority_label": state.classes[majority[i]],
                "agreement": round(float(agreement[i]), 3),
                "k": state.k,
                "nearest": [
                    {"id": str(state.ref_ids[j]), "label": state.classes[int(state.ref_labels[j])]}
                    for j in nb[: state.params.top_neighbours]
                ],
                "nearest_centroid": state.classes[int(np.argmin(dist[i]))],
                "centroid_distance_ratio": round(float(ratio[i]), 3),
                "input_agreement": round(float(input_agreement[i]), 3),
            }
        return Scores(score, flagged, 0.5, evidence)

    def summary(self, state: FeatureCollisionState) -> dict[str, Any]:
        return dict(state.summary)


def _search(index, queries: np.ndarray, k: int, ref_keys: np.ndarray, query_keys: np.ndarray):
    """k nearest reference rows of each query, never the query itself (matched by record key)."""
    k = max(1, min(k, index.rows - 1))
    found = index.search(queries, k + 1)
    missing = found < 0  # an approximate search can come back short: fill with the nearest found
    if missing.any():
        found = np.where(missing, found[:, :1], found)
    self_hit = ref_keys[found] == np.asarray(query_keys)[:, None]
    # Drop the record's own row when it is in the reference; otherwise drop the (k+1)-th neighbour.
    drop = np.where(self_hit.any(axis=1), self_hit.argmax(axis=1), k)
    keep = np.ones_like(found, dtype=bool)
    keep[np.arange(len(found)), drop] = False
    return found[keep].reshape(len(found), k)


def _votes(labels: np.ndarray, C: int) -> np.ndarray:
    n, k = labels.shape
    flat = np.repeat(np.arange(n), k) * C + labels.ravel()
    return np.bincount(flat, minlength=n * C).reshape(n, C)


def _centroid_distances(E, centroids, scale, chunk: int = 1024) -> np.ndarray:
    Es, Cs = E / scale, centroids / scale
    c_sq = (Cs**2).sum(axis=1)
    out = np.empty((len(E), len(centroids)))
    for a in range(0, len(E), chunk):
        q = Es[a : a + chunk]
        out[a : a + chunk] = np.sqrt(np.maximum((q**2).sum(axis=1)[:, None] - 2 * q @ Cs.T + c_sq[None, :], 0.0))
    return out
