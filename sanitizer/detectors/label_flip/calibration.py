"""``label_flip``'s calibration arithmetic: the per-fold neighbour indexes, the two opinions per record
(fold models and out-of-fold neighbours), the blend weight, the confident joint, the margin score and
the noisiest class pairs."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from sanitizer.detectors.shared.neighbour_search import build_checked


def _margin(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """max over other classes of p minus p of the given class, in [-1, 1]."""
    rows = np.arange(len(y))
    given = p[rows, y]
    others = p.copy()
    others[rows, y] = -np.inf
    return others.max(axis=1) - given


def _opinions(state, Z: np.ndarray, fold: np.ndarray):
    """Classifier and neighbour class probabilities; each row judged by its own fold's model/reference."""
    n, C = len(Z), len(state.classes)
    p_model = np.zeros((n, C))
    for f, (model, cols) in enumerate(zip(state.models, state.model_classes)):
        rows = np.flatnonzero(fold == f)
        if len(rows):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p_model[np.ix_(rows, cols)] = model.predict_proba(Z[rows])
    neighbours = _neighbours(state, Z, fold)
    k = neighbours.shape[1]
    flat = np.repeat(np.arange(n), k) * C + state.ref_labels[neighbours].ravel()
    counts = np.bincount(flat, minlength=n * C).reshape(n, C).astype(np.float64)
    p_knn = (counts + 1.0 / C) / (k + 1.0)  # one pseudo-count spread evenly (a sample-wide prior would carry
    # the record's own label back into its score)
    return p_model, p_knn, neighbours


def _neighbours(state, Z: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Indices (into the reference) of the k nearest reference rows outside each row's fold.

    One faiss index per fold over the reference rows of the other folds, built
    at fit: exact (flat L2) for small references, otherwise an inverted-file
    index checked against exact search at fit (``neighbours.build_checked``).
    """
    k = min(state.params.neighbours, max(len(state.ref_X) - 1, 1))
    Z = _searched(state, Z)
    out = np.zeros((len(Z), k), dtype=np.int64)
    for f in range(state.params.folds):
        rows = np.flatnonzero(fold == f)
        members = state.fold_members[f]
        if len(rows) == 0 or len(members) == 0:
            continue
        kk = min(k, len(members))
        found = state.fold_index[f].search(Z[rows], kk)
        found = np.where(found < 0, found[:, :1], found)  # an approximate search can come back short
        found = members[np.maximum(found, 0)]
        if kk < k:  # tiny references: repeat the nearest to keep a fixed width
            found = np.concatenate([found, np.repeat(found[:, :1], k - kk, axis=1)], axis=1)
        out[rows] = found
    return out


def _searched(state, Z: np.ndarray) -> np.ndarray:
    """The columns of ``Z`` the neighbour search compares (a mixed table's design matrix: its linear columns)."""
    width = state.ref_X.shape[1]
    return Z if Z.shape[1] == width else np.ascontiguousarray(Z[:, :width])


PROBE_ROWS = 2_000


def _with_fold_indexes(state, Z, fold, seed):
    """Per fold, the searchable reference outside it, checked against exact search on the fold's own rows."""
    K = state.params.folds
    k = min(state.params.neighbours, max(len(state.ref_X) - 1, 1))
    indexes, members_all, searches = [], [], []
    for f in range(K):
        members = np.flatnonzero(state.ref_folds != f)
        members_all.append(members)
        if len(members) == 0:
            indexes.append(None)
            continue
        probes = _searched(state, Z[np.flatnonzero(fold == f)[:PROBE_ROWS]])
        index, info = build_checked(state.ref_X[members], state.ref_labels[members], probes, min(k, len(members)),
                                    seed=seed + f, target=state.params.search_agreement)
        indexes.append(index)
        searches.append(info)
    worst = min(searches, key=lambda i: i["vote_agreement"]) if searches else {}
    summary = dict(state.summary, neighbour_search={
        "folds": [i["kind"] for i in searches],
        "vote_agreement_with_exact": worst.get("vote_agreement"),  # the worst fold's, on held-out sample rows
        "neighbour_recall": worst.get("neighbour_recall"),
        "probe_rows_per_fold": worst.get("probes"),
        "target": state.params.search_agreement,
    })
    return dataclasses.replace(state, fold_index=tuple(indexes), fold_members=tuple(members_all), summary=summary)


def _choose_weight(setting, p_model, p_knn, y) -> float:
    if setting != "auto":
        return float(setting)
    rows = np.arange(len(y))
    best, best_ll = 0.5, -np.inf
    for w in np.linspace(0.0, 1.0, 11):
        p = w * p_model[rows, y] + (1 - w) * p_knn[rows, y]
        ll = float(np.mean(np.log(np.clip(p, 1e-6, 1.0))))
        if ll > best_ll + 1e-12:
            best, best_ll = float(w), ll
    return best


def _confident_joint(p: np.ndarray, y: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated confident joint (rows: given label, columns: likely true label) and thresholds t_j."""
    t = np.array([p[y == j, j].mean() if np.any(y == j) else 1.0 for j in range(C)])
    above = p >= t[None, :]
    masked = np.where(above, p, -1.0)
    true = np.argmax(masked, axis=1)
    confident = above.any(axis=1)
    joint = np.zeros((C, C))
    np.add.at(joint, (y[confident], true[confident]), 1.0)
    counts = np.bincount(y, minlength=C).astype(float)
    row_sums = joint.sum(axis=1)
    scale = np.divide(counts, row_sums, out=np.zeros(C), where=row_sums > 0)
    joint *= scale[:, None]  # calibrate: each row sums to the class count
    return joint, t


def _top_pairs(joint: np.ndarray, counts: np.ndarray, classes: np.ndarray, most: int = 20) -> list[dict]:
    off = joint.copy()
    np.fill_diagonal(off, 0.0)
    flat = np.argsort(off, axis=None)[::-1][:most]
    out = []
    for idx in flat:
        i, j = np.unravel_index(idx, off.shape)
        if off[i, j] < 0.5:
            break
        out.append(
            {
                "given": str(classes[i]),
                "likely_true": str(classes[j]),
                "estimated_rows": round(float(off[i, j]), 1),
                "rate": round(float(off[i, j] / max(counts[i], 1)), 4),
            }
        )
    return out


def _class_thresholds(margin, y, noisy_per_class, judged, params, prior_rate=None) -> np.ndarray:
    """Per class, the margin above which exactly its estimated count of wrong labels lies (cleanlab's "prune by
    noise rate" as a threshold), never below 0; inf for a class not judged or with no wrong labels.

    ``prior_rate`` (a later pass): classes the previous pass estimated at ``confident_margin_min_noise`` or
    more wrong labels count at least their rows with a margin over ``confident_margin``."""
    C = len(noisy_per_class)
    class_thresholds = np.zeros(C)
    for i in range(C):
        rows = np.flatnonzero(y == i)
        k = int(round(noisy_per_class[i]))
        if prior_rate is not None and prior_rate[i] >= params.confident_margin_min_noise:
            # A heavily contaminated class: the earlier pass's models learnt part of its flips, so the
            # confident joint undercounts them; models that no longer saw them give them clear margins.
            k = max(k, int((margin[rows] > params.confident_margin).sum()))
        if not judged[i] or k <= 0 or len(rows) == 0:
            class_thresholds[i] = np.inf
            continue
        ranked = np.sort(margin[rows])[::-1]
        k = min(k, len(ranked))
        below = ranked[k] if k < len(ranked) else -1.0
        class_thresholds[i] = max(0.5 * (ranked[k - 1] + below), 0.0)
    return class_thresholds
